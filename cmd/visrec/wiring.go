package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// modelFlags are the flags shared by the commands that run online models.
type modelFlags struct {
	names     string
	factors   int
	seed      uint64
	flushN    int
	flushT    time.Duration
	minRating float64
	lr, reg   float64
	negatives int
	// The online visual models (vbpr, vmf, deepstyle).
	visualFactors int
	featureDim    int
	featureScale  float64
	categories    int
	itemFlushT    time.Duration
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.names, "models", "bpr", "comma-separated models: bpr, mf (explicit ratings), pmf (explicit, no biases), mf-implicit, and the online visual models vbpr (visrec update; vbpr-online in eval), vmf (explicit ratings) and deepstyle, which read item image features; visrec eval and retrain also take the batch models wmf (ALS, --epochs iterations), vbpr (batch VBPR, needs item features), neumf, multvae, bivae, pmf-als and mf-als (explicit ratings, ALS)")
	fs.IntVar(&m.factors, "factors", 64, "latent factors K")
	fs.IntVar(&m.negatives, "negatives", updater.DefaultOptions().Negatives, "sampled negatives (steps) per positive event for bpr and mf-implicit")
	fs.Float64Var(&m.lr, "lr", 0, "learning rate (0: each model's default)")
	fs.Float64Var(&m.reg, "reg", 0, "L2 regularisation of the factors (0: each model's default)")
	fs.Uint64Var(&m.seed, "seed", 1, "seed of user initialisation and negative sampling")
	fs.IntVar(&m.flushN, "flush-events", updater.DefaultOptions().FlushEvents, "flush to the store after this many events")
	fs.DurationVar(&m.flushT, "flush-interval", updater.DefaultOptions().FlushInterval, "flush to the store at least this often while events arrive")
	fs.Float64Var(&m.minRating, "min-positive-rating", 0, "ratings below this are not positives for implicit models (bpr, mf-implicit)")
	fs.IntVar(&m.visualFactors, "visual-factors", models.DefaultOnlineVBPROptions().VisualFactors, "visual factors K' of online vbpr and vmf (the rows of E)")
	fs.IntVar(&m.featureDim, "feature-dim", models.DefaultOnlineVBPROptions().FeatureDim, "item feature (embedding) length of the visual models (1280: MobileNetV2)")
	fs.Float64Var(&m.featureScale, "feature-scale", models.PosterFeatureScale, "the visual models multiply item features by this (1/27 brings the MobileNetV2 poster features to norm ~1)")
	fs.IntVar(&m.categories, "categories", models.DefaultDeepStyleOptions().Categories, "deepstyle: category latents (item metadata \"category\", hashed; 1: one category for all)")
	fs.DurationVar(&m.itemFlushT, "item-flush-interval", updater.DefaultOptions().ItemFlushInterval, "flush this soon after an item event, so that a new item reaches the store fast")
}

func (m *modelFlags) build() ([]models.Online, updater.Options, error) {
	var ms []models.Online
	for _, name := range strings.Split(m.names, ",") {
		switch strings.TrimSpace(name) {
		case "bpr":
			o := models.DefaultBPROptions()
			o.Factors = m.factors
			if m.lr > 0 {
				o.LearnRate = float32(m.lr)
			}
			if m.reg > 0 {
				o.Reg = float32(m.reg)
			}
			if err := o.Validate(); err != nil {
				return nil, updater.Options{}, err
			}
			ms = append(ms, models.NewBPR(o))
		case "mf", "mf-implicit", "pmf":
			o := models.DefaultMFOptions()
			o.Factors = m.factors
			o.NoBias = strings.TrimSpace(name) == "pmf"
			if m.lr > 0 {
				o.LearnRate = float32(m.lr)
			}
			if m.reg > 0 {
				o.Reg = float32(m.reg)
			}
			o.Explicit = strings.TrimSpace(name) != "mf-implicit"
			if err := o.Validate(); err != nil {
				return nil, updater.Options{}, err
			}
			ms = append(ms, models.NewMF(o))
		case "vbpr", "vbpr-online":
			o := models.DefaultOnlineVBPROptions()
			o.Factors, o.VisualFactors, o.FeatureDim, o.FeatureScale = m.factors, m.visualFactors, m.featureDim, float32(m.featureScale)
			m.rates(&o.LearnRate, &o.Reg)
			if err := o.Validate(); err != nil {
				return nil, updater.Options{}, err
			}
			ms = append(ms, models.NewOnlineVBPR(o))
		case "vmf":
			o := models.DefaultVMFOptions()
			o.Factors, o.VisualFactors, o.FeatureDim, o.FeatureScale = m.factors, m.visualFactors, m.featureDim, float32(m.featureScale)
			m.rates(&o.LearnRate, &o.Reg)
			if err := o.Validate(); err != nil {
				return nil, updater.Options{}, err
			}
			ms = append(ms, models.NewVMF(o))
		case "deepstyle":
			o := models.DefaultDeepStyleOptions()
			o.Factors, o.FeatureDim, o.FeatureScale, o.Categories = m.factors, m.featureDim, float32(m.featureScale), m.categories
			m.rates(&o.LearnRate, &o.Reg)
			if err := o.Validate(); err != nil {
				return nil, updater.Options{}, err
			}
			ms = append(ms, models.NewDeepStyle(o))
		default:
			return nil, updater.Options{}, fmt.Errorf("unknown model %q (known: bpr, mf, pmf, mf-implicit, vbpr, vmf, deepstyle)", name)
		}
	}
	opts := updater.DefaultOptions()
	opts.Seed = m.seed
	opts.FlushEvents = m.flushN
	opts.FlushInterval = m.flushT
	opts.MinPositiveRating = float32(m.minRating)
	opts.Negatives = m.negatives
	opts.ItemFlushInterval = m.itemFlushT
	return ms, opts, nil
}

// rates applies --lr and --reg (0: keep the model's default).
func (m *modelFlags) rates(lr, reg *float32) {
	if m.lr > 0 {
		*lr = float32(m.lr)
	}
	if m.reg > 0 {
		*reg = float32(m.reg)
	}
}

// visual reports whether any of ms reads item features.
func visual(ms []models.Online) bool {
	for _, m := range ms {
		if _, ok := m.(models.Visual); ok {
			return true
		}
	}
	return false
}

// labels are the names the user gave the models, in build order ("mf-implicit" runs under
// the model name "mf").
func (m *modelFlags) labels() []string {
	var out []string
	for _, n := range strings.Split(m.names, ",") {
		out = append(out, strings.TrimSpace(n))
	}
	return out
}

// openRedis connects to Redis at addr and checks that it answers.
func openRedis(ctx context.Context, addr, namespace string) (*featurestore.Redis, error) {
	return openRedisPart(ctx, addr, namespace, featurestore.DefaultCommitPart)
}

// openRedisPart is openRedis with featurestore.RedisOptions.CommitPart part.
func openRedisPart(ctx context.Context, addr, namespace string, part int) (*featurestore.Redis, error) {
	client := redis.NewClient(&redis.Options{Addr: addr})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis at %s does not answer (start it with deploy/services.sh up): %w", addr, err)
	}
	opts := featurestore.DefaultRedisOptions()
	opts.Namespace, opts.CommitPart = namespace, part
	return featurestore.NewRedis(client, opts)
}

// serveMetrics serves /metrics of reg on addr until ctx ends; an empty addr serves nothing.
func serveMetrics(ctx context.Context, log *zap.Logger, addr string, reg *prometheus.Registry) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", zap.Error(err))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck // best effort at exit
	}()
	log.Info("metrics", zap.String("url", "http://"+addr+"/metrics"))
}

// startCPUProfile profiles the process into path until the returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
