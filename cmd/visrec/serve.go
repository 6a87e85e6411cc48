package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/serving"
)

func init() {
	commands["serve"] = command{summary: "HTTP/JSON API: recommendations, scores, similar items (docs/serving.md)", run: runServe, streaming: true}
}

// serveFlags are the flags of the HTTP server and its ranking index.
type serveFlags struct {
	addr, token    string
	maxK, maxIDs   int
	maxBody        int64
	timeout, grace time.Duration
	sync, global   time.Duration
	popular        time.Duration
	workers        int
	listMaxAge     time.Duration
	// redisAddr and ns locate the materialized lists (set by the command from its own flags).
	redisAddr, ns string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	d, rd := serving.DefaultOptions(), ranking.DefaultOptions()
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address (host:port; :8080 for every interface)")
	fs.StringVar(&f.token, "token", "", "bearer token required on /v1/ routes (default: env VISREC_TOKEN; empty: no auth)")
	fs.IntVar(&f.maxK, "max-k", d.MaxK, "largest k a request may ask for")
	fs.IntVar(&f.maxIDs, "max-ids", d.MaxIDs, "most candidates in a recommendations request and pairs in a scores request")
	fs.Int64Var(&f.maxBody, "max-body", d.MaxBodyBytes, "largest request body, in bytes")
	fs.DurationVar(&f.timeout, "timeout", d.Timeout, "per-request timeout (504 past it)")
	fs.DurationVar(&f.grace, "shutdown-grace", d.ShutdownGrace, "how long to drain requests in flight on SIGINT/SIGTERM")
	fs.DurationVar(&f.sync, "sync-interval", rd.SyncInterval, "how often the index polls Redis for changed items")
	fs.DurationVar(&f.global, "global-refresh", rd.GlobalRefresh, "least time between recomputations of all item vectors after a model's global row changed")
	fs.IntVar(&f.workers, "workers", rd.Workers, "goroutines one ranking is split over")
	// Not the ranking's 5 s: each re-read holds Redis for about 10 ms per 10,000 items, and
	// every request waits behind it (docs/benchmarks.md, serving); popularity moves slowly.
	fs.DurationVar(&f.popular, "popular-refresh", time.Minute, "how often the interaction counts of every item (the new-user fallback) are re-read from Redis")
	fs.DurationVar(&f.listMaxAge, "list-max-age", 0, "answer plain recommendations (exclude_seen, no candidates, k <= list length) from the lists of 'visrec lists' written at most this long ago, e.g. 2s; 0: always rank exactly")
}

func (f *serveFlags) options() serving.Options {
	tok := f.token
	if tok == "" {
		tok = os.Getenv("VISREC_TOKEN")
	}
	return serving.Options{Token: tok, MaxK: f.maxK, MaxIDs: f.maxIDs, MaxBodyBytes: f.maxBody, Timeout: f.timeout, ShutdownGrace: f.grace}
}

func runServe(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	ns := fs.String("namespace", envOr("VISREC_NAMESPACE", "visrec"), "feature store namespace: the prefix {ns} of every Redis key (env VISREC_NAMESPACE)")
	var sf serveFlags
	sf.register(fs)
	var mf modelFlags
	mf.registerServing(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	sf.redisAddr, sf.ns = *redisAddr, *ns
	ms, err := servableModels(&mf)
	if err != nil {
		return err
	}
	store, err := openRedis(ctx, *redisAddr, *ns)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", sf.addr)
	if err != nil {
		return err
	}
	log.Info("serving", zap.String("url", "http://"+ln.Addr().String()), zap.String("models", mf.names),
		zap.String("redis", *redisAddr), zap.String("namespace", *ns), zap.Bool("auth", sf.options().Token != ""),
		zap.Duration("list_max_age", sf.listMaxAge))
	return serveStore(ctx, log, store, ms, &sf, ln, nil)
}

// registerServing registers the two model flags that matter to serving (the others of
// modelFlags are learning settings): the models and their K, which must be those the
// updaters write.
func (m *modelFlags) registerServing(fs *flag.FlagSet) {
	fs.StringVar(&m.names, "models", "bpr", "comma-separated models to serve, as the updaters run them: bpr, mf, pmf, mf-implicit (served as mf)")
	fs.IntVar(&m.factors, "factors", 64, "latent factors K, as the updaters run them")
}

// servableModels builds the --models as the serving form of each (models.Servable).
func servableModels(mf *modelFlags) ([]models.Servable, error) {
	online, _, err := mf.build()
	if err != nil {
		return nil, err
	}
	var out []models.Servable
	for _, m := range online {
		s, ok := m.(models.Servable)
		if !ok {
			return nil, fmt.Errorf("model %s cannot be served (it is not a dot product of user and item vectors)", m.Name())
		}
		out = append(out, s)
	}
	return out, nil
}

// serveStore runs a ranking index over store and the HTTP server on ln until ctx ends (or the
// index's first load fails). On ctx's end the server drains first, then the index stops.
// ready, when not nil, is closed once the index has loaded.
func serveStore(ctx context.Context, log *zap.Logger, store featurestore.Store, ms []models.Servable, sf *serveFlags,
	ln net.Listener, ready chan<- struct{}) error {
	idx, err := ranking.New(store, ms, ranking.Options{SyncInterval: sf.sync, GlobalRefresh: sf.global, PopularRefresh: sf.popular, Workers: sf.workers,
		Logger: log.Named("ranking")})
	if err != nil {
		ln.Close()
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "visrec_ranking_items", Help: "Catalog items in the served index."},
			func() float64 { return float64(idx.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "visrec_ranking_version", Help: "Version of the served index state."},
			func() float64 { return float64(idx.Version()) }))
	opts := sf.options()
	if sf.listMaxAge > 0 {
		// A client of its own: list reads must not queue behind the index's syncs.
		client := redis.NewClient(&redis.Options{Addr: sf.redisAddr})
		defer client.Close()
		opts.Lists, opts.ListMaxAge = serving.NewRedisLists(client, sf.ns), sf.listMaxAge
	}
	srv, err := serving.New(idx, opts, reg, log)
	if err != nil {
		ln.Close()
		return err
	}
	// The index outlives the server's drain: requests in flight still rank against it.
	idxCtx, stopIdx := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIdx()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- idx.Run(idxCtx) }()
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(srvCtx, ln) }()
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for !idx.Ready() {
			select {
			case <-srvCtx.Done():
				return
			case <-t.C:
			}
		}
		log.Info("ready: index loaded", zap.Int("items", idx.Len()), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
		if ready != nil {
			close(ready)
		}
	}()
	select {
	case err := <-runErr: // only a failed first load ends Run before idxCtx
		stopSrv()
		<-srvErr
		return err
	case err := <-srvErr:
		stopIdx()
		if e := <-runErr; e != nil && !errors.Is(e, context.Canceled) && err == nil {
			err = e
		}
		if err == nil && ctx.Err() != nil {
			log.Info("server stopped after draining requests")
			return ctx.Err()
		}
		return err
	}
}
