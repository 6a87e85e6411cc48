package producers

import (
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/visrec/visrec/events"
)

func smallSynthetic(t testing.TB, mutate func(*SyntheticConfig)) *Synthetic {
	t.Helper()
	cfg := DefaultSyntheticConfig()
	cfg.Users, cfg.Items, cfg.Events = 2000, 1000, 200_000
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := NewSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSyntheticDeterministic(t *testing.T) {
	a := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 50_000; c.Seed = 7 })
	b := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 50_000; c.Seed = 7 })
	c := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 50_000; c.Seed = 8 })
	ea, err := Collect(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := Collect(b, 0)
	ec, _ := Collect(c, 0)
	if len(ea) != 50_000 {
		t.Fatalf("%d events, want 50,000", len(ea))
	}
	if !slices.Equal(ea, eb) {
		t.Error("same seed, different streams")
	}
	if slices.Equal(ea, ec) {
		t.Error("different seeds, same stream")
	}
	if !slices.Equal(a.Planted().ItemVisual, b.Planted().ItemVisual) || slices.Equal(a.Planted().UserFactors, c.Planted().UserFactors) {
		t.Error("planted model does not follow the seed")
	}
	// The planted model does not depend on the stream length.
	d := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 10; c.Seed = 7 })
	if !slices.Equal(a.Planted().ItemFactors, d.Planted().ItemFactors) {
		t.Error("planted model depends on Events")
	}
}

func TestSyntheticStream(t *testing.T) {
	g := smallSynthetic(t, nil)
	cfg := g.Config()
	p := g.Planted()
	var types [events.Rating + 1]int
	count := make([]int, cfg.Items)
	var prev int64
	announced := g.Available()
	initial := announced
	seen := make([]bool, cfg.Items) // announced
	for j := range announced {
		seen[j] = true
	}
	chosenAff, randomAff := 0.0, 0.0
	n := 0
	for e := range All(g) {
		if err := e.Validate(); err != nil {
			t.Fatalf("event %d invalid: %v", n, err)
		}
		if e.Timestamp < prev {
			t.Fatalf("event %d: timestamp %d < %d", n, e.Timestamp, prev)
		}
		prev = e.Timestamp
		for ; announced < g.Available(); announced++ {
			it, ok := g.ItemEvent(announced)
			if !ok || it.Validate(cfg.VisualDim) != nil || it.Timestamp > e.Timestamp {
				t.Fatalf("item %d announcement %+v %v", announced, it, ok)
			}
			seen[announced] = true
		}
		j, ok := p.ItemIndex(e.Item)
		u, ok2 := p.UserIndex(e.User)
		if !ok || !ok2 {
			t.Fatalf("ids %q %q", e.User, e.Item)
		}
		if !seen[j] {
			t.Fatalf("event %d mentions item %d before its release", n, j)
		}
		types[e.Type]++
		count[j]++
		if e.Type == events.View {
			chosenAff += float64(p.Affinity(u, j))
			randomAff += float64(p.Affinity(u, (j*7919+n)%g.Available()))
		}
		n++
	}
	if n != int(cfg.Events) || g.Emitted() != cfg.Events || g.Err() != nil {
		t.Fatalf("%d events, emitted %d, want %d", n, g.Emitted(), cfg.Events)
	}
	if g.Available() != cfg.Items || initial != cfg.Items/2 {
		t.Errorf("available %d (initially %d), want all %d (initially half)", g.Available(), initial, cfg.Items)
	}
	views := float64(types[events.View]) / float64(n)
	clicks := float64(types[events.Click]) / float64(n)
	buys := float64(types[events.Purchase]) / float64(n)
	t.Logf("mix: %.3f views, %.3f clicks, %.3f purchases", views, clicks, buys)
	if views < 0.8 || views > 0.9 || clicks < 0.08 || clicks > 0.17 || buys < 0.01 || buys > 0.05 || types[events.Rating] != 0 {
		t.Errorf("unrealistic mix %v", types)
	}
	// Popularity skew: the 1% most popular items (by plan) draw far more than 1%.
	top := 0
	for _, j := range p.TopItems(cfg.Items / 100) {
		top += count[j]
	}
	share := float64(top) / float64(n)
	t.Logf("top 1%% of items: %.1f%% of events", 100*share)
	if share < 0.15 {
		t.Errorf("top 1%% of items get %.1f%% of events, want a power-law skew", 100*share)
	}
	// Users pick items they like: mean planted affinity of views well above random items.
	nv := float64(types[events.View])
	t.Logf("mean affinity: chosen %.2f, random %.2f", chosenAff/nv, randomAff/nv)
	if chosenAff/nv < randomAff/nv+0.5 {
		t.Errorf("chosen items' affinity %.2f is not well above random %.2f", chosenAff/nv, randomAff/nv)
	}
}

// TestSyntheticVisualCorrelates checks that visual features carry the item factors: the
// similarity of two items' visual vectors predicts the similarity of their factors.
func TestSyntheticVisualCorrelates(t *testing.T) {
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 1 })
	p := g.Planted()
	var xs, ys []float64
	for a := 0; a < 200; a++ {
		for b := a + 1; b < 200; b += 3 {
			xs = append(xs, float64(dot(p.Visual(a), p.Visual(b))))
			ys = append(ys, float64(dot(p.Item(a), p.Item(b))))
		}
	}
	r := pearson(xs, ys)
	t.Logf("corr(visual·visual, factor·factor) = %.3f", r)
	if r < 0.6 {
		t.Errorf("visual features barely correlate with the item factors: r = %.3f", r)
	}
	if len(p.Visual(0)) != 64 || p.VisualDim != 64 {
		t.Errorf("visual dim %d", p.VisualDim)
	}
}

func pearson(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func TestSyntheticConfigErrors(t *testing.T) {
	for _, mutate := range []func(*SyntheticConfig){
		func(c *SyntheticConfig) { c.Users = 0 },
		func(c *SyntheticConfig) { c.Items = -1 },
		func(c *SyntheticConfig) { c.EventsPerSecond = 0 },
		func(c *SyntheticConfig) { c.ClickRate = 2 },
		func(c *SyntheticConfig) { c.InitialItemFraction = 0 },
		func(c *SyntheticConfig) { c.Candidates = 0 },
		func(c *SyntheticConfig) { c.StartMillis = 0 },
	} {
		cfg := DefaultSyntheticConfig()
		mutate(&cfg)
		if _, err := NewSynthetic(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 0; c.VisualDim = 0 })
	if g.Len() != -1 {
		t.Errorf("unbounded Len %d", g.Len())
	}
	for range 10_000 {
		if _, ok := g.Next(); !ok {
			t.Fatal("unbounded stream ended")
		}
	}
	if _, ok := g.ItemEvent(0); ok {
		t.Error("item event without visual features")
	}
}

func TestAliasTable(t *testing.T) {
	w := []float64{0.5, 0.25, 0.125, 0.125, 0}
	at := newAliasTable(w)
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 1 })
	counts := make([]float64, len(w))
	const n = 400_000
	for range n {
		counts[at.draw(g.pcg)]++
	}
	for i := range w {
		if math.Abs(counts[i]/n-w[i]) > 0.005 {
			t.Errorf("index %d drawn %.4f, want %.4f", i, counts[i]/n, w[i])
		}
	}
}

func TestExpTable(t *testing.T) {
	tb := newExpTable()
	worst := 0.0
	for x := -20.0; x <= 20; x += 0.0007 {
		worst = max(worst, math.Abs(tb.exp(x)/math.Exp(x)-1))
	}
	if worst > 1.3e-4 {
		t.Errorf("worst relative error %g", worst)
	}
	if tb.exp(100) != tb.exp(20) || tb.exp(-100) != tb.exp(-20) || tb.exp(math.NaN()) != tb.exp(-20) {
		t.Error("no clamping")
	}
}

// TestSynthetic10M streams ten million events in constant memory.
func TestSynthetic10M(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("10M events take a few seconds (a minute under the race detector)")
	}
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 10_000_000; c.Users, c.Items = 10_000, 5_000 })
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	n, prev := 0, int64(0)
	for e := range All(g) {
		if e.Timestamp < prev {
			t.Fatalf("event %d goes back in time", n)
		}
		prev = e.Timestamp
		n++
	}
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	t.Logf("%d events in %v: %.2fM events/s, %d items released, %.0f hours of simulated time",
		n, el, float64(n)/el.Seconds()/1e6, g.Available(), float64(prev-g.Config().StartMillis)/3.6e6)
	if n != 10_000_000 {
		t.Fatalf("%d events", n)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Errorf("heap grew by %d MB while streaming", grew>>20)
	}
}
