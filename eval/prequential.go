// Package eval measures recommendation quality.
package eval

import (
	"math"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/updater"
)

// Prequential is test-then-train evaluation over a stream: before the updater learns from a
// positive interaction (u, i) with an item u has not interacted with before, it ranks every
// catalog item for u, excluding the items u has seen, and records whether i is in the top K.
// An item not yet in the catalog cannot be recommended and counts as a miss.
//
// It is an updater.Observer, so it measures the production update code. It is deterministic
// for a given stream.
type Prequential struct {
	Model string // the model to rank with
	K     int    // cut-off
	// Every evaluates one in Every eligible events (1: all), to bound the cost of ranking
	// the whole catalog.
	Every int
	// Window is the number of evaluations per point of the moving-window curve.
	Window int
	// MinPositiveRating: rating events below it are not positives (0: all are).
	MinPositiveRating float32

	seen     map[string]map[string]struct{}
	eligible int64
	scores   []float32

	total Stats
	cur   Stats
	curve []Stats
}

// Stats is an accumulated Recall@K and NDCG@K. With one held-out item per evaluation,
// Recall@K equals HR@K.
type Stats struct {
	N       int64
	Hits    int64
	NDCGSum float64
}

// Recall returns Hits/N (0 when N is 0).
func (s Stats) Recall() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.N)
}

// NDCG returns the mean NDCG@K (0 when N is 0).
func (s Stats) NDCG() float64 {
	if s.N == 0 {
		return 0
	}
	return s.NDCGSum / float64(s.N)
}

// NewPrequential returns an evaluator of model at cut-off k that evaluates one in every
// eligible events and records a curve point every window evaluations.
func NewPrequential(model string, k, every, window int) *Prequential {
	if every < 1 {
		every = 1
	}
	if window < 1 {
		window = 1000
	}
	return &Prequential{Model: model, K: k, Every: every, Window: window, seen: make(map[string]map[string]struct{})}
}

// Observe implements updater.Observer.
func (p *Prequential) Observe(u *updater.Updater, e *events.Interaction) {
	if e.Type == events.Rating && e.Value < p.MinPositiveRating {
		return
	}
	seen := p.seen[e.User]
	if seen == nil {
		seen = make(map[string]struct{})
		p.seen[e.User] = seen
	}
	if _, again := seen[e.Item]; again {
		return
	}
	defer func() { seen[e.Item] = struct{}{} }()
	p.eligible++
	if (p.eligible-1)%int64(p.Every) != 0 {
		return
	}
	rank, ok := p.rank(u, e.User, e.Item, seen)
	p.record(ok && rank < p.K, rank)
}

// rank returns the 0-based rank of item among the user's unseen catalog items.
func (p *Prequential) rank(u *updater.Updater, user, item string, seen map[string]struct{}) (int, bool) {
	target, ok := u.ItemIndex(item)
	if !ok {
		return 0, false
	}
	scores, ok, err := u.ScoreAll(p.Model, user, p.scores)
	p.scores = scores
	if err != nil || !ok {
		return 0, false
	}
	st := scores[target]
	cat := u.Catalog()
	rank := 0
	for j, s := range scores {
		if s > st {
			if _, skip := seen[cat[j]]; !skip {
				rank++
				if rank >= p.K {
					return rank, true // a miss; the exact rank is not needed
				}
			}
		}
	}
	return rank, true
}

func (p *Prequential) record(hit bool, rank int) {
	for _, s := range []*Stats{&p.total, &p.cur} {
		s.N++
		if hit {
			s.Hits++
			s.NDCGSum += 1 / math.Log2(float64(rank)+2)
		}
	}
	if p.cur.N >= int64(p.Window) {
		p.curve = append(p.curve, p.cur)
		p.cur = Stats{}
	}
}

// Total returns the cumulative figures.
func (p *Prequential) Total() Stats { return p.total }

// Curve returns the moving-window figures, one per Window evaluations.
func (p *Prequential) Curve() []Stats { return append([]Stats(nil), p.curve...) }
