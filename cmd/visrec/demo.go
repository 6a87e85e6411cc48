package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/serving"
	"github.com/visrec/visrec/updater"
)

func init() {
	commands["demo"] = command{summary: "the whole pipeline on an embedded Kafka and an in-memory store: online BPR and VBPR, cold start, the HTTP API", run: runDemo, streaming: true}
}

// demoConfig is what one demo run needs.
type demoConfig struct {
	data       string // an event log to replay instead of the synthetic stream
	events     int64  // length of the synthetic stream
	partitions int
	k          int // cut-off of Recall@K and of the top-K lists
	every      int // evaluate one in this many eligible events (0: per source)
	cold       int // the cold slice: items with fewer interactions than this so far
	newItems   int // brand-new items announced after the stream
	matches    int // best-matching users per brand-new item
	mf         modelFlags
	out        io.Writer // the report
	bar        bool      // a progress bar on stderr (when it is a terminal)
}

// demoResult is what a demo run measured, for the report and the tests.
type demoResult struct {
	source        string
	events, items int64 // interactions and item events through Kafka
	elapsed       time.Duration
	every         int
	rankers       []string
	total, cold   []eval.Stats
	fresh         []freshItem // the cold start after the stream (synthetic only)
	freshModels   []string    // the models fresh ranks are given for
	indexed       time.Duration
	catalog       int    // catalog items served at the cold start
	apiCmd        string // the curl command and its answer
	apiBody       string
	apiStatus     int
	apiUser       string
	apiItem       string // the brand-new item the API user ranks highest, and its rank
	apiRank       int
}

// freshItem is one brand-new item and how each model ranks it (0-based ranks among the
// user's unseen items) for the active users whose planted taste matches it best and least.
type freshItem struct {
	id          string
	best, worst []string // users
	inTop       []int    // per freshModels: how many of best have it in their top K
	bestRank    []int    // per freshModels: median rank over best
	worstRank   []int    // per freshModels: median rank over worst
	topUser     []string // per freshModels: the user of best for whom it ranks highest
	topRank     []int    // per freshModels: that rank
}

// runDemo runs the production consumer and updater against an in-process Kafka-protocol
// broker (kfake) and the in-memory feature store, then the ranking index and the HTTP API
// over that store: nothing to install.
func runDemo(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	c := demoConfig{out: os.Stdout, bar: true}
	fs.StringVar(&c.data, "data", "", "replay this event log (MovieLens ratings.csv, CSV or JSONL) instead of the synthetic stream (default models: bpr)")
	fs.Int64Var(&c.events, "events", 300_000, "length of the synthetic stream")
	fs.IntVar(&c.partitions, "partitions", 1, "partitions of the embedded topics (1 keeps the run deterministic)")
	fs.IntVar(&c.k, "k", 10, "cut-off of the prequential Recall@K and of the cold-start top-K")
	fs.IntVar(&c.every, "eval-every", 0, "evaluate one in this many eligible events (0: 1 for --data, 10 for the synthetic stream)")
	fs.IntVar(&c.cold, "cold", 5, "the cold-start slice: evaluations of items with fewer interactions than this so far")
	fs.IntVar(&c.newItems, "new-items", 5, "brand-new items announced after the synthetic stream (embedding only)")
	fs.IntVar(&c.matches, "matches", 10, "users per brand-new item whose planted taste matches it best, and as many whose taste matches it least")
	c.mf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of demo (on the synthetic stream, the model flags left alone are --models bpr,vbpr "+
			"--factors %d --negatives 2 --feature-dim %d --feature-scale 1/sqrt(feature-dim); the defaults below are visrec update's):\n",
			producers.DefaultSyntheticConfig().Dim, producers.DefaultSyntheticConfig().VisualDim)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.mf.demoDefaults(set, c.data == "")
	_, err := runDemoWith(ctx, log, c)
	return err
}

// demoDefaults sets the model flags the user left alone: bpr and vbpr on the synthetic
// stream (bpr alone on a log, which has no image embeddings), K=16 factors like the
// stream's planted tastes, features as the stream draws them, and 2 negatives per
// positive, which keeps the demo fast. A log keeps the defaults of visrec update.
func (m *modelFlags) demoDefaults(set map[string]bool, synthetic bool) {
	if !set["models"] && synthetic {
		m.names = "bpr,vbpr"
	}
	if !set["factors"] && synthetic {
		m.factors = producers.DefaultSyntheticConfig().Dim
	}
	if !set["negatives"] && synthetic {
		m.negatives = 2
	}
	if !set["feature-dim"] && synthetic {
		m.featureDim = producers.DefaultSyntheticConfig().VisualDim
	}
	if !set["feature-scale"] && synthetic {
		// The synthetic features have unit variance per entry: scale them to norm ~1, as
		// --feature-scale does for MobileNetV2 features.
		m.featureScale = 1 / math.Sqrt(float64(m.featureDim))
	}
}

// runDemoWith runs the demo and prints its report to c.out.
func runDemoWith(ctx context.Context, log *zap.Logger, c demoConfig) (*demoResult, error) {
	ms, uopts, err := c.mf.build()
	if err != nil {
		return nil, err
	}
	res := &demoResult{every: c.every}
	out := c.out

	// The stream: a log file, sorted by time, or the synthetic generator with image
	// embeddings announced on the items topic.
	var evs []events.Interaction
	var gen *producers.Synthetic
	if c.data != "" {
		var stats producers.LogStats
		evs, stats, err = producers.ReadLog(c.data, producers.DefaultLogOptions())
		if err != nil {
			return nil, err
		}
		res.events = int64(len(evs))
		res.source = fmt.Sprintf("%s (%s, %s events)", c.data, stats.Variant, thousands(int64(len(evs))))
		if res.every == 0 {
			res.every = 1
		}
	} else {
		cfg := producers.DefaultSyntheticConfig()
		cfg.Events, cfg.VisualDim = c.events, c.mf.featureDim
		cfg.Affinity, cfg.Candidates = 4, 32 // strong planted tastes: there is something to learn
		// Release items all along the stream and hold the last c.newItems back: they are
		// the brand-new items of the cold start after it.
		initial := int(math.Round(cfg.InitialItemFraction * float64(cfg.Items)))
		if rel := cfg.Items - initial - c.newItems; rel > 0 {
			cfg.ReleaseEvery = (c.events + int64(rel) - 1) / int64(rel)
		}
		if gen, err = producers.NewSynthetic(cfg); err != nil {
			return nil, err
		}
		res.events = c.events
		res.source = fmt.Sprintf("synthetic stream of %s events, %s users, %s items with %d-d image embeddings, planted tastes",
			thousands(c.events), thousands(int64(cfg.Users)), thousands(int64(cfg.Items)), cfg.VisualDim)
		if res.every == 0 {
			res.every = 10
		}
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(int32(c.partitions), events.TopicEvents, events.TopicItems, events.TopicDeadLetter))
	if err != nil {
		return nil, fmt.Errorf("start the embedded broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	store := featurestore.NewMemory()
	upd, err := updater.New(store, uopts, ms...)
	if err != nil {
		return nil, err
	}
	preq := eval.NewPrequential(upd.Models(), c.k, res.every, 1000)
	preq.MinPositiveRating = uopts.MinPositiveRating
	preq.ColdThreshold = c.cold
	upd.SetObserver(preq)
	copts := consumers.DefaultOptions(brokers...)
	copts.SessionTimeout = 6 * time.Second
	cons, err := consumers.New(copts, upd, zap.NewNop(), nil)
	if err != nil {
		return nil, err
	}
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- cons.Run(cctx) }()
	consumerDone := false
	defer func() {
		stopConsumer()
		if !consumerDone {
			<-consumed
		}
	}()

	evSink := producers.NewKafkaSink(brokers, events.TopicEvents, 0)
	defer evSink.Close()
	itSink := producers.NewKafkaSink(brokers, events.TopicItems, 0)
	defer itSink.Close()

	fmt.Fprintf(out, "visrec demo: %s; models %s\n", res.source, c.mf.names)
	// Every message counts: interactions and item events.
	expect := res.events
	if gen != nil {
		p := gen.Planted()
		for j := range p.Items {
			if p.ReleaseAt[j] < c.events {
				expect++
			}
		}
	}
	perUser := map[string]int{}
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		if gen != nil {
			produced <- produceSynthetic(ctx, gen, evSink, itSink, perUser)
			return
		}
		for _, e := range evs {
			perUser[e.User]++
		}
		rep, err := producers.NewReplayer(evSink, producers.DefaultReplayOptions())
		if err == nil {
			_, err = rep.Run(ctx, producers.NewSliceSource(evs))
		}
		produced <- err
	}()

	var bar *progressbar.ProgressBar
	if c.bar {
		bar = newBar(expect, "Kafka -> "+c.mf.names)
	} else {
		bar = progressbar.DefaultSilent(expect)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	producing := true
	for done := false; !done; {
		select {
		case err := <-produced:
			if err != nil {
				return nil, fmt.Errorf("produce: %w", err)
			}
			producing, produced = false, nil
		case err := <-consumed:
			consumerDone = true
			return nil, fmt.Errorf("consumer stopped: %w", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
			n := cons.Committed()
			bar.Set64(n) //nolint:errcheck // display only
			done = !producing && n >= expect
		}
	}
	res.elapsed = time.Since(start)
	bar.Finish() //nolint:errcheck // display only
	res.items = expect - res.events
	res.rankers, res.total, res.cold = preq.Rankers(), preq.Total(), preq.Cold()
	upd.SetObserver(nil) // what follows is not evaluated

	// Serving: the ranking index over the same store, the HTTP API on a loopback port.
	var servables []models.Servable
	for _, m := range ms {
		if s, ok := m.(models.Servable); ok {
			servables = append(servables, s)
		}
	}
	if len(servables) == 0 {
		printDemo(out, c, res)
		return res, nil
	}
	idx, err := ranking.New(store, servables, ranking.Options{Logger: log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))})
	if err != nil {
		return nil, err
	}
	srv, err := serving.New(idx, serving.DefaultOptions(), nil, zap.NewNop())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stopServing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopServing()
	wg.Add(2)
	go func() { defer wg.Done(); idx.Run(sctx) }()       //nolint:errcheck // a failed load shows as never ready
	go func() { defer wg.Done(); srv.Serve(sctx, ln) }() //nolint:errcheck // ends with sctx
	if err := waitUntil(ctx, 30*time.Second, "the serving index's first load", idx.Ready); err != nil {
		return nil, err
	}

	// The API is asked about the first visual model (the first model when none is), for the
	// most active user, or for the user that ranks a brand-new item highest, so that the
	// answer shows it.
	apiUser, apiModel := mostActive(perUser), 0
	for mi, m := range servables {
		if _, vis := m.(models.Visual); vis {
			apiModel = mi
			break
		}
	}
	if gen != nil && c.newItems > 0 {
		if err := coldStartLive(ctx, c, gen, itSink, idx, servables, perUser, res); err != nil {
			return nil, err
		}
		if _, vis := servables[apiModel].(models.Visual); vis {
			for _, f := range res.fresh {
				if f.topUser[apiModel] != "" && (res.apiItem == "" || f.topRank[apiModel] < res.apiRank) {
					apiUser, res.apiItem, res.apiRank = f.topUser[apiModel], f.id, f.topRank[apiModel]
				}
			}
		}
	}
	apiK := 5
	if res.apiItem != "" && res.apiRank >= apiK && res.apiRank < 10 {
		apiK = 10
	}
	res.apiUser = apiUser
	url := fmt.Sprintf("http://%s/v1/users/%s/recommendations?k=%d&model=%s", ln.Addr(), apiUser, apiK, servables[apiModel].Name())
	res.apiCmd = "curl -s '" + url + "'"
	res.apiStatus, res.apiBody, err = httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	printDemo(out, c, res)
	return res, nil
}

// produceSynthetic writes gen's stream to the events sink in batches; before each batch, it
// announces on the items sink every item released within it (its image embedding), so an
// item's embedding is in Kafka before its first interaction.
func produceSynthetic(ctx context.Context, gen *producers.Synthetic, evSink, itSink *producers.KafkaSink, perUser map[string]int) error {
	const batch = 2000
	announced := 0
	msgs := make([]kafka.Message, 0, batch)
	var items []kafka.Message
	for more := true; more; {
		msgs = msgs[:0]
		for len(msgs) < batch {
			e, ok := gen.Next()
			if !ok {
				more = false
				break
			}
			perUser[e.User]++
			msgs = append(msgs, kafka.Message{Key: []byte(e.User), Value: e.AppendBinary(nil)})
		}
		items = items[:0]
		for ; announced < gen.Available(); announced++ {
			it, ok := gen.ItemEvent(announced)
			if !ok {
				return fmt.Errorf("synthetic item %d has no embedding", announced)
			}
			items = append(items, kafka.Message{Key: []byte(it.Item), Value: it.AppendBinary(nil)})
		}
		if len(items) > 0 {
			if err := itSink.Write(ctx, items); err != nil {
				return err
			}
		}
		if len(msgs) > 0 {
			if err := evSink.Write(ctx, msgs); err != nil {
				return err
			}
		}
	}
	return nil
}

// coldStartLive announces c.newItems items that the stream never released (embedding only,
// zero interactions), waits until the serving index ranks them, and records where each
// model ranks each of them for the active users whose planted taste matches it best.
func coldStartLive(ctx context.Context, c demoConfig, gen *producers.Synthetic, itSink *producers.KafkaSink,
	idx *ranking.Index, servables []models.Servable, perUser map[string]int, res *demoResult) error {
	p := gen.Planted()
	first := gen.Available()
	n := min(c.newItems, p.Items-first)
	if n <= 0 {
		return nil
	}
	// Users with enough interactions to have a learned taste.
	var active []int
	for id, cnt := range perUser {
		if cnt >= 20 {
			if u, ok := p.UserIndex(id); ok {
				active = append(active, u)
			}
		}
	}
	slices.Sort(active)
	if len(active) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, 0, n)
	ids := make([]string, 0, n)
	now := time.Now().UnixMilli()
	for j := first; j < first+n; j++ {
		it := events.Item{Item: p.ItemIDs[j], Timestamp: now, Model: "synthetic", Embedding: slices.Clone(p.Visual(j))}
		msgs = append(msgs, kafka.Message{Key: []byte(it.Item), Value: it.AppendBinary(nil)})
		ids = append(ids, it.Item)
	}
	t0 := time.Now()
	if err := itSink.Write(ctx, msgs); err != nil {
		return err
	}
	if err := waitUntil(ctx, 30*time.Second, "the brand-new items in the serving index", func() bool {
		for _, id := range ids {
			if info, ok := idx.Item(id); !ok || !info.HasEmbedding {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	res.indexed = time.Since(t0)
	for _, m := range servables {
		res.freshModels = append(res.freshModels, m.Name())
	}
	all := idx.Len()
	res.catalog = all
	// rank returns the median rank of the item under model over users, and how many of
	// them have it in their top K.
	rank := func(model, item string, users []string) (median, inTop int, top string, topRank int, err error) {
		ranks := make([]int, 0, len(users))
		topRank = all
		for _, u := range users {
			list, err := idx.Recommend(ctx, model, u, all, ranking.RecOptions{ExcludeSeen: true})
			if err != nil {
				return 0, 0, "", 0, err
			}
			r := slices.IndexFunc(list, func(s ranking.Scored) bool { return s.Item == item })
			if r < 0 {
				r = len(list)
			}
			if r < c.k {
				inTop++
			}
			if r < topRank {
				top, topRank = u, r
			}
			ranks = append(ranks, r)
		}
		slices.Sort(ranks)
		return ranks[len(ranks)/2], inTop, top, topRank, nil
	}
	m := min(c.matches, len(active)/2)
	for j := first; j < first+n; j++ {
		fi := freshItem{id: p.ItemIDs[j]}
		us := slices.Clone(active)
		slices.SortStableFunc(us, func(a, b int) int { return -cmpF(p.Affinity(a, j), p.Affinity(b, j)) })
		for i := range m {
			fi.best = append(fi.best, p.UserIDs[us[i]])
			fi.worst = append(fi.worst, p.UserIDs[us[len(us)-1-i]])
		}
		for _, s := range servables {
			med, top, tu, tr, err := rank(s.Name(), fi.id, fi.best)
			if err != nil {
				return err
			}
			wmed, _, _, _, err := rank(s.Name(), fi.id, fi.worst)
			if err != nil {
				return err
			}
			fi.bestRank, fi.inTop, fi.worstRank = append(fi.bestRank, med), append(fi.inTop, top), append(fi.worstRank, wmed)
			fi.topUser, fi.topRank = append(fi.topUser, tu), append(fi.topRank, tr)
		}
		res.fresh = append(res.fresh, fi)
	}
	return nil
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// printDemo prints the report: throughput, the prequential table, the cold start, the API.
func printDemo(out io.Writer, c demoConfig, r *demoResult) {
	secs := r.elapsed.Seconds()
	fmt.Fprintf(out, "%s events", thousands(r.events))
	if r.items > 0 {
		fmt.Fprintf(out, " and %s item events", thousands(r.items))
	}
	fmt.Fprintf(out, ": Kafka (embedded) -> consumer -> %s -> store in %.1f s, %s events/s\n\n",
		c.mf.names, secs, thousands(int64(float64(r.events+r.items)/secs)))

	n, nc := int64(0), int64(0)
	if len(r.total) > 0 {
		n, nc = r.total[0].N, r.cold[0].N
	}
	fmt.Fprintf(out, "Prequential (test, then learn) on one in %d new user-item pairs: %s evaluations, %s of them\n"+
		"on cold items (fewer than %d interactions so far, new items included)\n", r.every, thousands(n), thousands(nc), c.cold)
	fmt.Fprintf(out, "  %-12s %10s %10s %14s\n", "ranker", "Recall@"+fmt.Sprint(c.k), "NDCG@"+fmt.Sprint(c.k), "cold Recall@"+fmt.Sprint(c.k))
	for i, name := range r.rankers {
		fmt.Fprintf(out, "  %-12s %10.4f %10.4f %14.4f\n", name, r.total[i].Recall(), r.total[i].NDCG(), r.cold[i].Recall())
	}

	if len(r.fresh) > 0 {
		fmt.Fprintf(out, "\nCold start live: %d brand-new items announced on %s (image embedding only, no interaction),\n"+
			"ranked by the serving index %s later. Median rank of each among the %s catalog items for its %d\n"+
			"best-matching and %d least-matching active users (planted taste), and how many of the best have it in their top %d:\n",
			len(r.fresh), events.TopicItems, r.indexed.Round(time.Millisecond), thousands(int64(r.catalog)),
			len(r.fresh[0].best), len(r.fresh[0].worst), c.k)
		fmt.Fprintf(out, "  %-8s", "item")
		for _, m := range r.freshModels {
			fmt.Fprintf(out, " %11s %11s %8s", m+" best", m+" least", "top "+fmt.Sprint(c.k))
		}
		fmt.Fprintln(out)
		for _, f := range r.fresh {
			fmt.Fprintf(out, "  %-8s", f.id)
			for i := range r.freshModels {
				fmt.Fprintf(out, " %11s %11s %8s", "#"+thousands(int64(f.bestRank[i]+1)), "#"+thousands(int64(f.worstRank[i]+1)),
					fmt.Sprintf("%d/%d", f.inTop[i], len(f.best)))
			}
			fmt.Fprintln(out)
		}
	}
	if r.apiCmd != "" {
		fmt.Fprintf(out, "\nThe HTTP API (visrec serve), in-process over the same store")
		if r.apiItem != "" {
			fmt.Fprintf(out, " (for %s, the brand-new %s is #%d)", r.apiUser, r.apiItem, r.apiRank+1)
		}
		fmt.Fprintf(out, ":\n$ %s\n%s\n", r.apiCmd, strings.TrimSpace(r.apiBody))
	}
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mostActive returns the user with the most events (the smallest id among ties).
func mostActive(perUser map[string]int) string {
	best := ""
	for u, n := range perUser {
		if best == "" || n > perUser[best] || (n == perUser[best] && u < best) {
			best = u
		}
	}
	return best
}

// waitUntil polls cond every 5 ms until it holds, ctx ends or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s did not happen within %s", what, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// httpGet is what curl -s does: the status and the body.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("demo: call the API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(body), fmt.Errorf("demo: %s answered %s: %s", url, resp.Status, body)
	}
	return resp.StatusCode, string(body), nil
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
