package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["bench"] = command{summary: "benchmarks: 'bench NAME' (bench -h lists them)", run: runBench, streaming: true}
	benches["ingest"] = command{summary: "Kafka -> updater -> Redis events/s", run: benchIngest}
}

// benches holds the benchmarks of 'visrec bench'; each registers itself from its own file.
var benches = map[string]command{}

func runBench(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		names := slices.Sorted(maps.Keys(benches))
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "\n  %-8s %s", n, benches[n].summary)
		}
		return fmt.Errorf("usage: visrec bench NAME [flags]; benchmarks:%s", b.String())
	}
	b, ok := benches[args[0]]
	if !ok {
		return fmt.Errorf("unknown benchmark %q (known: %s)", args[0], strings.Join(slices.Sorted(maps.Keys(benches)), ", "))
	}
	return b.run(ctx, log, args[1:])
}

// benchIngest measures sustained end-to-end ingestion: synthetic events are produced to a
// fresh topic first, then one in-process consumer applies them and flushes to the store;
// the rate counts from the consumer's first committed flush to its last, so the group join
// is left out (and reported apart).
func benchIngest(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	brokers := fs.String("brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka brokers (env VISREC_KAFKA_BROKERS)")
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	storeKind := fs.String("store", "redis", "feature store: redis or memory")
	n := fs.Int64("events", 1_000_000, "events per run")
	runs := fs.Int("runs", 3, "runs; the median is reported")
	partitions := fs.Int("partitions", 4, "partitions of the benchmark topic")
	enc := fs.String("encoding", "binary", "message encoding: json or binary")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	encoding, err := producers.ParseEncoding(*enc)
	if err != nil {
		return err
	}
	bl := splitList(*brokers)
	var rates, joins, produceRates []float64
	for r := 0; r < *runs; r++ {
		res, err := ingestOnce(ctx, log, bl, *redisAddr, *storeKind, *n, *partitions, encoding, &mf, r)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: produced at %.0f events/s; ingested %d events at %.0f events/s (join %.2fs)\n",
			r+1, res.produceRate, *n, res.rate, res.join.Seconds())
		rates, joins, produceRates = append(rates, res.rate), append(joins, res.join.Seconds()), append(produceRates, res.produceRate)
	}
	fmt.Printf("median over %d runs: %.0f events/s end to end (Kafka -> updater[%s, K=%d] -> %s), produce %.0f events/s, join %.2fs\n",
		*runs, median(rates), mf.names, mf.factors, *storeKind, median(produceRates), median(joins))
	return nil
}

type ingestResult struct {
	rate, produceRate float64
	join              time.Duration
}

func ingestOnce(ctx context.Context, log *zap.Logger, brokers []string, redisAddr, storeKind string, n int64,
	partitions int, enc producers.Encoding, mf *modelFlags, run int) (ingestResult, error) {
	var res ingestResult
	name := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano()%1e9, run)
	topics := []string{name + ".events", name + ".items", name + ".dead"}
	for _, t := range topics {
		if err := producers.EnsureTopic(ctx, brokers, t, partitions); err != nil {
			return res, err
		}
	}
	defer deleteTopics(brokers[0], topics)

	cfg := producers.DefaultSyntheticConfig()
	cfg.Events, cfg.Seed = n, uint64(run+1)
	gen, err := producers.NewSynthetic(cfg)
	if err != nil {
		return res, err
	}
	sink := producers.NewKafkaSink(brokers, topics[0], 5000)
	opts := producers.DefaultReplayOptions()
	opts.Encoding, opts.BatchSize = enc, 5000
	rep, err := producers.NewReplayer(sink, opts)
	if err != nil {
		return res, err
	}
	sum, err := rep.Run(ctx, gen)
	sink.Close()
	if err != nil {
		return res, err
	}
	res.produceRate = sum.EventsPerSecond()

	var store featurestore.Store
	switch storeKind {
	case "memory":
		store = featurestore.NewMemory()
	case "redis":
		rs, err := openRedis(ctx, redisAddr, name)
		if err != nil {
			return res, err
		}
		defer dropNamespace(redisAddr, name)
		store = rs
	default:
		return res, fmt.Errorf("unknown store %q (redis or memory)", storeKind)
	}
	defer store.Close()
	ms, uopts, err := mf.build()
	if err != nil {
		return res, err
	}
	upd, err := updater.New(store, uopts, ms...)
	if err != nil {
		return res, err
	}
	copts := consumers.DefaultOptions(brokers...)
	copts.Group, copts.EventsTopic, copts.ItemsTopic, copts.DeadLetterTopic = name, topics[0], topics[1], topics[2]
	cons, err := consumers.New(copts, upd, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), nil)
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cons.Run(cctx) }()
	var first time.Time
	var firstN int64
	bar := newBar(n, "ingesting")
	for {
		select {
		case err := <-done:
			return res, fmt.Errorf("consumer stopped: %w", err)
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		c := cons.Committed()
		if c > 0 && first.IsZero() {
			first, firstN = time.Now(), c
			res.join = first.Sub(start)
		}
		bar.Set64(c) //nolint:errcheck // display only
		if c >= n {
			bar.Finish() //nolint:errcheck // display only
			res.rate = float64(c-firstN) / time.Since(first).Seconds()
			cancel()
			<-done
			return res, nil
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func deleteTopics(broker string, topics []string) {
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.DeleteTopics(topics...) //nolint:errcheck // best-effort cleanup of benchmark topics
}

// dropNamespace deletes every key of a feature store namespace.
func dropNamespace(addr, ns string) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, "{"+ns+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}
