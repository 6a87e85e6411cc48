package eval

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/visrec/visrec/datasets"
)

// Scorer scores every item for a user, for offline evaluation.
//
// ScoreAll returns one score per dense item index (len = the number of items), higher
// meaning more recommended, reusing dst when its capacity suffices (else allocating). The
// caller owns dst and the result; the Scorer keeps no reference to them. Evaluate calls
// ScoreAll from several goroutines at once, each with its own dst, when
// EvalOptions.Workers > 1; an implementation used that way must be safe for that.
// A NaN score is ranked as −Inf.
type Scorer interface {
	ScoreAll(user int32, dst []float32) []float32
}

// EvalOptions tunes Evaluate. The zero value ranks all items, sequentially.
type EvalOptions struct {
	// Candidates, when non-nil, restricts ranking to these items (duplicates and indices
	// outside [0, nItems) are ignored), e.g. Split.ColdItems for the cold-start split.
	// Test items outside the candidates are dropped (Report.DroppedTest).
	Candidates []int32
	// Workers is the number of goroutines scoring users in parallel; ≤ 1 means the calling
	// goroutine alone. The Report is bit-identical for any number of workers.
	Workers int
}

// DefaultEvalOptions returns the defaults spelled out: all items, one worker.
func DefaultEvalOptions() EvalOptions { return EvalOptions{Workers: 1} }

// Report holds the figures of Evaluate: means over the evaluated users (macro averages).
type Report struct {
	Users int // users evaluated: at least one test item among their candidates
	// SkippedNoTest counts users with training interactions and no test interaction.
	SkippedNoTest int
	// SkippedNoCandidates counts users with test interactions none of which is a candidate
	// (an item outside [0, nItems) or outside EvalOptions.Candidates).
	SkippedNoCandidates int
	// DroppedTest counts the distinct (user, item) test pairs whose item is not a candidate.
	DroppedTest int
	// AUC is the mean per-user AUC over the AUCUsers evaluated users that have at least
	// one negative candidate (for the others it is undefined).
	AUC      float64
	AUCUsers int
	// AtK holds the cut-off figures, one per K passed to Evaluate, in that order.
	AtK []AtK
}

// AtK holds the mean figures at one cut-off K; see docs/evaluation.md for the formulas.
type AtK struct {
	K         int
	Recall    float64
	Precision float64
	NDCG      float64
	HR        float64
	MRR       float64 // MRR@K: 1/rank of the first positive when it is in the top K, else 0
}

// At returns the figures at cut-off k.
func (r Report) At(k int) (AtK, bool) {
	for _, a := range r.AtK {
		if a.K == k {
			return a, true
		}
	}
	return AtK{}, false
}

// Evaluate ranks items for every user that has test interactions and averages Recall,
// Precision, NDCG, HR and MRR at each K of ks, and AUC, over those users.
//
// For a user u with training items R and distinct test items T, the candidates are
// C = A \ (R \ T), where A is all of [0, nItems) or EvalOptions.Candidates: training items
// are excluded except those that are also test items, which stay in and count as
// positives. The positives are P = T ∩ C, the negatives N = C \ P. Duplicate test
// interactions count once.
//
// Ranking is by score, descending; ties are broken pessimistically and deterministically:
// within equal scores every negative comes before every positive, and positives among
// themselves by ascending item index. AUC counts a tied (positive, negative) pair as ½.
// The 1-based rank of a positive is 1 + (negatives scoring ≥ it) + (positives before it).
// A cut-off K larger than |C| behaves as |C| except in Precision, whose denominator is K.
// Entries of ks below 1 get all-zero figures.
//
// Users are indexed by interaction.User (negative indices are ignored); test items outside
// [0, nItems) are dropped, and so are training items there. Evaluate panics when the scorer
// returns a slice whose length is not nItems. Cost per user: one ScoreAll plus
// O(|C|·log |P| + |P|·log |P|); no sort of the candidates.
func Evaluate(s Scorer, nItems int, train, test []datasets.Interaction, ks []int, opts EvalOptions) Report {
	nItems = max(nItems, 0)
	ev := newEvaluator(nItems, train, test, ks, opts)
	workers := min(max(opts.Workers, 1), max(ev.nUsers, 1))
	var next atomic.Int64
	run := func() {
		w := ev.newWorker()
		for {
			u := int(next.Add(1) - 1)
			if u >= ev.nUsers {
				return
			}
			ev.user(s, w, u)
		}
	}
	if workers == 1 {
		run()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(run)
		}
		wg.Wait()
	}
	return ev.report()
}

// user states in evaluator.state
const (
	stateAbsent uint8 = iota
	stateNoTest
	stateNoCandidates
	stateEvaluated
)

// item marks in worker.mark
const (
	markNone uint8 = iota
	markTrain
	markPositive
)

type evaluator struct {
	nItems     int
	ks         []int
	maxK       int
	candidates []int32 // nil: all items
	inCand     []bool  // nil: all items
	nUsers     int
	trainOff   []int // CSR of train items per user
	trainItems []int32
	testOff    []int
	testItems  []int32
	discount   []float64 // discount[r-1] = 1/log2(r+1), r = 1..maxK
	ideal      []float64 // ideal[n] = Σ_{r=1..n} discount[r-1]

	// results, written once per user by whichever worker takes it
	state   []uint8
	dropped []int
	rows    []float64 // per user: AUC (NaN: undefined), then per K: recall, precision, NDCG, HR, MRR
	width   int
}

func newEvaluator(nItems int, train, test []datasets.Interaction, ks []int, opts EvalOptions) *evaluator {
	ev := &evaluator{nItems: nItems, ks: ks}
	for _, k := range ks {
		ev.maxK = max(ev.maxK, k)
	}
	ev.discount = make([]float64, ev.maxK)
	ev.ideal = make([]float64, ev.maxK+1)
	for r := 1; r <= ev.maxK; r++ {
		ev.discount[r-1] = 1 / math.Log2(float64(r)+1)
		ev.ideal[r] = ev.ideal[r-1] + ev.discount[r-1]
	}
	if opts.Candidates != nil {
		ev.inCand = make([]bool, nItems)
		for _, it := range opts.Candidates {
			if it >= 0 && int(it) < nItems && !ev.inCand[it] {
				ev.inCand[it] = true
				ev.candidates = append(ev.candidates, it)
			}
		}
		slices.Sort(ev.candidates)
		if ev.candidates == nil {
			ev.candidates = []int32{}
		}
	}
	for _, xs := range [][]datasets.Interaction{train, test} {
		for _, x := range xs {
			ev.nUsers = max(ev.nUsers, int(x.User)+1)
		}
	}
	ev.trainOff, ev.trainItems = byUser(train, ev.nUsers)
	ev.testOff, ev.testItems = byUser(test, ev.nUsers)
	ev.width = 1 + 5*len(ks)
	ev.state = make([]uint8, ev.nUsers)
	ev.dropped = make([]int, ev.nUsers)
	ev.rows = make([]float64, ev.nUsers*ev.width)
	return ev
}

// byUser groups the items of xs by user (compressed sparse rows), skipping negative users.
func byUser(xs []datasets.Interaction, nUsers int) (off []int, items []int32) {
	off = make([]int, nUsers+1)
	for _, x := range xs {
		if x.User >= 0 {
			off[x.User+1]++
		}
	}
	for u := range nUsers {
		off[u+1] += off[u]
	}
	items = make([]int32, off[nUsers])
	fill := slices.Clone(off[:nUsers])
	for _, x := range xs {
		if x.User >= 0 {
			items[fill[x.User]] = x.Item
			fill[x.User]++
		}
	}
	return off, items
}

// worker is the scratch of one goroutine.
type worker struct {
	mark   []uint8
	scores []float32
	test   []int32   // the user's distinct test items
	pos    []posItem // positives
	keys   []uint32  // sort keys of the distinct positive scores, ascending
	// cnt[2j]: negatives whose key is in (keys[j-1], keys[j]); cnt[2j+1]: == keys[j];
	// cnt[2m]: above every positive (m = len(keys)); cnt[2m+1] is unused.
	cnt   []int
	ranks []int
}

type posItem struct {
	item  int32
	score float32
}

func (ev *evaluator) newWorker() *worker { return &worker{mark: make([]uint8, ev.nItems)} }

// user evaluates user u and stores its row.
func (ev *evaluator) user(s Scorer, w *worker, u int) {
	trainItems := ev.trainItems[ev.trainOff[u]:ev.trainOff[u+1]]
	w.test = append(w.test[:0], ev.testItems[ev.testOff[u]:ev.testOff[u+1]]...)
	if len(w.test) == 0 {
		if len(trainItems) > 0 {
			ev.state[u] = stateNoTest
		}
		return
	}
	slices.Sort(w.test)
	w.test = slices.Compact(w.test)

	for _, it := range trainItems {
		if it >= 0 && int(it) < ev.nItems {
			w.mark[it] = markTrain
		}
	}
	w.pos = w.pos[:0]
	for _, it := range w.test {
		if it < 0 || int(it) >= ev.nItems || (ev.inCand != nil && !ev.inCand[it]) {
			ev.dropped[u]++
			continue
		}
		w.mark[it] = markPositive
		w.pos = append(w.pos, posItem{item: it})
	}
	defer func() {
		for _, it := range trainItems {
			if it >= 0 && int(it) < ev.nItems {
				w.mark[it] = markNone
			}
		}
		for _, p := range w.pos {
			w.mark[p.item] = markNone
		}
	}()
	if len(w.pos) == 0 {
		ev.state[u] = stateNoCandidates
		return
	}

	w.scores = s.ScoreAll(int32(u), w.scores)
	if len(w.scores) != ev.nItems {
		panic(fmt.Sprintf("eval: Scorer.ScoreAll(%d) returned %d scores, want one per item (%d)", u, len(w.scores), ev.nItems))
	}
	for i := range w.pos {
		w.pos[i].score = clean(w.scores[w.pos[i].item])
	}
	// Positives in ranking order: score descending, then item ascending.
	slices.SortFunc(w.pos, func(a, b posItem) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.item, b.item)
	})
	w.keys = w.keys[:0]
	for i := len(w.pos) - 1; i >= 0; i-- {
		if k := sortKey(w.pos[i].score); len(w.keys) == 0 || w.keys[len(w.keys)-1] != k {
			w.keys = append(w.keys, k)
		}
	}
	m := len(w.keys)
	w.cnt = slices.Grow(w.cnt[:0], 2*m+2)[:2*m+2]
	clear(w.cnt)
	var nNeg int
	if ev.candidates == nil {
		nNeg = countNegatives(w.scores, w.mark, w.keys, w.cnt)
	} else {
		nNeg = countCandidates(ev.candidates, w.scores, w.mark, w.keys, w.cnt)
	}

	// below[j] = negatives scoring < keys[j] (stored over cnt[2j]); equal = cnt[2j+1];
	// negatives scoring ≥ keys[j] = nNeg − below[j].
	below := 0
	for j := range m {
		below += w.cnt[2*j]
		w.cnt[2*j] = below
		below += w.cnt[2*j+1]
	}
	auc := 0.0
	w.ranks = w.ranks[:0]
	for t, p := range w.pos {
		j := slot(w.keys, sortKey(p.score)) / 2
		w.ranks = append(w.ranks, 1+(nNeg-w.cnt[2*j])+t)
		auc += float64(w.cnt[2*j]) + 0.5*float64(w.cnt[2*j+1])
	}
	row := ev.rows[u*ev.width : (u+1)*ev.width]
	if nNeg > 0 {
		row[0] = auc / (float64(len(w.pos)) * float64(nNeg))
	} else {
		row[0] = math.NaN()
	}
	// w.ranks is ascending: positives were visited in ranking order.
	nPos := len(w.pos)
	for i, k := range ev.ks {
		if k < 1 {
			continue
		}
		hits, dcg, mrr := 0, 0.0, 0.0
		for _, r := range w.ranks {
			if r > k {
				break
			}
			if hits == 0 {
				mrr = 1 / float64(r)
			}
			hits++
			dcg += ev.discount[r-1]
		}
		out := row[1+5*i : 1+5*(i+1)]
		out[0] = float64(hits) / float64(nPos)
		out[1] = float64(hits) / float64(k)
		out[2] = dcg / ev.ideal[min(k, nPos)]
		if hits > 0 {
			out[3] = 1
		}
		out[4] = mrr
	}
	ev.state[u] = stateEvaluated
}

// report sums the per-user rows in user order.
func (ev *evaluator) report() Report {
	r := Report{AtK: make([]AtK, len(ev.ks))}
	sums := make([]float64, ev.width)
	for u := range ev.nUsers {
		r.DroppedTest += ev.dropped[u]
		switch ev.state[u] {
		case stateNoTest:
			r.SkippedNoTest++
		case stateNoCandidates:
			r.SkippedNoCandidates++
		case stateEvaluated:
			r.Users++
			row := ev.rows[u*ev.width : (u+1)*ev.width]
			if !math.IsNaN(row[0]) {
				sums[0] += row[0]
				r.AUCUsers++
			}
			for j := 1; j < ev.width; j++ {
				sums[j] += row[j]
			}
		}
	}
	if r.AUCUsers > 0 {
		r.AUC = sums[0] / float64(r.AUCUsers)
	}
	for i, k := range ev.ks {
		a := AtK{K: k}
		if r.Users > 0 && k >= 1 {
			n := float64(r.Users)
			s := sums[1+5*i:]
			a.Recall, a.Precision, a.NDCG, a.HR, a.MRR = s[0]/n, s[1]/n, s[2]/n, s[3]/n, s[4]/n
		}
		r.AtK[i] = a
	}
	return r
}

// countNegatives counts into cnt the items whose mark is markNone by where their score
// falls among the ascending, distinct, non-empty positive scores whose sort keys are keys
// (see worker.cnt and sortKey), and returns how many there were. This loop is the cost of
// Evaluate: it runs once per item and user.
func countNegatives(scores []float32, mark []uint8, keys []uint32, cnt []int) int {
	scores = scores[:len(mark)]
	lowest := keys[0]
	n := 0
	for q, mk := range mark {
		if mk != markNone {
			continue
		}
		n++
		k := sortKey(scores[q])
		if k < lowest { // the common case for a good model
			cnt[0]++
			continue
		}
		cnt[slot(keys, k)]++
	}
	return n
}

// countCandidates is countNegatives over the candidate items only.
func countCandidates(cands []int32, scores []float32, mark []uint8, keys []uint32, cnt []int) int {
	lowest := keys[0]
	n := 0
	for _, q := range cands {
		if mark[q] != markNone {
			continue
		}
		n++
		k := sortKey(scores[q])
		if k < lowest {
			cnt[0]++
			continue
		}
		cnt[slot(keys, k)]++
	}
	return n
}

// sortKey maps a score to an unsigned integer with the same order and equality: −0 and +0
// map to one key, NaN to the key of −Inf. Integer keys let slot search without branches.
func sortKey(s float32) uint32 {
	s = clean(s) + 0 // −0 + 0 = +0
	b := math.Float32bits(s)
	return b ^ (uint32(int32(b)>>31) | 1<<31)
}

// slot returns 2j+1 when x == keys[j], else 2j where j is the number of keys below x;
// keys is ascending and non-empty. The search is branch-free arithmetic (below is 1 when
// a key is below x): with random scores a branchy search mispredicts at every level, and
// the compiler emits a branch for the plain if.
func slot(keys []uint32, x uint32) int {
	below := func(k uint32) int { return int((uint64(k) - uint64(x)) >> 63) }
	base, n := 0, len(keys)
	for n > 1 {
		half := n >> 1
		base += half * below(keys[base+half-1])
		n -= half
	}
	j := base + below(keys[base]) // the number of keys below x is base or base+1
	eq := 0
	if j < len(keys) && keys[j] == x {
		eq = 1
	}
	return 2*j + eq
}

// clean maps NaN to −Inf so that every score is ordered.
func clean(s float32) float32 {
	if s != s {
		return float32(math.Inf(-1))
	}
	return s
}

// grow returns dst resized to n, reallocated when its capacity is short.
func grow(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}

// PopularityScorer is the popularity baseline: an item's score is its number of training
// interactions (every interaction counts, repeated ones included). It is the same for
// every user and safe for concurrent use.
type PopularityScorer struct {
	counts []float32
}

// NewPopularityScorer counts the items of train; items outside [0, nItems) are ignored.
func NewPopularityScorer(nItems int, train []datasets.Interaction) *PopularityScorer {
	p := &PopularityScorer{counts: make([]float32, max(nItems, 0))}
	for _, x := range train {
		if x.Item >= 0 && int(x.Item) < len(p.counts) {
			p.counts[x.Item]++
		}
	}
	return p
}

// ScoreAll implements Scorer.
func (p *PopularityScorer) ScoreAll(_ int32, dst []float32) []float32 {
	dst = grow(dst, len(p.counts))
	copy(dst, p.counts)
	return dst
}

// RandomScorer is the random baseline: uniform scores in [0, 1) with 24 random bits,
// drawn from PCG-DXSM seeded with (seed, user), so a user's scores depend only on the seed
// and the user, not on call order. It is safe for concurrent use.
type RandomScorer struct {
	nItems int
	seed   uint64
}

// NewRandomScorer returns a random scorer of nItems items.
func NewRandomScorer(nItems int, seed uint64) *RandomScorer {
	return &RandomScorer{nItems: max(nItems, 0), seed: seed}
}

// ScoreAll implements Scorer.
func (r *RandomScorer) ScoreAll(user int32, dst []float32) []float32 {
	dst = grow(dst, r.nItems)
	var src rand.PCG
	src.Seed(r.seed, uint64(uint32(user))<<32|0x5eed)
	for i := range dst {
		dst[i] = float32(src.Uint64()>>40) * (1.0 / (1 << 24))
	}
	return dst
}
