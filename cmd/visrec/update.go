package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/snapshots"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["update"] = command{summary: "consume events from Kafka and update the online models in Redis", run: runUpdate, streaming: true}
}

func runUpdate(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	brokers := fs.String("brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated (env VISREC_KAFKA_BROKERS)")
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	ns := fs.String("namespace", envOr("VISREC_NAMESPACE", "visrec"), "feature store namespace: the prefix {ns} of every Redis key (env VISREC_NAMESPACE)")
	group := fs.String("group", "visrec-updater", "Kafka consumer group")
	eventsTopic := fs.String("events-topic", events.TopicEvents, "interactions topic")
	itemsTopic := fs.String("items-topic", events.TopicItems, "item events topic")
	dlqTopic := fs.String("deadletter-topic", events.TopicDeadLetter, "dead-letter topic")
	partitions := fs.Int("partitions", 4, "partitions of topics created when missing")
	dim := fs.Int("embedding-dim", 0, "expected embedding length of item events (0: any, or --feature-dim when a visual model runs)")
	session := fs.Duration("session-timeout", consumers.DefaultOptions().SessionTimeout, "group session timeout: how long a dead member holds its partitions")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics here, e.g. 127.0.0.1:9101")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	commitPart := fs.Int("commit-part", featurestore.DefaultCommitPart, "row writes per Redis script of a flush: a larger flush is committed in parts, so that no script blocks Redis long (-1: one script per flush)")
	fromSnapshot := fs.String("from-snapshot", "", "before consuming, install this snapshot (from visrec retrain, an online model's) into the store, as visrec snapshot publish --install does (docs/snapshots.md)")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ms, uopts, err := mf.build()
	if err != nil {
		return err
	}
	if *dim == 0 && visual(ms) {
		*dim = mf.featureDim // the visual models read exactly this many features
	}
	uopts.EmbeddingDim = *dim
	if *commitPart == 0 {
		return errors.New("--commit-part must be positive, or -1 for one script per flush")
	}
	store, err := openRedisPart(ctx, *redisAddr, *ns, *commitPart)
	if err != nil {
		return err
	}
	defer store.Close()
	upd, err := updater.New(store, uopts, ms...)
	if err != nil {
		return err
	}
	if *fromSnapshot != "" {
		res, err := installSnapshot(ctx, store, upd, *fromSnapshot, *eventsTopic, *itemsTopic)
		if err != nil {
			return err
		}
		log.Info("snapshot merged into the store", zap.String("file", *fromSnapshot), zap.Int64("epoch", res.Epoch),
			zap.Any("covered", res.Covered), zap.Strings("assumed_covered_up_to_base", res.Assumed))
	}
	copts := consumers.DefaultOptions(splitList(*brokers)...)
	copts.Group, copts.EventsTopic, copts.ItemsTopic, copts.DeadLetterTopic = *group, *eventsTopic, *itemsTopic, *dlqTopic
	copts.EmbeddingDim = *dim
	copts.SessionTimeout = *session
	for _, t := range []string{*eventsTopic, *itemsTopic, *dlqTopic} {
		if err := producers.EnsureTopic(ctx, copts.Brokers, t, *partitions); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	serveMetrics(ctx, log, *metricsAddr, reg)
	c, err := consumers.New(copts, upd, log, consumers.NewMetrics(reg))
	if err != nil {
		return err
	}
	log.Info("updating", zap.String("models", mf.names), zap.String("redis", *redisAddr), zap.String("namespace", *ns), zap.String("group", *group))
	err = c.Run(ctx)
	log.Info("stopped", zap.Int64("committed", c.Committed()))
	return err
}

// installSnapshot installs a snapshot into the store (snapshots.Install), so that the
// consumers (this process's, which Load after it, and any running ones, which are fenced)
// continue from it. upd only checks that the snapshot fits one of its models; Load drops
// what that check put in its cache.
func installSnapshot(ctx context.Context, store featurestore.Store, upd *updater.Updater, path, eventsTopic, itemsTopic string) (snapshots.InstallResult, error) {
	snap, err := readSnapshotFile(path)
	if err != nil {
		return snapshots.InstallResult{}, err
	}
	if err := upd.Restore(snap); err != nil {
		return snapshots.InstallResult{}, err
	}
	topics := []string{eventsTopic}
	if itemsTopic != "" {
		topics = append(topics, itemsTopic)
	}
	return snapshots.Install(ctx, store, snap, snapshots.InstallOptions{Topics: topics})
}
