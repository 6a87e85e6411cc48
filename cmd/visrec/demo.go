package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["demo"] = command{summary: "the whole pipeline on an embedded Kafka and an in-memory store, with prequential Recall@10", run: runDemo}
}

// runDemo runs the production consumer and updater against an in-process Kafka-protocol
// broker (kfake) and the in-memory feature store: nothing to install.
func runDemo(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	data := fs.String("data", "", "replay this event log (MovieLens ratings.csv, CSV or JSONL) instead of the synthetic stream")
	nEvents := fs.Int64("events", 300_000, "length of the synthetic stream")
	partitions := fs.Int("partitions", 1, "partitions of the embedded topics (1 keeps the run deterministic)")
	k := fs.Int("k", 10, "cut-off of the prequential Recall@K")
	every := fs.Int("eval-every", 0, "evaluate one in this many eligible events (0: 1 for --data, 10 for the synthetic stream)")
	var mf modelFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ms, uopts, err := mf.build()
	if err != nil {
		return err
	}

	// The stream: a log file, sorted by time, or the synthetic generator.
	var src producers.Source
	var total int64
	if *data != "" {
		evs, stats, err := producers.ReadLog(*data, producers.DefaultLogOptions())
		if err != nil {
			return err
		}
		src, total = producers.NewSliceSource(evs), int64(len(evs))
		log.Info("log loaded", zap.String("file", *data), zap.String("format", stats.Variant), zap.Int("events", stats.Events))
		if *every == 0 {
			*every = 1
		}
	} else {
		cfg := producers.DefaultSyntheticConfig()
		cfg.Events = *nEvents
		cfg.Affinity, cfg.Candidates = 4, 32 // strong planted tastes: there is something to learn
		gen, err := producers.NewSynthetic(cfg)
		if err != nil {
			return err
		}
		src, total = gen, *nEvents
		log.Info("synthetic stream", zap.Int64("events", total), zap.Int("users", cfg.Users), zap.Int("items", cfg.Items))
		if *every == 0 {
			*every = 10
		}
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(int32(*partitions), events.TopicEvents, events.TopicItems, events.TopicDeadLetter))
	if err != nil {
		return fmt.Errorf("start the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	store := featurestore.NewMemory()
	upd, err := updater.New(store, uopts, ms...)
	if err != nil {
		return err
	}
	preq := eval.NewPrequential(upd.Models(), *k, *every, 1000)
	preq.MinPositiveRating = uopts.MinPositiveRating
	upd.SetObserver(preq)
	copts := consumers.DefaultOptions(brokers...)
	copts.SessionTimeout = 6 * time.Second
	cons, err := consumers.New(copts, upd, zap.NewNop(), nil)
	if err != nil {
		return err
	}

	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- cons.Run(cctx) }()

	sink := producers.NewKafkaSink(brokers, events.TopicEvents, 0)
	defer sink.Close()
	rep, err := producers.NewReplayer(sink, producers.DefaultReplayOptions())
	if err != nil {
		return err
	}
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		_, err := rep.Run(ctx, src)
		produced <- err
	}()

	bar := newBar(total, "learning")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-produced:
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			produced = nil
		case err := <-consumed:
			return fmt.Errorf("consumer stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			n := cons.Committed()
			bar.Set64(n) //nolint:errcheck // display only
			done = n >= total
		}
	}
	elapsed := time.Since(start)
	bar.Finish() //nolint:errcheck // display only
	stopConsumer()
	if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}

	fmt.Printf("\n%d events through Kafka (embedded) -> consumer -> %s -> store in %.1fs: %.0f events/s\n",
		total, mf.names, elapsed.Seconds(), float64(total)/elapsed.Seconds())
	fmt.Printf("prequential (test-then-train), one in %d new user-item pairs:\n", *every)
	curve := preq.Curve()
	for r, name := range preq.Rankers() {
		t := preq.Total()[r]
		fmt.Printf("  %-12s Recall@%d = %.4f  NDCG@%d = %.4f  (%d evaluations", name, *k, t.Recall(), *k, t.NDCG(), t.N)
		if len(curve) > 1 {
			fmt.Printf("; per 1000: first %.4f, last %.4f", curve[0][r].Recall(), curve[len(curve)-1][r].Recall())
		}
		fmt.Println(")")
	}
	return printSample(ctx, upd, ms[0].Name(), *k)
}

// printSample prints one user's top-k under model, to show what the state serves.
func printSample(ctx context.Context, upd *updater.Updater, model string, k int) error {
	users, _, _, err := upd.Rows(model)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	user := ids[0]
	scores, ok, err := upd.ScoreAll(model, user, nil)
	if err != nil || !ok {
		return err
	}
	cat := upd.Catalog()
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	fmt.Printf("top %d for user %s:", k, user)
	for _, i := range order[:min(k, len(order))] {
		fmt.Printf(" %s(%.2f)", cat[i], scores[i])
	}
	fmt.Println()
	return nil
}

// newBar is a progress bar on stderr, quiet when stderr is not a terminal.
func newBar(total int64, what string) *progressbar.ProgressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return progressbar.DefaultSilent(total, what)
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
