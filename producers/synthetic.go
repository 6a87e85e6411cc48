package producers

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/visrec/visrec/events"
)

// SyntheticConfig describes a synthetic interaction stream. DefaultSyntheticConfig gives
// the defaults; NewSynthetic rejects nonsensical values.
type SyntheticConfig struct {
	Users     int // number of users, ids "u0", "u1", ...
	Items     int // number of items, ids "i0", "i1", ...
	Dim       int // latent dimensions K of the planted user and item factors
	VisualDim int // length of each item's visual feature vector; 0: none
	// Events is the length of the stream; 0 means unbounded.
	Events int64
	Seed   uint64
	// StartMillis is the timestamp (Unix ms) of the stream's start.
	StartMillis int64
	// EventsPerSecond is the simulated arrival rate that spaces the timestamps (exponential
	// gaps, so several events may share a millisecond).
	EventsPerSecond float64
	// PopularityExponent s: the item of popularity rank r has base weight 1/(r+1)^s. Ranks
	// are a random permutation, so new items can be popular too.
	PopularityExponent float64
	// ActivityExponent is the same for how often each user acts.
	ActivityExponent float64
	// InitialItemFraction of the items are available at the start; the rest are released
	// one at a time, one every ReleaseEvery events.
	InitialItemFraction float64
	// ReleaseEvery is the number of events between two item releases; 0 spreads the
	// releases over the first 80% of Events (one every 1000 events when unbounded).
	ReleaseEvery int64
	// Candidates is how many items a user considers per fresh view: they are drawn by
	// popularity among the available items, and one is chosen with probability proportional
	// to exp(Affinity × planted affinity). The result approximates choosing an item with
	// probability ∝ popularity × exp(Affinity × u·v).
	Candidates int
	// Affinity is the inverse temperature of that choice; 0 ignores the user's taste.
	Affinity float64
	// ClickRate and PurchaseRate are the base probabilities that a view is followed by a
	// click on the same item and a click by a purchase; both rise with the planted affinity
	// (p = rate × 2σ(2·u·v), capped at 1). Follow-ups come 1 to 32 events later.
	ClickRate, PurchaseRate float64
	// VisualNoise is the standard deviation of the noise added to the unit-variance visual
	// signal: 0 makes the visual features an exact linear image of the item factors.
	VisualNoise float64
}

// DefaultSyntheticConfig returns a stream of 1,000,000 events over 10,000 users and 5,000
// items with 16 latent dimensions and 64 visual ones, half of the items released at the
// start; the event mix comes out at about 85% views, 12.5% clicks and 2.7% purchases.
func DefaultSyntheticConfig() SyntheticConfig {
	return SyntheticConfig{
		Users:               10_000,
		Items:               5_000,
		Dim:                 16,
		VisualDim:           64,
		Events:              1_000_000,
		Seed:                1,
		StartMillis:         time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		EventsPerSecond:     100,
		PopularityExponent:  1.0,
		ActivityExponent:    0.8,
		InitialItemFraction: 0.5,
		Candidates:          8,
		Affinity:            2.0,
		ClickRate:           0.09,
		PurchaseRate:        0.12,
		VisualNoise:         0.5,
	}
}

func (c *SyntheticConfig) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Users >= 1 && c.Users <= math.MaxInt32, "Users %d: want 1 to 2^31-1", c.Users)
	check(c.Items >= 1 && c.Items <= math.MaxInt32, "Items %d: want 1 to 2^31-1", c.Items)
	check(c.Dim >= 1 && c.Dim <= 1024, "Dim %d: want 1 to 1024", c.Dim)
	check(c.VisualDim >= 0 && c.VisualDim <= events.MaxEmbeddingDim, "VisualDim %d: want 0 to %d", c.VisualDim, events.MaxEmbeddingDim)
	check(c.Events >= 0, "Events %d: want >= 0", c.Events)
	check(c.StartMillis > 0, "StartMillis %d: want > 0", c.StartMillis)
	check(c.EventsPerSecond > 0 && !math.IsInf(c.EventsPerSecond, 0), "EventsPerSecond %v: want > 0", c.EventsPerSecond)
	check(c.PopularityExponent >= 0 && c.PopularityExponent <= 10, "PopularityExponent %v: want 0 to 10", c.PopularityExponent)
	check(c.ActivityExponent >= 0 && c.ActivityExponent <= 10, "ActivityExponent %v: want 0 to 10", c.ActivityExponent)
	check(c.InitialItemFraction > 0 && c.InitialItemFraction <= 1, "InitialItemFraction %v: want (0, 1]", c.InitialItemFraction)
	check(c.ReleaseEvery >= 0, "ReleaseEvery %d: want >= 0", c.ReleaseEvery)
	check(c.Candidates >= 1 && c.Candidates <= 1024, "Candidates %d: want 1 to 1024", c.Candidates)
	check(c.Affinity >= 0 && c.Affinity <= 50, "Affinity %v: want 0 to 50", c.Affinity)
	check(c.ClickRate >= 0 && c.ClickRate <= 1, "ClickRate %v: want 0 to 1", c.ClickRate)
	check(c.PurchaseRate >= 0 && c.PurchaseRate <= 1, "PurchaseRate %v: want 0 to 1", c.PurchaseRate)
	check(c.VisualNoise >= 0 && !math.IsInf(c.VisualNoise, 0), "VisualNoise %v: want >= 0", c.VisualNoise)
	if len(errs) > 0 {
		return fmt.Errorf("synthetic config: %w", errors.Join(errs...))
	}
	return nil
}

// Synthetic generates a deterministic interaction stream from planted factors. It holds no
// events: memory is O(Users·Dim + Items·(Dim+VisualDim)), whatever the stream length.
//
// Each fresh event is a view: a user drawn by activity considers Candidates items drawn
// by popularity among the items released so far and picks one by planted affinity. A view
// may be followed, a few events later, by a click on the same item, and a click by a
// purchase, more likely the higher the affinity. Timestamps never decrease.
//
// The same config (seed included) gives the same stream, event for event. A Synthetic is
// used by one goroutine at a time.
type Synthetic struct {
	cfg     SyntheticConfig
	planted *Planted
	users   aliasTable
	items   aliasTable
	pcg     *rand.PCG
	rng     *rand.Rand // wraps pcg, for ExpFloat64

	emitted   int64   // events returned so far
	clock     float64 // ms since StartMillis
	available int     // items [0, available) are released
	releaseTS []int64 // release timestamp of each released item

	pending [64]followUp // follow-ups, by emission slot
	cand    []int32
	exp     *expTable
	cumw    []float64
}

type followUp struct {
	ok   bool
	typ  events.Type
	user int32
	item int32
	aff  float32
}

// NewSynthetic checks cfg and draws the planted model (this takes a moment for millions of
// users or items).
func NewSynthetic(cfg SyntheticConfig) (*Synthetic, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := newPlanted(&cfg)
	initial := max(1, int(math.Round(cfg.InitialItemFraction*float64(cfg.Items))))
	initial = min(initial, cfg.Items)
	every := cfg.ReleaseEvery
	if every == 0 {
		every = 1000
		if cfg.Events > 0 && cfg.Items > initial {
			every = max(1, int64(0.8*float64(cfg.Events))/int64(cfg.Items-initial))
		}
	}
	p.ReleaseAt = make([]int64, cfg.Items)
	for j := initial; j < cfg.Items; j++ {
		p.ReleaseAt[j] = int64(j-initial+1) * every
	}
	pcg := rand.NewPCG(cfg.Seed, 0xda3e39cb94b95bdb)
	g := &Synthetic{
		cfg:       cfg,
		planted:   p,
		users:     newAliasTable(p.Activity),
		items:     newAliasTable(p.Popularity),
		pcg:       pcg,
		rng:       rand.New(pcg),
		available: initial,
		releaseTS: make([]int64, initial, cfg.Items),
		cand:      make([]int32, cfg.Candidates),
		exp:       newExpTable(),
		cumw:      make([]float64, cfg.Candidates),
	}
	for j := range g.releaseTS {
		g.releaseTS[j] = cfg.StartMillis
	}
	return g, nil
}

// Planted returns the ground truth; callers must not modify it.
func (g *Synthetic) Planted() *Planted { return g.planted }

// Config returns the configuration in use.
func (g *Synthetic) Config() SyntheticConfig { return g.cfg }

// Len implements Sized: Events, or -1 for an unbounded stream.
func (g *Synthetic) Len() int64 {
	if g.cfg.Events == 0 {
		return -1
	}
	return g.cfg.Events
}

// Emitted is the number of events returned so far.
func (g *Synthetic) Emitted() int64 { return g.emitted }

// Available is the number of items released so far: items [0, Available()). It never
// decreases, and an item is released before the first event that mentions it, so a caller
// that announces items (ItemEvent) whenever Available grows announces each item before
// its first interaction.
func (g *Synthetic) Available() int { return g.available }

// ItemEvent returns the visrec.items announcement of released item j: its visual feature
// vector as the embedding (model "synthetic") and its release time. ok is false for an item
// not yet released or a generator without visual features.
func (g *Synthetic) ItemEvent(j int) (it events.Item, ok bool) {
	if j < 0 || j >= g.available || g.cfg.VisualDim == 0 {
		return events.Item{}, false
	}
	emb := make([]float32, g.cfg.VisualDim)
	copy(emb, g.planted.Visual(j))
	return events.Item{Item: g.planted.ItemIDs[j], Timestamp: g.releaseTS[j], Model: "synthetic", Embedding: emb}, true
}

// Err implements Source; the generator never fails.
func (g *Synthetic) Err() error { return nil }

// Next implements Source.
func (g *Synthetic) Next() (events.Interaction, bool) {
	if g.cfg.Events > 0 && g.emitted >= g.cfg.Events {
		return events.Interaction{}, false
	}
	g.clock += g.rng.ExpFloat64() * 1000 / g.cfg.EventsPerSecond
	ts := g.cfg.StartMillis + int64(g.clock)
	for g.available < g.cfg.Items && g.planted.ReleaseAt[g.available] <= g.emitted {
		g.releaseTS = append(g.releaseTS, ts)
		g.available++
	}
	slot := &g.pending[g.emitted&63]
	g.emitted++
	p := g.planted
	if slot.ok {
		f := *slot
		slot.ok = false
		if f.typ == events.Click && g.coin(g.cfg.PurchaseRate, f.aff) {
			g.schedule(events.Purchase, f.user, f.item, f.aff)
		}
		return events.Interaction{Type: f.typ, User: p.UserIDs[f.user], Item: p.ItemIDs[f.item], Timestamp: ts}, true
	}
	u := g.users.draw(g.pcg)
	uf := p.User(u)
	sum := 0.0
	for c := range g.cand {
		j := g.drawItem()
		g.cand[c] = int32(j)
		sum += g.exp.exp(g.cfg.Affinity * float64(dot(uf, p.Item(j))))
		g.cumw[c] = sum
	}
	x := g.float() * sum
	pick := len(g.cand) - 1
	for c, w := range g.cumw {
		if x < w {
			pick = c
			break
		}
	}
	j := g.cand[pick]
	if g.cfg.ClickRate > 0 {
		aff := dot(uf, p.Item(int(j)))
		if g.coin(g.cfg.ClickRate, aff) {
			g.schedule(events.Click, int32(u), j, aff)
		}
	}
	return events.Interaction{Type: events.View, User: p.UserIDs[u], Item: p.ItemIDs[j], Timestamp: ts}, true
}

// drawItem draws a released item by popularity: rejection from the alias table over all
// items, falling back to a uniform draw when the released ones carry little weight.
func (g *Synthetic) drawItem() int {
	for range 32 {
		if j := g.items.draw(g.pcg); j < g.available {
			return j
		}
	}
	return int((g.pcg.Uint64() >> 32) * uint64(g.available) >> 32)
}

func (g *Synthetic) float() float64 { return float64(g.pcg.Uint64()>>11) / (1 << 53) }

// coin is true with probability rate × 2σ(2·aff), capped at 1.
func (g *Synthetic) coin(rate float64, aff float32) bool {
	if rate <= 0 {
		return false
	}
	p := rate * 2 / (1 + g.exp.exp(-2*float64(aff)))
	return g.float() < p
}

// schedule queues a follow-up 1 to 32 events ahead, in the first free slot.
func (g *Synthetic) schedule(typ events.Type, u, j int32, aff float32) {
	d := 1 + int64(g.pcg.Uint64()&31)
	for k := int64(0); k < 64-d; k++ {
		s := &g.pending[(g.emitted-1+d+k)&63]
		if !s.ok {
			*s = followUp{ok: true, typ: typ, user: u, item: j, aff: aff}
			return
		}
	}
}
