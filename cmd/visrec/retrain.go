package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["retrain"] = command{summary: "train one model on a whole data set or log and write a snapshot", run: runRetrain}
}

// runRetrain trains --model on every interaction of --data (or, with --from-kafka, of the
// events topic up to the offsets the updaters have stored) and writes its snapshot, which
// `visrec update --from-snapshot` (online models) starts from, or `visrec snapshot publish
// --install` rebases the running updaters onto.
func runRetrain(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("retrain", flag.ContinueOnError)
	data := fs.String("data", "posters", "data set: 'posters' ("+postersDir+") or a path any loader reads")
	out := fs.String("out", "", "snapshot file to write (required)")
	epochs := fs.Int("epochs", 10, "epochs (ALS iterations for wmf, pmf-als and mf-als)")
	fromKafka := fs.Bool("from-kafka", false, "online models: train on the events (and item events) in Kafka up to the offsets stored in Redis now, and record those offsets in the snapshot (docs/snapshots.md)")
	brokers := fs.String("brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "--from-kafka: Kafka bootstrap brokers (env VISREC_KAFKA_BROKERS)")
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "--from-kafka: Redis address (env VISREC_REDIS_ADDR)")
	ns := fs.String("namespace", envOr("VISREC_NAMESPACE", "visrec"), "--from-kafka: the updaters' feature store namespace (env VISREC_NAMESPACE)")
	eventsTopic := fs.String("events-topic", events.TopicEvents, "--from-kafka: interactions topic")
	itemsTopic := fs.String("items-topic", events.TopicItems, "--from-kafka: item events topic ('' for none)")
	forUpdate := fs.Bool("for-update", false, "mf-als only: write the online mf's snapshot (rows with ids), which visrec update --models mf --from-snapshot continues from (same --factors)")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: visrec retrain --models M --out FILE.snap [--data posters|PATH | --from-kafka] [--epochs N] [--for-update]")
	}
	labels := mf.labels()
	if len(labels) != 1 {
		return fmt.Errorf("retrain trains one model at a time, got %q", mf.names)
	}
	if *forUpdate && labels[0] != "mf-als" {
		return fmt.Errorf("--for-update is for mf-als (the batch form of the online mf), not %q", labels[0])
	}
	if *fromKafka {
		if batchModels[labels[0]] {
			return fmt.Errorf("--from-kafka trains the online models, not %q", labels[0])
		}
		ms, uopts, err := mf.build()
		if err != nil {
			return err
		}
		if visual(ms) {
			uopts.EmbeddingDim = mf.featureDim
		}
		t0 := time.Now()
		snap, n, err := retrainFromKafka(ctx, kafkaSource{brokers: splitList(*brokers), redis: *redisAddr, namespace: *ns,
			events: *eventsTopic, items: *itemsTopic}, ms, uopts, *epochs)
		if err != nil {
			return err
		}
		snap.Meta["data"], snap.Meta["trained_at"] = "kafka:"+*eventsTopic, time.Now().UTC().Format(time.RFC3339)
		snap.Meta["interactions"] = fmt.Sprint(n)
		if err := writeSnapshotFile(*out, snap); err != nil {
			return err
		}
		log.Info("snapshot written", zap.String("model", snap.Model), zap.String("file", *out), zap.Int("interactions", n),
			zap.Int("epochs", *epochs), zap.Duration("took", time.Since(t0)))
		return nil
	}
	ds, err := loadData(*data)
	if err != nil {
		return err
	}
	bar := newBar(int64(*epochs), "training "+labels[0])
	tick := func(int) { bar.Add(1) } //nolint:errcheck // display only
	t0 := time.Now()
	var snap models.Snapshot
	if batchModels[labels[0]] {
		m, err := trainBatch(labels[0], ds, ds.Interactions, mf.factors, *epochs, tick)
		if err != nil {
			return err
		}
		if snap = m.Snapshot(); *forUpdate {
			if snap, err = m.(*models.PMF).OnlineSnapshot(ds.Users, ds.Items); err != nil {
				return err
			}
		}
	} else {
		ms, uopts, err := mf.build()
		if err != nil {
			return err
		}
		on, err := eval.TrainOnline(ctx, ds, ds.Interactions, eval.TrainOptions{Epochs: *epochs, Seed: mf.seed, Updater: uopts,
			AfterEpoch: func(e int, _ *eval.Online) { tick(e) }}, ms...)
		if err != nil {
			return err
		}
		if snap, err = on.Snapshot(ms[0].Name()); err != nil {
			return err
		}
	}
	bar.Finish() //nolint:errcheck // display only
	if snap.Meta == nil {
		snap.Meta = map[string]string{}
	}
	snap.Meta["data"], snap.Meta["trained_at"] = ds.Name, time.Now().UTC().Format(time.RFC3339)
	snap.Meta["interactions"] = fmt.Sprint(len(ds.Interactions))
	if err := writeSnapshotFile(*out, snap); err != nil {
		return err
	}
	log.Info("snapshot written", zap.String("model", snap.Model), zap.String("file", *out),
		zap.Int("interactions", len(ds.Interactions)), zap.Duration("took", time.Since(t0)))
	return nil
}

// kafkaSource says where retrain --from-kafka reads.
type kafkaSource struct {
	brokers          []string
	redis, namespace string
	events, items    string // items: "" for none
}

// retrainFromKafka trains ms[0] (with the other models beside it, as in an updater) on the
// log up to the base offsets stored in the namespace now: every item event first, then the
// interactions in log order (partition by partition) at their real positions, then epochs-1
// more passes at positions of a pseudo-topic (so that negatives differ per pass). The
// snapshot records the base offsets as the ones it covers; bad messages are skipped, as the
// updaters dead-letter them. It returns the number of interactions trained on.
func retrainFromKafka(ctx context.Context, src kafkaSource, ms []models.Online, uopts updater.Options, epochs int) (models.Snapshot, int, error) {
	if epochs < 1 {
		return models.Snapshot{}, 0, fmt.Errorf("retrain: %d epochs", epochs)
	}
	store, err := openRedis(ctx, src.redis, src.namespace)
	if err != nil {
		return models.Snapshot{}, 0, err
	}
	topics := []string{src.events}
	if src.items != "" {
		topics = append(topics, src.items)
	}
	base := map[string]map[int]int64{}
	for _, t := range topics {
		if base[t], err = store.Offsets(ctx, t); err != nil {
			store.Close()
			return models.Snapshot{}, 0, err
		}
	}
	store.Close()
	if len(base[src.events]) == 0 {
		return models.Snapshot{}, 0, fmt.Errorf("retrain: namespace %q has no stored offsets of %s: no updater has consumed it yet", src.namespace, src.events)
	}
	upd, err := updater.New(featurestore.NewMemory(), uopts, ms...)
	if err != nil {
		return models.Snapshot{}, 0, err
	}
	if src.items != "" {
		for _, p := range sortedParts(base[src.items]) {
			msgs, err := readPartition(ctx, src.brokers, src.items, p, base[src.items][p])
			if err != nil {
				return models.Snapshot{}, 0, err
			}
			for _, m := range msgs {
				it, err := events.DecodeItem(m.Value, uopts.EmbeddingDim)
				if err != nil || string(m.Key) != it.Item {
					continue
				}
				if err := upd.ApplyItem(&it, updater.Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}); err != nil {
					continue // refused (dimension, non-finite): the updaters dead-letter it
				}
			}
		}
	}
	var evs []events.Interaction
	var pos []updater.Position
	for _, p := range sortedParts(base[src.events]) {
		msgs, err := readPartition(ctx, src.brokers, src.events, p, base[src.events][p])
		if err != nil {
			return models.Snapshot{}, 0, err
		}
		for _, m := range msgs {
			ev, err := events.DecodeInteraction(m.Value)
			if err != nil || string(m.Key) != ev.User {
				continue
			}
			evs = append(evs, ev)
			pos = append(pos, updater.Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
		}
	}
	for e := 0; e < epochs; e++ {
		for i := range evs {
			at := pos[i]
			if e > 0 {
				at = updater.Position{Topic: "retrain-epoch", Offset: int64(e*len(evs) + i)}
			}
			if err := upd.Apply(ctx, &evs[i], at); err != nil {
				return models.Snapshot{}, 0, err
			}
		}
	}
	snap, err := upd.Snapshot(ms[0].Name())
	if err != nil {
		return models.Snapshot{}, 0, err
	}
	for k := range snap.Meta {
		if strings.HasPrefix(k, "offset:") {
			delete(snap.Meta, k)
		}
	}
	for t, offs := range base {
		for p, o := range offs {
			snap.Meta[fmt.Sprintf("offset:%s:%d", t, p)] = strconv.FormatInt(o, 10)
		}
	}
	return snap, len(evs), nil
}

func sortedParts(offs map[int]int64) []int {
	ps := make([]int, 0, len(offs))
	for p := range offs {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// readPartition returns the messages of topic/partition from the first one kept up to (not
// including) offset end.
func readPartition(ctx context.Context, brokers []string, topic string, partition int, end int64) ([]kafka.Message, error) {
	if end <= 0 {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return nil, fmt.Errorf("retrain: seek %s/%d: %w", topic, partition, err)
	}
	var out []kafka.Message
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := r.FetchMessage(rctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("retrain: read %s/%d up to %d (at %d messages): %w", topic, partition, end, len(out), err)
		}
		if m.Offset >= end {
			return out, nil
		}
		out = append(out, m)
		if m.Offset == end-1 {
			return out, nil
		}
	}
}

// writeSnapshotFile writes snap to path atomically (a temporary file, then a rename).
func writeSnapshotFile(path string, snap models.Snapshot) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := models.WriteSnapshot(tmp, snap); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readSnapshotFile reads a snapshot written by writeSnapshotFile.
func readSnapshotFile(path string) (models.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return models.Snapshot{}, err
	}
	defer f.Close()
	snap, err := models.ReadSnapshot(f)
	if err != nil {
		return models.Snapshot{}, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}
