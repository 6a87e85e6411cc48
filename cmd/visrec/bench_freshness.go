package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/toplists"
	"github.com/visrec/visrec/updater"
)

func init() {
	benches["freshness"] = command{summary: "new item event -> ranked by serving, and -> in a user's top-K list in Redis, under background load", run: benchFreshness}
}

// freshnessConfig is what one freshness run needs.
type freshnessConfig struct {
	brokers    []string
	redisAddr  string
	rate       int           // background interactions per second while measuring
	warmup     int64         // interactions streamed, as fast as possible, before measuring
	duration   time.Duration // measuring time
	probeEvery time.Duration // one probe item per interval
	watchEvery time.Duration // how often the watchers look for the timed items
	probeUsers int           // probes go round-robin to this many of the most active users
	k          int           // list length
	partitions int
	cpuProfile string // profile the process while measuring, into this file
	commitPart int    // featurestore.RedisOptions.CommitPart of the updater's store
	mf         modelFlags
	log        *zap.Logger
}

// freshnessResult holds the measured delays.
type freshnessResult struct {
	stored    []time.Duration // item event produced -> the item is in the catalog in Redis
	scoreable []time.Duration // item event produced -> the serving index ranks the item
	listed    []time.Duration // probe produced -> in the probe user's list in Redis
	lookups   []time.Duration // a client's list read (GET + decode of the list) every 5 ms
	// Where the probes' time goes: produced -> in the catalog, in the catalog -> ranked by
	// the index, and ranked -> in the list (the materializer's part), each give or take the
	// watchers' resolution.
	probeStored, catalogToIndex, indexToList []time.Duration
	missed                                   int     // probes not listed within probeTimeout
	lost                                     int     // item events never ranked by the index within probeTimeout
	consumed                                 float64 // interactions/s committed while measuring
	model                                    string
	user                                     string // the first probe user (the most active)
	users                                    int    // probe users
}

const probeTimeout = 10 * time.Second

// benchFreshness measures how fast a new item becomes a candidate. A synthetic stream with
// planted visual tastes runs through the production path (Kafka -> consumer -> updater ->
// Redis -> ranking index -> list materializer -> Redis) under a background load of
// interactions. Every item event is timed from its produce call until the serving index
// ranks the item. Probe items, whose embeddings are crafted to score above the probe user's
// K-th listed item, are timed until they appear in that user's list in Redis: the
// crafting makes entering the list certain, so that figure is the pipeline's delay, not the
// model's judgement.
func benchFreshness(ctx context.Context, log *zap.Logger, args []string) error {
	c, err := parseFreshness(log, args)
	if err != nil {
		return err
	}
	res, err := runFreshness(ctx, c)
	if err != nil {
		return err
	}
	printFreshness(c, res)
	return nil
}

// parseFreshness reads bench freshness's flags.
func parseFreshness(log *zap.Logger, args []string) (freshnessConfig, error) {
	fs := flag.NewFlagSet("bench freshness", flag.ContinueOnError)
	brokers := fs.String("brokers", envOr("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka brokers (env VISREC_KAFKA_BROKERS)")
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	c := freshnessConfig{log: log}
	fs.IntVar(&c.rate, "rate", 10_000, "background interactions per second while measuring")
	fs.Int64Var(&c.warmup, "warmup", 200_000, "interactions streamed before measuring, so that the models have learned")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measuring time")
	fs.DurationVar(&c.probeEvery, "probe-every", 200*time.Millisecond, "one probe item per interval")
	fs.DurationVar(&c.watchEvery, "watch-every", 2*time.Millisecond, "how often the watchers look (in Redis and the index) for the timed items: the figures' resolution; each look costs Redis calls")
	fs.IntVar(&c.probeUsers, "probe-users", 30, "probes go round-robin to this many of the most active users (keep duration/probe-every/probe-users below --k, so that earlier probes never fill a list)")
	fs.IntVar(&c.k, "k", 10, "length of the materialized lists")
	fs.IntVar(&c.partitions, "partitions", 4, "partitions of the benchmark topics")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the process (producer, consumer, updater, index, materializer) while measuring to this file")
	fs.IntVar(&c.commitPart, "commit-part", featurestore.DefaultCommitPart, "row writes per Redis script of a flush, as visrec update's (-1: one script per flush)")
	c.mf.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["models"] {
		c.mf.names = "vbpr"
	}
	if !set["feature-dim"] {
		c.mf.featureDim = producers.DefaultSyntheticConfig().VisualDim
	}
	if !set["feature-scale"] {
		// The synthetic features have unit variance: scale them to norm ~1, as
		// --feature-scale does for MobileNetV2 features.
		c.mf.featureScale = 1 / math.Sqrt(float64(c.mf.featureDim))
	}
	c.brokers, c.redisAddr = splitList(*brokers), *redisAddr
	return c, nil
}

func printFreshness(c freshnessConfig, r freshnessResult) {
	fmt.Printf("background: %.0f interactions/s consumed (target %d/s), models %s, lists of %d (model %s, %d probe users from %s)\n",
		r.consumed, c.rate, c.mf.names, c.k, r.model, r.users, r.user)
	line := func(what string, ds []time.Duration, extra string) {
		if len(ds) == 0 {
			fmt.Printf("%-44s none%s\n", what, extra)
			return
		}
		fmt.Printf("%-44s n=%d  p50 %s  p95 %s  p99 %s  max %s%s\n", what, len(ds),
			pct(ds, 50), pct(ds, 95), pct(ds, 99), pct(ds, 100), extra)
	}
	line("item event -> in the catalog in Redis:", r.stored, "")
	line("item event -> ranked by the serving index:", r.scoreable, fmt.Sprintf("  (never: %d)", r.lost))
	line("probe item -> in the user's top-K list:", r.listed, fmt.Sprintf("  (missed: %d)", r.missed))
	line("  of which: probe -> in the catalog:", r.probeStored, "")
	line("  of which: in the catalog -> ranked:", r.catalogToIndex, "")
	line("  of which: ranked by the index -> listed:", r.indexToList, "")
	line("a client's list read (GET + decode), 200/s:", r.lookups, "")
}

// pct returns the p-th percentile (nearest rank) of ds, rounded to 0.1 ms.
func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(100 * time.Microsecond)
}

// timing is a set of items waiting to be seen, each with the time it was produced.
type timing struct {
	mu      sync.Mutex
	pending map[string]time.Time
	done    []time.Duration
	byID    map[string]time.Duration // the delays of done, by item
	expired int
}

func newTiming() *timing {
	return &timing{pending: map[string]time.Time{}, byID: map[string]time.Duration{}}
}

func (t *timing) start(id string, at time.Time) {
	t.mu.Lock()
	t.pending[id] = at
	t.mu.Unlock()
}

// check calls seen for every pending item and records those it reports.
func (t *timing) check(seen func(id string) bool) {
	t.mu.Lock()
	ids := make([]string, 0, len(t.pending))
	for id := range t.pending {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	for _, id := range ids {
		ok := seen(id)
		now := time.Now()
		t.mu.Lock()
		at := t.pending[id]
		switch {
		case ok:
			t.done = append(t.done, now.Sub(at))
			t.byID[id] = now.Sub(at)
			delete(t.pending, id)
		case now.Sub(at) > probeTimeout:
			t.expired++
			delete(t.pending, id)
		}
		t.mu.Unlock()
	}
}

func (t *timing) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// runFreshness sets up the pipeline on fresh topics and a fresh namespace, warms it up,
// then measures; everything it created is removed at the end.
func runFreshness(ctx context.Context, c freshnessConfig) (freshnessResult, error) {
	var res freshnessResult
	quiet := c.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	name := fmt.Sprintf("fresh-%d", time.Now().UnixNano()%1e9)
	topics := []string{name + ".events", name + ".items", name + ".dead"}
	for _, t := range topics {
		if err := producers.EnsureTopic(ctx, c.brokers, t, c.partitions); err != nil {
			return res, err
		}
	}
	defer deleteTopics(c.brokers[0], topics)
	if c.commitPart == 0 {
		return res, errors.New("--commit-part must be positive, or -1 for one script per flush")
	}
	store, err := openRedisPart(ctx, c.redisAddr, name, c.commitPart)
	if err != nil {
		return res, err
	}
	defer dropNamespace(c.redisAddr, name)
	defer store.Close()

	ms, uopts, err := c.mf.build()
	if err != nil {
		return res, err
	}
	var probeModel models.Servable
	var servables []models.Servable
	for _, m := range ms {
		s, ok := m.(models.Servable)
		if !ok {
			return res, fmt.Errorf("model %s cannot be served", m.Name())
		}
		servables = append(servables, s)
		if _, vis := m.(models.Visual); vis && probeModel == nil {
			probeModel = s
		}
	}
	if probeModel == nil {
		return res, errors.New("bench freshness needs a visual model (--models vbpr, deepstyle or vmf)")
	}
	res.model = probeModel.Name()
	upd, err := updater.New(store, uopts, ms...)
	if err != nil {
		return res, err
	}
	copts := consumers.DefaultOptions(c.brokers...)
	copts.Group, copts.EventsTopic, copts.ItemsTopic, copts.DeadLetterTopic = name, topics[0], topics[1], topics[2]
	cons, err := consumers.New(copts, upd, quiet, nil)
	if err != nil {
		return res, err
	}
	idx, err := ranking.New(store, servables, ranking.Options{Logger: quiet})
	if err != nil {
		return res, err
	}
	client := redis.NewClient(&redis.Options{Addr: c.redisAddr})
	defer client.Close()
	mat, err := toplists.New(client, store, idx, toplists.Options{Namespace: name, K: c.k, Models: []string{res.model}, Logger: quiet})
	if err != nil {
		return res, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan error, 3)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{cons.Run, idx.Run, mat.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				failed <- err
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	cfg := producers.DefaultSyntheticConfig()
	cfg.Events, cfg.VisualDim = 0, c.mf.featureDim
	gen, err := producers.NewSynthetic(cfg)
	if err != nil {
		return res, err
	}
	writer := func(topic string, batch int) *kafka.Writer {
		return &kafka.Writer{Addr: kafka.TCP(c.brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
			BatchSize: batch, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireOne}
	}
	evw, itw := writer(topics[0], 1000), writer(topics[1], 1) // kafka-go allocates BatchSize slots per write call
	defer evw.Close()
	defer itw.Close()

	stored, scoreable, listed := newTiming(), newTiming(), newTiming()
	announced := 0
	perUser := map[string]int{}
	// produce writes n interactions, announcing each released item just before its first
	// interaction (and timing it).
	produce := func(n int) error {
		msgs := make([]kafka.Message, 0, n)
		for range n {
			for ; announced < gen.Available(); announced++ {
				it, ok := gen.ItemEvent(announced)
				if !ok {
					return fmt.Errorf("synthetic item %d has no embedding", announced)
				}
				if len(msgs) > 0 { // interactions before the item keep their order
					if err := evw.WriteMessages(ctx, msgs...); err != nil {
						return err
					}
					msgs = msgs[:0]
				}
				t0 := time.Now()
				if err := itw.WriteMessages(ctx, kafka.Message{Key: []byte(it.Item), Value: it.AppendBinary(nil)}); err != nil {
					return err
				}
				scoreable.start(it.Item, t0)
				stored.start(it.Item, t0)
			}
			e, ok := gen.Next()
			if !ok {
				return errors.New("synthetic stream ended")
			}
			perUser[e.User]++
			msgs = append(msgs, kafka.Message{Key: []byte(e.User), Value: e.AppendBinary(nil)})
		}
		if len(msgs) == 0 {
			return nil
		}
		return evw.WriteMessages(ctx, msgs...)
	}
	waitFor := func(what string, limit time.Duration, cond func() (bool, error)) error {
		deadline := time.Now().Add(limit)
		for {
			ok, err := cond()
			if err != nil || ok {
				return err
			}
			select {
			case err := <-failed:
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("bench freshness: %s did not happen within %s", what, limit)
			}
		}
	}

	// Warm-up: stream, let the models learn, and wait for the probe user's list.
	bar := newBar(c.warmup, "warm-up")
	for sent := int64(0); sent < c.warmup; sent += 5000 {
		if err := produce(int(min(5000, c.warmup-sent))); err != nil {
			return res, err
		}
		bar.Set64(sent) //nolint:errcheck // display only
	}
	bar.Finish() //nolint:errcheck // display only
	total := c.warmup + int64(announced)
	if err := waitFor("consuming the warm-up", 5*time.Minute, func() (bool, error) { return cons.Committed() >= total, nil }); err != nil {
		return res, err
	}
	// The probe users: the most active ones (ties by id), each with a full list.
	var probeUsers []string
	for u := range perUser {
		probeUsers = append(probeUsers, u)
	}
	slices.SortFunc(probeUsers, func(a, b string) int {
		if perUser[a] != perUser[b] {
			return perUser[b] - perUser[a]
		}
		return strings.Compare(a, b)
	})
	probeUsers = probeUsers[:min(len(probeUsers), max(1, c.probeUsers))]
	res.user, res.users = probeUsers[0], len(probeUsers)
	listKey := func(u string) string { return toplists.ListKey(name, res.model, u) }
	if err := waitFor("the probe users' lists", time.Minute, func() (bool, error) {
		for _, u := range probeUsers {
			l, err := toplists.ReadList(ctx, client, listKey(u))
			if err != nil || len(l.Items) < c.k {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		return res, err
	}
	var probeKeys sync.Map // probe id → the key of its user's list
	scoreable.check(func(id string) bool { _, ok := idx.Item(id); return ok })
	scoreable, stored = newTiming(), newTiming() // measure only what is produced under load

	// Watchers poll every c.watchEvery.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchers sync.WaitGroup
	watch := func(t *timing, seen func(string) bool) {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			tick := time.NewTicker(c.watchEvery)
			defer tick.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
					t.check(seen)
				}
			}
		}()
	}
	catalogKey := "{" + name + "}:cat:" + updater.CatalogItems
	watch(stored, func(id string) bool { return client.ZScore(wctx, catalogKey, id).Err() == nil })
	watch(scoreable, func(id string) bool { _, ok := idx.Item(id); return ok })
	watch(listed, func(id string) bool {
		key, _ := probeKeys.Load(id)
		l, err := toplists.ReadList(wctx, client, key.(string))
		return err == nil && slices.ContainsFunc(l.Items, func(e toplists.Entry) bool { return e.Item == id })
	})

	// A client reads a probe user's list every 5 ms, as serving's list path does: how long
	// Redis keeps clients waiting while the pipeline writes.
	var lookups []time.Duration
	watchers.Add(1)
	go func() {
		defer watchers.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			t := time.Now()
			if _, err := toplists.ReadList(wctx, client, listKey(probeUsers[i%len(probeUsers)])); err == nil {
				lookups = append(lookups, time.Since(t))
			}
		}
	}()

	// Measure: the background load runs on its own goroutine, producing what the rate owes
	// every 10 ms; a probe goes out every c.probeEvery.
	if c.cpuProfile != "" {
		stop, err := startCPUProfile(c.cpuProfile)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	committed0, t0 := cons.Committed(), time.Now()
	end := t0.Add(c.duration)
	loadDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		sent := 0
		for now := range tick.C {
			if now.After(end) || ctx.Err() != nil {
				loadDone <- nil
				return
			}
			owed := int(float64(c.rate)*now.Sub(t0).Seconds()) - sent
			if owed <= 0 {
				continue
			}
			if err := produce(owed); err != nil {
				loadDone <- err
				return
			}
			sent += owed
		}
	}()
	probeTick := time.NewTicker(c.probeEvery)
	defer probeTick.Stop()
	probes := 0
	mbar := newBar(int64(c.duration/time.Second), "measuring (s)")
	for measuring := true; measuring; {
		select {
		case err := <-failed:
			return res, err
		case err := <-loadDone:
			if err != nil {
				return res, err
			}
			measuring = false
		case <-probeTick.C:
			mbar.Set64(int64(time.Since(t0) / time.Second)) //nolint:errcheck // display only
			id := fmt.Sprintf("probe-%d", probes)
			probes++
			user := probeUsers[probes%len(probeUsers)]
			key := listKey(user)
			emb, err := craftProbe(ctx, store, client, idx, probeModel, user, key, c.mf.featureDim)
			if err != nil {
				return res, err
			}
			at := time.Now()
			it := events.Item{Item: id, Timestamp: at.UnixMilli(), Model: "probe", Embedding: emb}
			if err := itw.WriteMessages(ctx, kafka.Message{Key: []byte(id), Value: it.AppendBinary(nil)}); err != nil {
				return res, err
			}
			scoreable.start(id, at)
			stored.start(id, at)
			probeKeys.Store(id, key)
			listed.start(id, at)
		}
	}
	mbar.Finish() //nolint:errcheck // display only
	res.consumed = float64(cons.Committed()-committed0) / time.Since(t0).Seconds()
	_ = waitFor("the last probes", probeTimeout+time.Second, func() (bool, error) {
		return scoreable.waiting() == 0 && listed.waiting() == 0 && stored.waiting() == 0, nil
	})
	stopWatch()
	watchers.Wait()
	res.lookups = lookups
	res.stored = stored.done
	res.scoreable, res.lost = scoreable.done, scoreable.expired+scoreable.waiting()
	res.listed, res.missed = listed.done, listed.expired+listed.waiting()
	for id, l := range listed.byID {
		st, okS := stored.byID[id]
		ix, okX := scoreable.byID[id]
		if okS {
			res.probeStored = append(res.probeStored, st)
		}
		if okS && okX {
			res.catalogToIndex = append(res.catalogToIndex, ix-st)
		}
		if okX {
			res.indexToList = append(res.indexToList, l-ix)
		}
	}
	return res, nil
}

// craftProbe returns an embedding whose score for user under m is 1 above the best
// non-probe item, in the user's list (key) and by the serving index now (the list in Redis
// may lag score drift by Debounce): the user's list holds fewer than K earlier probes
// (--probe-users), so its K-th entry is a non-probe item and the probe must enter. Probes
// are not crafted above earlier probes, whose scores would escalate and, with the
// embeddings' norms, amplify every later drift of E. The model's score of a new item (zero item row) is
// affine in its features, b + w·f, so f = t·w/|w| with t chosen for the target score.
// The weights w come from m's serving vectors evaluated on the basis vectors, with the
// index's served global row, so nothing here depends on a model's row layout and the
// probe scores as crafted in the index and the lists.
func craftProbe(ctx context.Context, store featurestore.Store, client *redis.Client, idx *ranking.Index, m models.Servable,
	user, key string, dim int) ([]float32, error) {
	urow, err := store.Vectors(ctx, m.Name()+":users", []string{user})
	if err != nil {
		return nil, err
	}
	grow, err := store.Vectors(ctx, m.Name()+":global", []string{"g"})
	if err != nil {
		return nil, err
	}
	if urow[0] == nil {
		return nil, fmt.Errorf("probe user %s has no %s row", user, m.Name())
	}
	// The served global row, which the index and the lists score with (it lags the
	// store's by up to GlobalRefresh); the store's when the index has none yet.
	g := grow[0]
	if sg, err := idx.Global(m.Name()); err == nil && len(sg) == len(g) {
		g = sg
	}
	l, err := toplists.ReadList(ctx, client, key)
	if err != nil || len(l.Items) == 0 {
		return nil, fmt.Errorf("probe user's list %s: %d items, %v", key, len(l.Items), err)
	}
	list := l.Items // best first
	isProbe := func(id string) bool { return strings.HasPrefix(id, "probe-") }
	target := math.Inf(-1)
	for _, e := range list {
		if !isProbe(e.Item) {
			target = float64(e.Score) + 1
			break
		}
	}
	if uv, err := idx.UserVector(ctx, m.Name(), user); err == nil {
		if best, err := idx.RecommendVector(m.Name(), uv, len(list)+1, nil); err == nil {
			for _, b := range best {
				if !isProbe(b.Item) {
					target = math.Max(target, float64(b.Score)+1)
					break
				}
			}
		}
	}
	if math.IsInf(target, -1) {
		return nil, fmt.Errorf("probe user %s: no non-probe item listed", user)
	}
	uv, iv := make([]float32, m.ServeDim()), make([]float32, m.ServeDim())
	m.UserVector(uv, urow[0], g)
	item, f := make([]float32, m.ItemDim()), make([]float32, dim)
	score := func() float64 {
		m.ItemVector(iv, item, g, f)
		var s float64
		for k := range uv {
			s += float64(uv[k]) * float64(iv[k])
		}
		return s
	}
	b := score()
	w := make([]float64, dim)
	var norm float64
	for j := range f {
		f[j] = 1
		w[j] = score() - b
		f[j] = 0
		norm += w[j] * w[j]
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		return nil, fmt.Errorf("probe user %s: the score of a new item does not depend on its features", user)
	}
	t := math.Max((target-b)/norm, 1/norm)
	for j := range f {
		f[j] = float32(t * w[j] / norm)
	}
	return f, nil
}
