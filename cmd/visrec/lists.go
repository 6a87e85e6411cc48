package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/toplists"
)

func init() {
	commands["lists"] = command{summary: "materialize per-user top-K lists in Redis (one JSON document per list, see docs/lists.md)", run: runLists, streaming: true}
}

// runLists runs a ranking index and the list materializer against Redis until a signal.
func runLists(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("lists", flag.ContinueOnError)
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	ns := fs.String("namespace", envOr("VISREC_NAMESPACE", "visrec"), "feature store namespace: the prefix {ns} of every Redis key, lists included (env VISREC_NAMESPACE)")
	var mf modelFlags
	mf.registerServing(fs)
	d, rd := toplists.DefaultOptions(), ranking.DefaultOptions()
	k := fs.Int("k", d.K, "items per list")
	debounce := fs.Duration("debounce", d.Debounce, "least time between two full refreshes of one user's list")
	budget := fs.Int("budget", d.RefreshesPerSecond, "full list refreshes per second, all models together")
	poll := fs.Duration("poll", d.PollInterval, "how often user and item changes are polled")
	includeSeen := fs.Bool("include-seen", false, "keep the items a user has interacted with in the lists")
	noBackfill := fs.Bool("no-backfill", false, "do not list every stored user at start; only users that change from now on")
	syncInterval := fs.Duration("sync-interval", rd.SyncInterval, "how often the ranking index polls Redis for changed items")
	global := fs.Duration("global-refresh", rd.GlobalRefresh, "least time between recomputations of all item vectors after a model's global row changed")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this address (empty: none)")
	progress := fs.Duration("progress", 10*time.Second, "log progress this often (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ms, err := servableModels(&mf)
	if err != nil {
		return err
	}
	store, err := openRedis(ctx, *redisAddr, *ns)
	if err != nil {
		return err
	}
	defer store.Close()
	client := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer client.Close()
	reg := prometheus.NewRegistry()
	serveMetrics(ctx, log, *metricsAddr, reg)
	idx, err := ranking.New(store, ms, ranking.Options{SyncInterval: *syncInterval, GlobalRefresh: *global, Logger: log})
	if err != nil {
		return err
	}
	mat, err := toplists.New(client, store, idx, toplists.Options{Namespace: *ns, K: *k, Debounce: *debounce,
		RefreshesPerSecond: *budget, PollInterval: *poll, IncludeSeen: *includeSeen, NoBackfill: *noBackfill,
		Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idxDone := make(chan error, 1)
	go func() { idxDone <- idx.Run(ctx) }()
	matDone := make(chan error, 1)
	go func() { matDone <- mat.Run(ctx) }()
	log.Info("materializing lists", zap.String("models", mf.names), zap.Int("k", *k), zap.String("redis", *redisAddr),
		zap.String("keys", toplists.ListKey(*ns, "<model>", "<user>")))
	var tick <-chan time.Time
	if *progress > 0 {
		t := time.NewTicker(*progress)
		defer t.Stop()
		tick = t.C
	}
	var prev toplists.Stats
	for {
		select {
		case err := <-idxDone:
			cancel()
			<-matDone
			return err
		case err := <-matDone:
			cancel()
			<-idxDone
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		case <-tick:
			s := mat.Stats(ctx)
			log.Info("lists", zap.Int("users", s.Users), zap.Int("queued", s.Queued),
				zap.Int64("refreshes", s.Refreshes-prev.Refreshes), zap.Int64("incremental", s.Incremental-prev.Incremental),
				zap.Int64("writes", s.Writes-prev.Writes), zap.Int("items", idx.Len()), zap.Uint64("index_version", idx.Version()))
			prev = s
		}
	}
}
