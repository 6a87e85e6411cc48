package models

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/visrec/visrec/datasets"
)

// WMFOptions configure TrainWMF. DefaultWMFOptions gives the defaults.
type WMFOptions struct {
	Factors    int // K, the number of latent factors
	Iterations int // ALS iterations; each solves every user row, then every item row
	// CGSteps is the number of conjugate-gradient steps per row solve, warm-started from
	// the row's current value (Takács et al. 2011); K steps solve a row exactly up to
	// rounding.
	CGSteps int
	// Alpha scales the confidence: c_ui = 1 + Alpha·r_ui, r_ui the summed interaction
	// values of the pair.
	Alpha float32
	// Reg is λ, the L2 strength on every user and item vector; it must be positive, which
	// keeps every row's system positive definite.
	Reg float32
	// Seed seeds the initial factors (PCG).
	Seed uint64
	// Workers is the number of goroutines solving rows in parallel; ≤ 1 means the calling
	// goroutine alone. The model is bit-identical for any number of workers.
	Workers int
}

// DefaultWMFOptions returns K=64, 15 iterations, 3 CG steps, α=5, λ=100, seed 1 and
// GOMAXPROCS workers. α and λ were tuned on MovieLens ml-latest-small with the ratings
// (0.5–5 stars) as r_ui, on a random 80/20 split (TestWMFMovieLens): λ much below 50 let
// AUC fall under popularity's while Recall@20 barely moved; λ far above 100 collapsed the
// model towards popularity. The paper's α=40 suits raw counts (r_ui in the tens); on other
// data, tune λ with α.
func DefaultWMFOptions() WMFOptions {
	return WMFOptions{Factors: 64, Iterations: 15, CGSteps: 3, Alpha: 5, Reg: 100, Seed: 1,
		Workers: runtime.GOMAXPROCS(0)}
}

// Validate reports options that TrainWMF would refuse.
func (o WMFOptions) Validate() error {
	switch {
	case o.Factors < 1:
		return fmt.Errorf("models: WMF factors %d < 1", o.Factors)
	case o.Iterations < 0:
		return fmt.Errorf("models: WMF iterations %d < 0", o.Iterations)
	case o.CGSteps < 1:
		return fmt.Errorf("models: WMF CG steps %d < 1", o.CGSteps)
	case !(o.Alpha >= 0) || math.IsInf(float64(o.Alpha), 0):
		return fmt.Errorf("models: WMF alpha %v is not a finite non-negative number", o.Alpha)
	case !(o.Reg > 0) || math.IsInf(float64(o.Reg), 0):
		return fmt.Errorf("models: WMF reg %v is not a finite positive number", o.Reg)
	}
	return nil
}

// ErrWMFInput is returned (wrapped) by TrainWMF for an interaction it cannot use: an index
// outside the given counts, or a value that is negative, NaN or infinite.
var ErrWMFInput = errors.New("models: WMF input")

// WMF is weighted matrix factorisation for implicit feedback (Hu, Koren and Volinsky 2008).
//
// Every (user, item) pair of the training interactions is observed with preference
// p_ui = 1 and confidence c_ui = 1 + α·r_ui, where r_ui is the sum of the pair's
// interaction values (a rating, or 1 per implicit event; a pair whose values sum to 0 is
// unobserved); every other pair has p_ui = 0 and c_ui = 1. Training minimises
//
//	L = Σ_{all u,i} c_ui·(p_ui − x_u·y_i)² + λ·(Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)
//
// by alternating least squares: each iteration solves every user row
// (YᵀC_uY + λI)·x_u = YᵀC_u·p_u with the item factors fixed, then every item row likewise.
// Each solve is CGSteps steps of conjugate gradient warm-started from the row's current
// value, using the precomputed Gram matrix YᵀY (float64) plus the sparse correction
// Σ_{i∈I_u} (c_ui − 1)·y_i·y_iᵀ over the row's observed items, so a step costs
// O(K² + |I_u|·K) and C_u is never formed. A row with no observations is 0 (its exact
// solution). Rows are solved in parallel; each row's solve reads only the fixed other side
// and its own old value, so the result does not depend on the number of workers.
//
// The score is s(u,i) = x_u·y_i. Factors are float32 and clamped to ±1e15, so scores
// never overflow.
//
// A WMF is immutable once trained or loaded; all its methods are safe for concurrent use.
type WMF struct {
	opts           WMFOptions
	k              int
	nUsers, nItems int
	users, items   []float32 // row-major, nUsers×K and nItems×K

	// Gram matrices for fold-in, computed on first use.
	userGram, itemGram lazyGram
}

type lazyGram struct {
	once sync.Once
	g    []float64
}

func (l *lazyGram) get(rows []float32, k int) []float64 {
	l.once.Do(func() { l.g = gram(rows, k, nil) })
	return l.g
}

// TrainWMF trains a WMF of nUsers users and nItems items on train; Interaction.Value is
// r_ui and duplicate (user, item) pairs sum their values. progress, when non-nil, is called
// by the calling goroutine after each iteration with the number of iterations done (1, 2,
// ...). Iterations 0 returns the seeded initial factors (N(0, 0.01²)). train is only read.
// An interaction with an index outside [0, nUsers)×[0, nItems) or a negative, NaN or
// infinite value is an error wrapping ErrWMFInput.
func TrainWMF(nUsers, nItems int, train []datasets.Interaction, opts WMFOptions, progress func(iter int)) (*WMF, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nUsers < 0 || nItems < 0 || nUsers > math.MaxInt32 || nItems > math.MaxInt32 ||
		uint64(max(nUsers, nItems))*uint64(opts.Factors) > math.MaxInt/8 {
		return nil, fmt.Errorf("%w: %d users, %d items, K=%d", ErrWMFInput, nUsers, nItems, opts.Factors)
	}
	byUser, err := buildCSR(nUsers, nItems, train, float64(opts.Alpha))
	if err != nil {
		return nil, err
	}
	byItem := byUser.transpose(nItems)

	k := opts.Factors
	m := &WMF{opts: opts, k: k, nUsers: nUsers, nItems: nItems,
		users: make([]float32, nUsers*k), items: make([]float32, nItems*k)}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x3f3f))
	for _, t := range [][]float32{m.users, m.items} {
		for j := range t {
			t[j] = float32(rng.NormFloat64() * 0.01)
		}
	}
	a := &als{k: k, reg: float64(opts.Reg), steps: opts.CGSteps, workers: max(opts.Workers, 1)}
	var g []float64
	for it := 0; it < opts.Iterations; it++ {
		g = gram(m.items, k, g)
		a.solveAll(m.users, m.items, g, byUser)
		g = gram(m.users, k, g)
		a.solveAll(m.items, m.users, g, byItem)
		if progress != nil {
			progress(it + 1)
		}
	}
	return m, nil
}

// csr holds one side's observations: row r has columns idx[off[r]:off[r+1]] (ascending,
// distinct) with confidence minus one, α·r_ui, in cm1.
type csr struct {
	off []int
	idx []int32
	cm1 []float32
}

func (c *csr) row(r int) ([]int32, []float32) {
	lo, hi := c.off[r], c.off[r+1]
	return c.idx[lo:hi], c.cm1[lo:hi]
}

// buildCSR groups train by user, sums the values of duplicate pairs in train order and
// drops pairs whose sum is 0.
func buildCSR(nUsers, nItems int, train []datasets.Interaction, alpha float64) (*csr, error) {
	count := make([]int, nUsers+1)
	for n, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return nil, fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrWMFInput, n, x.User, x.Item, nUsers, nItems)
		}
		if v := float64(x.Value); !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: interaction %d: value %v is not a finite non-negative number", ErrWMFInput, n, x.Value)
		}
		count[x.User+1]++
	}
	for u := range nUsers {
		count[u+1] += count[u]
	}
	type entry struct {
		item int32
		r    float64
	}
	ents := make([]entry, len(train))
	next := slices.Clone(count[:nUsers])
	for _, x := range train {
		ents[next[x.User]] = entry{x.Item, float64(x.Value)}
		next[x.User]++
	}
	c := &csr{off: make([]int, nUsers+1), idx: make([]int32, 0, len(train)), cm1: make([]float32, 0, len(train))}
	for u := range nUsers {
		row := ents[count[u]:count[u+1]]
		slices.SortStableFunc(row, func(a, b entry) int { return cmp.Compare(a.item, b.item) })
		for j := 0; j < len(row); {
			it, r := row[j].item, 0.0
			for ; j < len(row) && row[j].item == it; j++ {
				r += row[j].r
			}
			if r == 0 {
				continue
			}
			w := alpha * r
			if math.IsInf(w, 0) || w > math.MaxFloat32 {
				return nil, fmt.Errorf("%w: user %d, item %d: confidence α·r = %g overflows", ErrWMFInput, u, it, w)
			}
			c.idx = append(c.idx, it)
			c.cm1 = append(c.cm1, float32(w))
		}
		c.off[u+1] = len(c.idx)
	}
	return c, nil
}

// transpose returns the same observations grouped by column; each row's columns come out
// ascending.
func (c *csr) transpose(nCols int) *csr {
	t := &csr{off: make([]int, nCols+1), idx: make([]int32, len(c.idx)), cm1: make([]float32, len(c.cm1))}
	for _, j := range c.idx {
		t.off[j+1]++
	}
	for j := range nCols {
		t.off[j+1] += t.off[j]
	}
	next := slices.Clone(t.off[:nCols])
	for r := range len(c.off) - 1 {
		idx, cm1 := c.row(r)
		for n, j := range idx {
			t.idx[next[j]] = int32(r)
			t.cm1[next[j]] = cm1[n]
			next[j]++
		}
	}
	return t
}

// gram returns VᵀV (K×K, float64, both triangles) of the row-major rows of v, reusing dst.
// It sums in row order, so it is deterministic.
func gram(v []float32, k int, dst []float64) []float64 {
	if cap(dst) < k*k {
		dst = make([]float64, k*k)
	}
	g := dst[:k*k]
	clear(g)
	row := make([]float64, k)
	for off := 0; off+k <= len(v); off += k {
		for a, x := range v[off : off+k] {
			row[a] = float64(x)
		}
		for a, xa := range row {
			if xa == 0 {
				continue
			}
			ga := g[a*k : a*k+k]
			for b := a; b < k; b++ {
				ga[b] += xa * row[b]
			}
		}
	}
	for a := range k {
		for b := a + 1; b < k; b++ {
			g[b*k+a] = g[a*k+b]
		}
	}
	return g
}

// als solves rows in parallel.
type als struct {
	k       int
	reg     float64
	steps   int
	workers int
}

// cgWork is one worker's scratch.
type cgWork struct{ x, r, p, ap []float64 }

func newCGWork(k int) *cgWork {
	b := make([]float64, 4*k)
	return &cgWork{x: b[:k], r: b[k : 2*k], p: b[2*k : 3*k], ap: b[3*k:]}
}

// solveAll updates every row of dst (row-major, K wide) against the fixed rows of other,
// whose Gram matrix is g, with the observations obs.
func (a *als) solveAll(dst, other []float32, g []float64, obs *csr) {
	n := len(obs.off) - 1
	const chunk = 32
	var next atomic.Int64
	run := func() {
		w := newCGWork(a.k)
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= n {
				return
			}
			for r := lo; r < min(lo+chunk, n); r++ {
				idx, cm1 := obs.row(r)
				solveRow(dst[r*a.k:(r+1)*a.k], other, g, a.reg, idx, cm1, a.steps, w)
			}
		}
	}
	workers := min(a.workers, (n+chunk-1)/chunk)
	if workers <= 1 {
		run()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(run)
	}
	wg.Wait()
}

// solveRow runs steps of conjugate gradient on
//
//	(G + λI + Σ_j cm1_j·y_j·y_jᵀ)·x = Σ_j (1 + cm1_j)·y_j
//
// from x's current value and stores the result in x (clamped to ±1e15), where y_j is row
// idx[j] of other (K wide) and G = otherᵀ·other. An empty idx sets x to 0. The iteration
// runs in float64 and stops early when the residual vanishes or the curvature pᵀAp is not
// positive and finite (rounding), keeping the last finite iterate.
func solveRow(x, other []float32, g []float64, reg float64, idx []int32, cm1 []float32, steps int, w *cgWork) {
	k := len(x)
	if len(idx) == 0 {
		clear(x)
		return
	}
	xf, r, p, ap := w.x, w.r, w.p, w.ap
	for a, v := range x {
		xf[a] = float64(v)
	}
	// r = b − A·x = −(G+λI)·x + Σ_j (1 + cm1_j − cm1_j·(y_j·x))·y_j
	symv(g, xf, r, reg)
	for a := range r {
		r[a] = -r[a]
	}
	for j, it := range idx {
		y := other[int(it)*k : int(it)*k+k]
		c := float64(cm1[j])
		axpy32(1+c-c*dotMixed(y, xf), y, r)
	}
	copy(p, r)
	rs := dotF64(r, r)
	for range steps {
		if !(rs > 0) || math.IsInf(rs, 0) {
			break
		}
		symv(g, p, ap, reg)
		for j, it := range idx {
			y := other[int(it)*k : int(it)*k+k]
			axpy32(float64(cm1[j])*dotMixed(y, p), y, ap)
		}
		pap := dotF64(p, ap)
		if !(pap > 0) || math.IsInf(pap, 0) {
			break
		}
		step := rs / pap
		for a := range xf {
			xf[a] += step * p[a]
			r[a] -= step * ap[a]
		}
		rsNew := dotF64(r, r)
		beta := rsNew / rs
		for a := range p {
			p[a] = r[a] + beta*p[a]
		}
		rs = rsNew
	}
	for a, v := range xf {
		x[a] = clampParam(v)
	}
}

// symv sets dst = (G + reg·I)·v for the K×K matrix g.
func symv(g, v, dst []float64, reg float64) {
	k := len(v)
	for a := range dst {
		dst[a] = dotF64(g[a*k:a*k+k], v) + reg*v[a]
	}
}

// dotF64 is Σ a·b in float64, unrolled by four. len(b) must be at least len(a).
func dotF64(a, b []float64) float64 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k <= n-4; k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < n; k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotMixed is Σ y·v in float64 for a float32 y. len(v) must be at least len(y).
func dotMixed(y []float32, v []float64) float64 {
	n := len(y)
	v = v[:n]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k <= n-4; k += 4 {
		s0 += float64(y[k]) * v[k]
		s1 += float64(y[k+1]) * v[k+1]
		s2 += float64(y[k+2]) * v[k+2]
		s3 += float64(y[k+3]) * v[k+3]
	}
	for ; k < n; k++ {
		s0 += float64(y[k]) * v[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy32 sets dst += c·y for a float32 y. len(dst) must be at least len(y).
func axpy32(c float64, y []float32, dst []float64) {
	dst = dst[:len(y)]
	for k, v := range y {
		dst[k] += c * float64(v)
	}
}

// Options returns the options the model was trained with (for a model read from a
// snapshot: the recorded ones, with DefaultWMFOptions' Workers).
func (m *WMF) Options() WMFOptions { return m.opts }

// Factors is K.
func (m *WMF) Factors() int { return m.k }

// NumUsers is the number of user rows.
func (m *WMF) NumUsers() int { return m.nUsers }

// NumItems is the number of item rows.
func (m *WMF) NumItems() int { return m.nItems }

// UserVector returns a copy of x_u, or nil when u is out of range.
func (m *WMF) UserVector(u int32) []float32 {
	if u < 0 || int(u) >= m.nUsers {
		return nil
	}
	return slices.Clone(m.users[int(u)*m.k : (int(u)+1)*m.k])
}

// ItemVector returns a copy of y_i, or nil when i is out of range.
func (m *WMF) ItemVector(i int32) []float32 {
	if i < 0 || int(i) >= m.nItems {
		return nil
	}
	return slices.Clone(m.items[int(i)*m.k : (int(i)+1)*m.k])
}

// Score returns x_u·y_i, or 0 when user or item is out of range.
func (m *WMF) Score(user, item int32) float32 {
	if user < 0 || int(user) >= m.nUsers || item < 0 || int(item) >= m.nItems {
		return 0
	}
	k := m.k
	return dot(m.users[int(user)*k:(int(user)+1)*k], m.items[int(item)*k:(int(item)+1)*k])
}

// ScoreAll returns x_u·y_i for every item i, reusing dst when its capacity suffices (else
// allocating); a user out of range scores every item 0. The caller owns dst and the result.
// It implements eval.Scorer and is safe for concurrent use with distinct dst.
func (m *WMF) ScoreAll(user int32, dst []float32) []float32 {
	if user < 0 || int(user) >= m.nUsers {
		dst = growF32(dst, m.nItems)
		clear(dst)
		return dst
	}
	return m.ScoreVector(m.users[int(user)*m.k:(int(user)+1)*m.k], dst)
}

// ScoreVector returns x·y_i for every item i, for a user vector x of length K such as
// FoldInUser returns, reusing dst as ScoreAll does. It panics when len(x) != K.
func (m *WMF) ScoreVector(x, dst []float32) []float32 {
	if len(x) != m.k {
		panic(fmt.Sprintf("models: WMF ScoreVector: vector of length %d, want %d", len(x), m.k))
	}
	dst = growF32(dst, m.nItems)
	k := m.k
	for i := range dst {
		dst[i] = dot(x, m.items[i*k:i*k+k])
	}
	return dst
}

func growF32(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}

// FoldInUser returns the vector of a user with the given items, the item factors held
// fixed: the exact solution (Cholesky, float64) of the user's ALS row system
// (YᵀC_uY + λI)·x = YᵀC_u·p_u, where r_ui is the sum of the weights given for item i.
// weights nil means weight 1 for every item; otherwise it must be as long as items (else
// FoldInUser panics). Entries with an item out of range or a weight that is negative, NaN
// or infinite are skipped. No usable entry gives the zero vector. The result is freshly
// allocated; score it with ScoreVector. The first fold-in computes and keeps YᵀY
// (O(items·K²)).
func (m *WMF) FoldInUser(items []int32, weights []float32) []float32 {
	return m.foldIn(items, weights, m.items, m.nItems, m.itemGram.get(m.items, m.k))
}

// FoldInItem is FoldInUser for a new item: it returns the vector of an item with the
// given users (and weights), the user factors held fixed. Score it against a user with
// Score's formula, x_u·y (UserVector).
func (m *WMF) FoldInItem(users []int32, weights []float32) []float32 {
	return m.foldIn(users, weights, m.users, m.nUsers, m.userGram.get(m.users, m.k))
}

func (m *WMF) foldIn(idx []int32, weights []float32, other []float32, n int, g []float64) []float32 {
	if weights != nil && len(weights) != len(idx) {
		panic(fmt.Sprintf("models: WMF fold-in: %d weights for %d indices", len(weights), len(idx)))
	}
	type entry struct {
		j int32
		r float64
	}
	ents := make([]entry, 0, len(idx))
	for n2, j := range idx {
		r := 1.0
		if weights != nil {
			r = float64(weights[n2])
		}
		if j < 0 || int(j) >= n || !(r >= 0) || math.IsInf(r, 0) {
			continue
		}
		ents = append(ents, entry{j, r})
	}
	slices.SortStableFunc(ents, func(a, b entry) int { return cmp.Compare(a.j, b.j) })
	k := m.k
	x := make([]float32, k)
	a := make([]float64, k*k)
	for p := range a {
		a[p] = g[p]
	}
	for d := range k {
		a[d*k+d] += float64(m.opts.Reg)
	}
	b := make([]float64, k)
	alpha := float64(m.opts.Alpha)
	used := 0
	for p := 0; p < len(ents); {
		j, r := ents[p].j, 0.0
		for ; p < len(ents) && ents[p].j == j; p++ {
			r += ents[p].r
		}
		if r == 0 {
			continue
		}
		used++
		c := math.Min(alpha*r, math.MaxFloat32)
		y := other[int(j)*k : int(j)*k+k]
		for s, ys := range y {
			if ys == 0 {
				continue
			}
			cs := c * float64(ys)
			row := a[s*k : s*k+k]
			for t, yt := range y {
				row[t] += cs * float64(yt)
			}
			b[s] += (1 + c) * float64(ys)
		}
	}
	if used == 0 || !cholSolve(a, b, k) {
		return x
	}
	for s, v := range b {
		x[s] = clampParam(v)
	}
	return x
}

// cholSolve solves a·z = b in place (b becomes z) for a symmetric positive definite K×K a
// (overwritten by its Cholesky factor). It reports false when a is not numerically
// positive definite.
func cholSolve(a, b []float64, k int) bool {
	for j := range k {
		s := a[j*k+j] - dotF64(a[j*k:j*k+j], a[j*k:j*k+j])
		if !(s > 0) || math.IsInf(s, 0) {
			return false
		}
		d := math.Sqrt(s)
		a[j*k+j] = d
		for i := j + 1; i < k; i++ {
			a[i*k+j] = (a[i*k+j] - dotF64(a[i*k:i*k+j], a[j*k:j*k+j])) / d
		}
	}
	// forward: L·w = b; backward: Lᵀ·z = w (L in the lower triangle, row-major)
	for i := range k {
		b[i] = (b[i] - dotF64(a[i*k:i*k+i], b[:i])) / a[i*k+i]
	}
	for i := k - 1; i >= 0; i-- {
		s := b[i]
		for j := i + 1; j < k; j++ {
			s -= a[j*k+i] * b[j]
		}
		b[i] = s / a[i*k+i]
	}
	return true
}

// The WMF snapshot: model "wmf", version 1, tables "users" (users×K) and "items"
// (items×K), and the hyper-parameters in Meta.
const (
	wmfModel       = "wmf"
	wmfVersion     = 1
	wmfUsersTable  = "users"
	wmfItemsTable  = "items"
	wmfMetaFactors = "factors"
)

// Snapshot returns the model as a Snapshot (model "wmf", version 1): tables "users"
// (NumUsers×K) and "items" (NumItems×K) without ids, and Meta "factors", "iterations",
// "cg_steps", "alpha", "reg" and "seed". The tables share the model's storage (no copy):
// neither the model nor the caller may modify their Data. Attach external ids by setting
// Tables[n].IDs.
func (m *WMF) Snapshot() Snapshot {
	o := m.opts
	return Snapshot{
		Model:   wmfModel,
		Version: wmfVersion,
		Meta: map[string]string{
			wmfMetaFactors: strconv.Itoa(o.Factors),
			"iterations":   strconv.Itoa(o.Iterations),
			"cg_steps":     strconv.Itoa(o.CGSteps),
			"alpha":        strconv.FormatFloat(float64(o.Alpha), 'g', -1, 32),
			"reg":          strconv.FormatFloat(float64(o.Reg), 'g', -1, 32),
			"seed":         strconv.FormatUint(o.Seed, 10),
		},
		Tables: []Table{
			{Name: wmfUsersTable, Rows: m.nUsers, Cols: m.k, Data: m.users},
			{Name: wmfItemsTable, Rows: m.nItems, Cols: m.k, Data: m.items},
		},
	}
}

// WMFFromSnapshot rebuilds a WMF from a Snapshot written by (*WMF).Snapshot. It checks
// the model name and version, the hyper-parameters, the tables' shapes, and that every
// factor is finite and within ±1e15; failures wrap ErrSnapshotInvalid. The WMF keeps the
// tables' Data (no copy): the caller must not modify them afterwards.
func WMFFromSnapshot(s Snapshot) (*WMF, error) {
	if s.Model != wmfModel || s.Version != wmfVersion {
		return nil, fmt.Errorf("%w: model %q version %d, want %q version %d", ErrSnapshotInvalid, s.Model, s.Version, wmfModel, wmfVersion)
	}
	o := DefaultWMFOptions()
	ints := []struct {
		key string
		dst *int
	}{{wmfMetaFactors, &o.Factors}, {"iterations", &o.Iterations}, {"cg_steps", &o.CGSteps}}
	for _, f := range ints {
		v, err := strconv.Atoi(s.Meta[f.key])
		if err != nil {
			return nil, fmt.Errorf("%w: wmf meta %q: %w", ErrSnapshotInvalid, f.key, err)
		}
		*f.dst = v
	}
	if err := parseMeta("wmf", s.Meta, &o.Seed, map[string]*float32{"alpha": &o.Alpha, "reg": &o.Reg}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	m := &WMF{opts: o, k: o.Factors}
	for _, t := range []struct {
		name string
		rows *int
		data *[]float32
	}{{wmfUsersTable, &m.nUsers, &m.users}, {wmfItemsTable, &m.nItems, &m.items}} {
		tab, ok := s.Table(t.name)
		if !ok {
			return nil, fmt.Errorf("%w: wmf: no table %q", ErrSnapshotInvalid, t.name)
		}
		if tab.Cols != o.Factors || tab.Rows < 0 || tab.Rows > math.MaxInt32 || tab.Cols > math.MaxInt32 ||
			uint64(tab.Rows)*uint64(tab.Cols) != uint64(len(tab.Data)) {
			return nil, fmt.Errorf("%w: wmf table %q is %d×%d with %d values, want K=%d columns",
				ErrSnapshotInvalid, t.name, tab.Rows, tab.Cols, len(tab.Data), o.Factors)
		}
		for n, v := range tab.Data {
			if !(math.Abs(float64(v)) <= paramLimit) {
				return nil, fmt.Errorf("%w: wmf table %q value %d is %v", ErrSnapshotInvalid, t.name, n, v)
			}
		}
		*t.rows, *t.data = tab.Rows, tab.Data
	}
	return m, nil
}
