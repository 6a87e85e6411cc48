package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/producers"
)

func init() {
	commands["replay"] = command{
		summary: "replay an event log (MovieLens, CSV, JSONL) or a synthetic stream into Kafka",
		run:     runReplay,
	}
}

type replayFlags struct {
	brokers, topic, format, encoding, progress string
	rate, warp                                 float64
	skipBad, tsSeconds, assumeSorted           bool
	partitions, batch                          int
	synEvents                                  int64
	seed                                       uint64
	users, items                               int
}

const replayUsage = `usage: visrec replay [flags] FILE
       visrec replay --format synthetic [--synthetic-events N --seed S] [flags]

Writes the events of FILE to Kafka, keyed by user, in timestamp order (the log is sorted
in memory, about 100 bytes per event, unless --assume-sorted). Formats: MovieLens
ratings.csv / u.data / ratings.dat, CSV with a header naming user,item,ts[,type,value,id],
JSONL with one event-schema-v1 object per line; .gz files are read transparently.

flags:
`

func runReplay(ctx context.Context, log *zap.Logger, args []string) error {
	var f replayFlags
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.StringVar(&f.brokers, "brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka bootstrap brokers (env VISREC_KAFKA_BROKERS)")
	fs.StringVar(&f.topic, "topic", events.TopicEvents, "topic to write")
	fs.StringVar(&f.format, "format", "auto", "log format: auto, movielens, csv, jsonl or synthetic")
	fs.Float64Var(&f.rate, "rate", 0, "events per second (0: as fast as possible)")
	fs.Float64Var(&f.warp, "warp", 0, "replay the log's own timestamps sped up by this factor, e.g. 3600 (exclusive with --rate)")
	fs.StringVar(&f.encoding, "encoding", "json", "message value encoding: json or binary")
	fs.BoolVar(&f.skipBad, "skip-bad", false, "skip malformed lines (counted and the first few reported) instead of stopping")
	fs.BoolVar(&f.tsSeconds, "ts-seconds", false, "csv format: the ts column holds Unix seconds, not milliseconds")
	fs.BoolVar(&f.assumeSorted, "assume-sorted", false, "stream a log that is already in timestamp order (constant memory; fails at the first out-of-order line)")
	fs.IntVar(&f.partitions, "partitions", 4, "create the topic with this many partitions if it is missing (0: never create)")
	fs.IntVar(&f.batch, "batch", producers.DefaultBatchSize, "messages per Kafka write")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	fs.Int64Var(&f.synEvents, "synthetic-events", 1_000_000, "synthetic format: number of events")
	fs.Uint64Var(&f.seed, "seed", 1, "synthetic format: random seed")
	fs.IntVar(&f.users, "users", 10_000, "synthetic format: number of users")
	fs.IntVar(&f.items, "items", 5_000, "synthetic format: number of items")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		fs.PrintDefaults()
	}
	pos, err := replayParseArgs(fs, args)
	if err != nil {
		return err
	}
	if f.rate > 0 && f.warp > 0 {
		return errors.New("--rate and --warp are exclusive: pick one pacing")
	}
	if f.rate < 0 || f.warp < 0 {
		return fmt.Errorf("--rate %v, --warp %v: want >= 0", f.rate, f.warp)
	}

	src, closeSrc, err := openReplaySource(&f, pos)
	if err != nil {
		return err
	}
	defer closeSrc()
	enc, err := producers.ParseEncoding(f.encoding)
	if err != nil {
		return err
	}
	if f.batch < 1 {
		return fmt.Errorf("--batch %d: want at least 1", f.batch)
	}
	progress, err := replayProgress(f.progress)
	if err != nil {
		return err
	}
	brokers := replayBrokerList(f.brokers)
	if len(brokers) == 0 {
		return errors.New("--brokers is empty")
	}

	if f.partitions > 0 {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := producers.EnsureTopic(tctx, brokers, f.topic, f.partitions)
		cancel()
		if err != nil {
			return fmt.Errorf("%w (is Kafka running at %s? set --brokers or VISREC_KAFKA_BROKERS)", err, f.brokers)
		}
	}
	sink := producers.NewKafkaSink(brokers, f.topic, f.batch)
	defer sink.Close()
	rp, err := producers.NewReplayer(sink, producers.ReplayOptions{
		Encoding: enc, Rate: f.rate, Warp: f.warp, BatchSize: f.batch, Progress: progress,
		Log: log.With(zap.Strings("brokers", brokers), zap.String("topic", f.topic)),
	})
	if err != nil {
		return err
	}
	sum, err := rp.Run(ctx, src)
	fmt.Fprintf(os.Stderr, "replayed %s\n", sum)
	if ls, ok := src.(*producers.LogStream); ok {
		for _, bad := range ls.Stats().FirstBad {
			fmt.Fprintf(os.Stderr, "  skipped %v\n", bad)
		}
	}
	if errors.Is(err, producers.ErrSink) {
		return fmt.Errorf("%w (is Kafka running at %s and does topic %s exist? --partitions N creates it)", err, f.brokers, f.topic)
	}
	return err
}

// openReplaySource opens the log named by the one positional argument, or the synthetic
// generator.
func openReplaySource(f *replayFlags, pos []string) (producers.Source, func(), error) {
	noop := func() {}
	if strings.EqualFold(f.format, "synthetic") {
		if len(pos) > 0 {
			return nil, noop, fmt.Errorf("--format synthetic takes no FILE, got %q", pos)
		}
		if f.synEvents <= 0 {
			return nil, noop, fmt.Errorf("--synthetic-events %d: want at least 1", f.synEvents)
		}
		cfg := producers.DefaultSyntheticConfig()
		cfg.Events, cfg.Seed, cfg.Users, cfg.Items = f.synEvents, f.seed, f.users, f.items
		g, err := producers.NewSynthetic(cfg)
		return g, noop, err
	}
	if len(pos) != 1 {
		return nil, noop, fmt.Errorf("want exactly one FILE to replay (or --format synthetic), got %d arguments; see visrec replay -h", len(pos))
	}
	format, err := producers.ParseFormat(f.format)
	if err != nil {
		return nil, noop, fmt.Errorf("--format: %w (or synthetic)", err)
	}
	opts := producers.DefaultLogOptions()
	opts.Format, opts.SkipBad, opts.TimestampSeconds, opts.AssumeSorted = format, f.skipBad, f.tsSeconds, f.assumeSorted
	s, err := producers.OpenLog(pos[0], opts)
	if err != nil {
		return nil, noop, err
	}
	return s, func() { s.Close() }, nil
}

// replayProgress resolves --progress: auto draws on stderr only when it is a terminal.
func replayProgress(mode string) (io.Writer, error) {
	switch strings.ToLower(mode) {
	case "always", "on", "true":
		return os.Stderr, nil
	case "never", "off", "false":
		return nil, nil
	case "auto":
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return os.Stderr, nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, always or never", mode)
}

// replayParseArgs parses flags that may come before or after positional arguments
// ("visrec replay ratings.csv --rate 100"); everything after "--" is positional.
func replayParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func replayBrokerList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
