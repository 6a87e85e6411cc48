// Package eval measures recommendation quality.
package eval

import (
	"math"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/updater"
)

// Popularity is the name of the baseline ranker that Prequential always evaluates beside
// the models: items ranked by how many interactions the stream has shown so far.
const Popularity = "popularity"

// Prequential is test-then-train evaluation over a stream: before the updater learns from a
// positive interaction (u, i) with an item u has not interacted with before, each ranker
// ranks every catalog item for u, excluding the items u has seen, and records whether i is
// in its top K. An item not yet in the catalog cannot be recommended and counts as a miss.
//
// It is an updater.Observer, so it measures the production update code. It is
// deterministic for a given stream. It is not safe for concurrent use.
type Prequential struct {
	rankers []string // updater models, then Popularity
	k       int
	every   int
	window  int
	// MinPositiveRating: rating events below it are not positives (0: all are).
	MinPositiveRating float32
	// ColdThreshold: an evaluation belongs to the cold-start-item slice when its item had
	// fewer interactions than this before the event (never-seen items included).
	ColdThreshold int

	seen     map[string]map[string]struct{}
	pop      map[string]float32
	eligible int64
	scores   []float32
	popRow   []float32

	total []Stats
	cold  []Stats
	cur   []Stats
	curve [][]Stats
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

// NewPrequential returns an evaluator of the updater's models (and the popularity
// baseline) at cut-off k that evaluates one in every eligible events and records a curve
// point every window evaluations.
func NewPrequential(models []string, k, every, window int) *Prequential {
	every, window = max(every, 1), max(window, 1)
	rankers := append(append([]string(nil), models...), Popularity)
	return &Prequential{
		rankers: rankers, k: k, every: every, window: window,
		seen:          make(map[string]map[string]struct{}),
		pop:           make(map[string]float32),
		total:         make([]Stats, len(rankers)),
		cold:          make([]Stats, len(rankers)),
		cur:           make([]Stats, len(rankers)),
		ColdThreshold: 5,
	}
}

// Rankers returns the names of what is evaluated, in the order of Total and Curve.
func (p *Prequential) Rankers() []string { return p.rankers }

// Observe implements updater.Observer.
func (p *Prequential) Observe(u *updater.Updater, e *events.Interaction) {
	defer func() { p.pop[e.Item]++ }()
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
	if (p.eligible-1)%int64(p.every) != 0 {
		return
	}
	target, known := u.ItemIndex(e.Item)
	cold := p.pop[e.Item] < float32(p.ColdThreshold)
	for r, name := range p.rankers {
		rank, ok := 0, false
		if known {
			rank, ok = p.rank(u, name, e.User, target, seen)
		}
		p.record(r, ok && rank < p.k, rank, cold)
	}
	if n := p.total[0].N; n%int64(p.window) == 0 {
		p.curve = append(p.curve, append([]Stats(nil), p.cur...))
		clear(p.cur)
	}
}

// rank returns the 0-based rank of the target item among the user's unseen catalog items
// (ties counted against it), or any rank ≥ K when it is a miss.
func (p *Prequential) rank(u *updater.Updater, ranker, user string, target int32, seen map[string]struct{}) (int, bool) {
	cat := u.Catalog()
	var scores []float32
	if ranker == Popularity {
		p.popRow = p.popRow[:0]
		for _, id := range cat {
			p.popRow = append(p.popRow, p.pop[id])
		}
		scores = p.popRow
	} else {
		s, ok, err := u.ScoreAll(ranker, user, p.scores)
		p.scores = s
		if err != nil || !ok {
			return 0, false
		}
		scores = s
	}
	// Ties rank against the target, as in Evaluate: an item scored equal comes first.
	st := scores[target]
	rank := 0
	for j, s := range scores {
		if s >= st && int32(j) != target {
			if _, skip := seen[cat[j]]; !skip {
				rank++
				if rank >= p.k {
					return rank, true
				}
			}
		}
	}
	return rank, true
}

func (p *Prequential) record(r int, hit bool, rank int, cold bool) {
	p.total[r].add(hit, rank)
	p.cur[r].add(hit, rank)
	if cold {
		p.cold[r].add(hit, rank)
	}
}

func (s *Stats) add(hit bool, rank int) {
	s.N++
	if hit {
		s.Hits++
		s.NDCGSum += 1 / math.Log2(float64(rank)+2)
	}
}

// Cold returns the cumulative figures of the cold-start-item slice, in Rankers order.
func (p *Prequential) Cold() []Stats { return append([]Stats(nil), p.cold...) }

// Total returns the cumulative figures of each ranker, in Rankers order.
func (p *Prequential) Total() []Stats { return append([]Stats(nil), p.total...) }

// Curve returns the moving-window figures: one row per Window evaluations, one column per
// ranker.
func (p *Prequential) Curve() [][]Stats { return p.curve }
