package models

import (
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

// PMFOptions configure TrainPMF. DefaultPMFOptions gives the defaults (PMF);
// DefaultBiasedMFOptions the biased variant.
type PMFOptions struct {
	Factors    int // K, the number of latent factors
	Iterations int // ALS iterations; each solves every user row, then every item row
	// Reg is λ = σ²/σ_f², the ratio of the rating noise variance to the prior variance of
	// the factors: the L2 strength on every p_u and q_i. It must be positive, which keeps
	// every row's system positive definite.
	Reg float32
	// RegBias is the L2 strength on b_u and b_i (Biases only); it must be positive then.
	RegBias float32
	// Biases adds a user and an item bias: s(u,i) = μ + b_u + b_i + p_u·q_i (biased MF,
	// Koren et al. 2009). Without them s(u,i) = μ + p_u·q_i (PMF).
	Biases bool
	// ScaleReg multiplies a row's λ (and λ_b) by its number of ratings n_r (ALS-WR, Zhou
	// et al. 2008): a prior that tightens with the evidence, so rows with many ratings are
	// not under-regularised. It is not PMF's fixed prior; false keeps the plain MAP.
	ScaleReg bool
	// InitStd is the standard deviation of the initial factors (the first half-iteration
	// overwrites the user factors, so it matters only for the items' start).
	InitStd float32
	// Seed seeds the initial factors (PCG).
	Seed uint64
	// Workers is the number of goroutines solving rows in parallel; ≤ 1 means the calling
	// goroutine alone. The model is bit-identical for any number of workers.
	Workers int
}

// DefaultPMFOptions returns PMF with K=10, 15 iterations, λ=λ_b=0.15 scaled by each row's
// rating count (ScaleReg), init std 0.1, seed 1 and GOMAXPROCS workers. K and λ were tuned
// by hand on MovieLens ml-latest-small (random 80/20 split, held-out RMSE): 0.881 (biased
// 0.854) against 0.902 for the best single λ tried (λ=10 for every row, the paper's fixed
// prior; TestPMFALSMovieLens measures both): one λ for all rows over-fits the heavy users or
// over-shrinks the light ones. K from 5 to 20 and 15 to 30 iterations moved RMSE by < 0.01.
func DefaultPMFOptions() PMFOptions {
	return PMFOptions{Factors: 10, Iterations: 15, Reg: 0.15, RegBias: 0.15, ScaleReg: true,
		InitStd: 0.1, Seed: 1, Workers: runtime.GOMAXPROCS(0)}
}

// DefaultBiasedMFOptions returns DefaultPMFOptions with Biases set.
func DefaultBiasedMFOptions() PMFOptions {
	o := DefaultPMFOptions()
	o.Biases = true
	return o
}

// Validate reports options that TrainPMF would refuse.
func (o PMFOptions) Validate() error {
	positive := func(v float32) bool { return v > 0 && !math.IsInf(float64(v), 0) }
	switch {
	case o.Factors < 1:
		return fmt.Errorf("models: PMF factors %d < 1", o.Factors)
	case o.Iterations < 0:
		return fmt.Errorf("models: PMF iterations %d < 0", o.Iterations)
	case !positive(o.Reg):
		return fmt.Errorf("models: PMF reg %v is not a finite positive number", o.Reg)
	case o.Biases && !positive(o.RegBias):
		return fmt.Errorf("models: PMF bias reg %v is not a finite positive number", o.RegBias)
	case !(o.InitStd >= 0) || math.IsInf(float64(o.InitStd), 0):
		return fmt.Errorf("models: PMF init std %v is not a finite non-negative number", o.InitStd)
	}
	return nil
}

// ErrPMFInput is returned (wrapped) by TrainPMF for an interaction it cannot use: an index
// outside the given counts, or a value that is NaN or infinite.
var ErrPMFInput = errors.New("models: PMF input")

// PMF is explicit matrix factorisation trained in batch by alternating least squares:
// probabilistic MF (Salakhutdinov and Mnih 2008), or with Biases the biased MF of Koren et
// al. (2009).
//
// Ratings are centred by their mean μ over the training interactions (the PMF paper maps
// them to [0,1] instead; centring keeps the Gaussian likelihood and the scale of the
// stars). With r_ui ~ N(μ + p_u·q_i, σ²) and priors p_u, q_i ~ N(0, σ_f²I), the MAP estimate
// minimises
//
//	L = Σ_{(u,i) observed} (r_ui − s(u,i))² + λ·(Σ_u ‖p_u‖² + Σ_i ‖q_i‖²) [+ λ_b·(Σ b_u² + Σ b_i²)]
//
// with λ = σ²/σ_f², s(u,i) = μ [+ b_u + b_i] + p_u·q_i; every interaction is one
// observation (a pair rated twice counts twice). With ScaleReg each row's λ is multiplied
// by its number of ratings. Each ALS iteration solves every user row exactly (Cholesky,
// float64) with the items fixed, then every item row with the users fixed, so L never
// increases (up to rounding). A row with no ratings is 0: it predicts μ (plus the other
// side's bias).
//
// Rows are stored as [b, factors(K)] (b = 0 without Biases), the layout of the online MF;
// factors are float32 and clamped to ±1e15.
//
// A PMF is immutable once trained or loaded; all its methods are safe for concurrent use.
type PMF struct {
	opts           PMFOptions
	k              int
	nUsers, nItems int
	mu             float32
	users, items   []float32 // row-major, nUsers×(K+1) and nItems×(K+1): [b, factors]
}

// TrainPMF trains a PMF of nUsers users and nItems items on train (Interaction.Value is
// the rating). progress, when non-nil, is called by the calling goroutine after each
// iteration with the number done (1, 2, ...). Iterations 0 gives μ and the seeded initial
// factors (N(0, InitStd²); biases 0). train is only read. An interaction with an index
// outside [0, nUsers)×[0, nItems) or a NaN or infinite value is an error wrapping
// ErrPMFInput.
func TrainPMF(nUsers, nItems int, train []datasets.Interaction, opts PMFOptions, progress func(iter int)) (*PMF, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nUsers < 0 || nItems < 0 || nUsers > math.MaxInt32 || nItems > math.MaxInt32 ||
		uint64(max(nUsers, nItems))*uint64(opts.Factors+1) > math.MaxInt/8 {
		return nil, fmt.Errorf("%w: %d users, %d items, K=%d", ErrPMFInput, nUsers, nItems, opts.Factors)
	}
	var sum float64
	for n, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return nil, fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrPMFInput, n, x.User, x.Item, nUsers, nItems)
		}
		v := float64(x.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: interaction %d: value %v is not finite", ErrPMFInput, n, x.Value)
		}
		sum += v
	}
	k := opts.Factors
	m := &PMF{opts: opts, k: k, nUsers: nUsers, nItems: nItems,
		users: make([]float32, nUsers*(k+1)), items: make([]float32, nItems*(k+1))}
	if len(train) > 0 {
		m.mu = float32(sum / float64(len(train)))
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9f3))
	for _, t := range [][]float32{m.users, m.items} {
		for r := 0; r < len(t); r += k + 1 {
			for j := r + 1; j < r+k+1; j++ {
				t[j] = float32(rng.NormFloat64()) * opts.InitStd
			}
		}
	}
	byUser, byItem := ratingRows(nUsers, train, true, m.mu), ratingRows(nItems, train, false, m.mu)
	for it := 0; it < opts.Iterations; it++ {
		m.solveAll(m.users, m.items, byUser)
		m.solveAll(m.items, m.users, byItem)
		if progress != nil {
			progress(it + 1)
		}
	}
	return m, nil
}

// ratings holds one side's centred ratings, r − μ, grouped by row in train order: row r
// has the other side's indices idx[off[r]:off[r+1]] and values val[off[r]:off[r+1]].
type ratings struct {
	off []int
	idx []int32
	val []float64
}

func ratingRows(n int, train []datasets.Interaction, byUser bool, mu float32) *ratings {
	key := func(x datasets.Interaction) (int32, int32) {
		if byUser {
			return x.User, x.Item
		}
		return x.Item, x.User
	}
	c := &ratings{off: make([]int, n+1), idx: make([]int32, len(train)), val: make([]float64, len(train))}
	for _, x := range train {
		r, _ := key(x)
		c.off[r+1]++
	}
	for r := range n {
		c.off[r+1] += c.off[r]
	}
	next := slices.Clone(c.off[:n])
	for _, x := range train {
		r, j := key(x)
		c.idx[next[r]], c.val[next[r]] = j, float64(x.Value)-float64(mu)
		next[r]++
	}
	return c
}

// pmfWork is one worker's scratch: the row system a (d×d), b and the other side's row z.
type pmfWork struct{ a, b, z []float64 }

// solveAll solves every row of dst (K+1 wide: [b, factors]) exactly against the fixed rows
// of other, in parallel; each row reads only other, so the result does not depend on the
// number of workers.
func (m *PMF) solveAll(dst, other []float32, obs *ratings) {
	n := len(obs.off) - 1
	d := m.k
	if m.opts.Biases {
		d++
	}
	const chunk = 16
	var next atomic.Int64
	run := func() {
		w := &pmfWork{a: make([]float64, d*d), b: make([]float64, d), z: make([]float64, d)}
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= n {
				return
			}
			for r := lo; r < min(lo+chunk, n); r++ {
				m.solveRow(dst[r*(m.k+1):(r+1)*(m.k+1)], other, obs, r, w)
			}
		}
	}
	workers := min(max(m.opts.Workers, 1), (n+chunk-1)/chunk)
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

// solveRow sets x = [b, f] to the minimiser of
//
//	Σ_j (v_j − [b_j] − [b] − f·g_j)² + λ'·‖f‖² [+ λ_b'·b²]
//
// over row r's observations (j, v_j = r − μ) against the other side's rows [b_j, g_j], the
// bracketed terms with Biases only and λ', λ_b' scaled by n_r with ScaleReg: the normal
// equations (ZᵀZ + Λ)·θ = Zᵀt with z_j = [1, g_j] or g_j, solved by Cholesky. No
// observations, or a system that rounding made indefinite, gives x = 0.
func (m *PMF) solveRow(x, other []float32, obs *ratings, r int, w *pmfWork) {
	lo, hi := obs.off[r], obs.off[r+1]
	clear(x)
	if lo == hi {
		return
	}
	k, biases := m.k, m.opts.Biases
	d := len(w.b)
	a, b, z := w.a, w.b, w.z
	clear(a)
	clear(b)
	for p := lo; p < hi; p++ {
		y := other[int(obs.idx[p])*(k+1) : int(obs.idx[p])*(k+1)+k+1]
		t := obs.val[p]
		if biases {
			t -= float64(y[0])
			z[0] = 1
			for s, v := range y[1:] {
				z[s+1] = float64(v)
			}
		} else {
			for s, v := range y[1:] {
				z[s] = float64(v)
			}
		}
		for s, zs := range z {
			if zs == 0 {
				continue
			}
			row := a[s*d : s*d+s+1] // lower triangle; cholSolve reads only it
			for u, zu := range z[:s+1] {
				row[u] += zs * zu
			}
			b[s] += t * zs
		}
	}
	scale := 1.0
	if m.opts.ScaleReg {
		scale = float64(hi - lo)
	}
	for s := range d {
		a[s*d+s] += scale * float64(m.opts.Reg)
	}
	if biases {
		a[0] += scale*float64(m.opts.RegBias) - scale*float64(m.opts.Reg)
	}
	if !cholSolve(a, b, d) {
		return
	}
	if biases {
		x[0] = clampParam(b[0])
		b = b[1:]
	}
	for s, v := range b {
		x[s+1] = clampParam(v)
	}
}

// Options returns the options the model was trained with (for a model read from a
// snapshot: the recorded ones, with GOMAXPROCS Workers).
func (m *PMF) Options() PMFOptions { return m.opts }

// Name is "mf-als" with Biases and "pmf-als" without: the batch models, distinct from the
// online "mf" and "pmf".
func (m *PMF) Name() string { return pmfName(m.opts.Biases) }

func pmfName(biases bool) string {
	if biases {
		return "mf-als"
	}
	return "pmf-als"
}

// Factors is K.
func (m *PMF) Factors() int { return m.k }

// NumUsers is the number of user rows.
func (m *PMF) NumUsers() int { return m.nUsers }

// NumItems is the number of item rows.
func (m *PMF) NumItems() int { return m.nItems }

// Mean is μ, the mean training rating.
func (m *PMF) Mean() float32 { return m.mu }

// UserRow returns a copy of [b_u, p_u] (b_u = 0 without Biases), or nil when u is out of
// range.
func (m *PMF) UserRow(u int32) []float32 {
	if u < 0 || int(u) >= m.nUsers {
		return nil
	}
	return slices.Clone(m.users[int(u)*(m.k+1) : (int(u)+1)*(m.k+1)])
}

// ItemRow returns a copy of [b_i, q_i], or nil when i is out of range.
func (m *PMF) ItemRow(i int32) []float32 {
	if i < 0 || int(i) >= m.nItems {
		return nil
	}
	return slices.Clone(m.items[int(i)*(m.k+1) : (int(i)+1)*(m.k+1)])
}

// Predict returns the predicted rating μ + b_u + b_i + p_u·q_i in float64; a user or item
// out of range contributes nothing (an unknown pair predicts μ).
func (m *PMF) Predict(user, item int32) float64 {
	s := float64(m.mu)
	k := m.k
	var p, q []float32
	if user >= 0 && int(user) < m.nUsers {
		p = m.users[int(user)*(k+1) : (int(user)+1)*(k+1)]
		s += float64(p[0])
	}
	if item >= 0 && int(item) < m.nItems {
		q = m.items[int(item)*(k+1) : (int(item)+1)*(k+1)]
		s += float64(q[0])
	}
	if p != nil && q != nil {
		s += dot64(p[1:], q[1:])
	}
	return s
}

// Score is Predict as a float32, clamped to ±MaxFloat32.
func (m *PMF) Score(user, item int32) float32 { return clamp32(m.Predict(user, item), scoreLimit) }

// ScoreAll returns Score(user, i) for every item i, reusing dst when its capacity suffices
// (else allocating). It implements eval.Scorer and is safe for concurrent use with distinct
// dst.
func (m *PMF) ScoreAll(user int32, dst []float32) []float32 {
	dst = growF32(dst, m.nItems)
	for i := range dst {
		dst[i] = m.Score(user, int32(i))
	}
	return dst
}

// The PMF snapshot: model "pmf-als" or "mf-als", version 1, tables "users"
// (users×(K+1)), "items" (items×(K+1)) and "global" (1×1: μ), hyper-parameters in Meta.
const (
	pmfVersion     = 1
	pmfUsersTable  = "users"
	pmfItemsTable  = "items"
	pmfGlobalTable = "global"
)

// Snapshot returns the model as a Snapshot (model Name(), version 1): tables "users"
// (NumUsers×(K+1)), "items" (NumItems×(K+1)), rows [b, factors], and "global" (1×1, μ),
// without ids; Meta "factors", "iterations", "reg", "reg_bias", "scale_reg", "init_std"
// and "seed". The user and item tables share the model's storage (no copy): neither the
// model nor the caller may modify their Data. Attach external ids by setting
// Tables[n].IDs.
func (m *PMF) Snapshot() Snapshot {
	o := m.opts
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return Snapshot{
		Model:   m.Name(),
		Version: pmfVersion,
		Meta: map[string]string{
			"factors":    strconv.Itoa(o.Factors),
			"iterations": strconv.Itoa(o.Iterations),
			"reg":        f(o.Reg),
			"reg_bias":   f(o.RegBias),
			"scale_reg":  strconv.FormatBool(o.ScaleReg),
			"init_std":   f(o.InitStd),
			"seed":       strconv.FormatUint(o.Seed, 10),
		},
		Tables: []Table{
			{Name: pmfUsersTable, Rows: m.nUsers, Cols: m.k + 1, Data: m.users},
			{Name: pmfItemsTable, Rows: m.nItems, Cols: m.k + 1, Data: m.items},
			{Name: pmfGlobalTable, Rows: 1, Cols: 1, Data: []float32{m.mu}},
		},
	}
}

// PMFFromSnapshot rebuilds a PMF from a Snapshot written by (*PMF).Snapshot ("pmf-als" or
// "mf-als"). It checks the model name and version, the hyper-parameters, the tables'
// shapes, that every value is finite and within ±1e15, and that a "pmf-als" snapshot has
// no biases; failures wrap ErrSnapshotInvalid. The PMF keeps the user and item tables'
// Data (no copy): the caller must not modify them afterwards.
func PMFFromSnapshot(s Snapshot) (*PMF, error) {
	if (s.Model != pmfName(false) && s.Model != pmfName(true)) || s.Version != pmfVersion {
		return nil, fmt.Errorf("%w: model %q version %d, want %q or %q version %d", ErrSnapshotInvalid,
			s.Model, s.Version, pmfName(false), pmfName(true), pmfVersion)
	}
	o := DefaultPMFOptions()
	o.Biases = s.Model == pmfName(true)
	for _, f := range []struct {
		key string
		dst *int
	}{{"factors", &o.Factors}, {"iterations", &o.Iterations}} {
		v, err := strconv.Atoi(s.Meta[f.key])
		if err != nil {
			return nil, fmt.Errorf("%w: %s meta %q: %w", ErrSnapshotInvalid, s.Model, f.key, err)
		}
		*f.dst = v
	}
	scale, err := strconv.ParseBool(s.Meta["scale_reg"])
	if err != nil {
		return nil, fmt.Errorf("%w: %s meta \"scale_reg\": %w", ErrSnapshotInvalid, s.Model, err)
	}
	o.ScaleReg = scale
	if err := parseMeta(s.Model, s.Meta, &o.Seed, map[string]*float32{"reg": &o.Reg, "reg_bias": &o.RegBias, "init_std": &o.InitStd}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	m := &PMF{opts: o, k: o.Factors}
	var global []float32
	for _, t := range []struct {
		name       string
		rows       *int
		data       *[]float32
		wantRows   int // -1: any
		cols       int
		zeroColumn bool // column 0 must be 0 (PMF has no biases)
	}{
		{pmfUsersTable, &m.nUsers, &m.users, -1, o.Factors + 1, !o.Biases},
		{pmfItemsTable, &m.nItems, &m.items, -1, o.Factors + 1, !o.Biases},
		{pmfGlobalTable, new(int), &global, 1, 1, false},
	} {
		tab, ok := s.Table(t.name)
		if !ok {
			return nil, fmt.Errorf("%w: %s: no table %q", ErrSnapshotInvalid, s.Model, t.name)
		}
		if tab.Cols != t.cols || tab.Rows < 0 || tab.Rows > math.MaxInt32 || (t.wantRows >= 0 && tab.Rows != t.wantRows) ||
			uint64(tab.Rows)*uint64(tab.Cols) != uint64(len(tab.Data)) {
			return nil, fmt.Errorf("%w: %s table %q is %d×%d with %d values, want %d columns",
				ErrSnapshotInvalid, s.Model, t.name, tab.Rows, tab.Cols, len(tab.Data), t.cols)
		}
		for n, v := range tab.Data {
			if !(math.Abs(float64(v)) <= paramLimit) || (t.zeroColumn && n%t.cols == 0 && v != 0) {
				return nil, fmt.Errorf("%w: %s table %q value %d is %v", ErrSnapshotInvalid, s.Model, t.name, n, v)
			}
		}
		*t.rows, *t.data = tab.Rows, tab.Data
	}
	m.mu = global[0]
	return m, nil
}

// onlineGlobalID is the id of the online models' one global row (updater's globalRowID).
const onlineGlobalID = "g"

// OnlineSnapshot returns a biased model (mf-als) in the layout of the online MF's updater
// snapshot, which updater.Restore and `visrec update --from-snapshot` take, so that the
// online "mf" (models.MF, explicit, the same K) continues from the batch solution: model
// "mf", version 1, tables "global" (1×1: μ, id "g"), "items" and "users" (rows [b, factors],
// the online MF's rows) with userIDs and itemIDs as their ids (NumUsers and NumItems
// long). The tables are copies. A PMF without biases is refused: the online "pmf" drops
// μ from its step, so a centred model cannot continue there.
func (m *PMF) OnlineSnapshot(userIDs, itemIDs []string) (Snapshot, error) {
	if !m.opts.Biases {
		return Snapshot{}, fmt.Errorf("models: %s has no online counterpart that keeps μ (online pmf drops it); train mf-als", m.Name())
	}
	if len(userIDs) != m.nUsers || len(itemIDs) != m.nItems {
		return Snapshot{}, fmt.Errorf("models: %s: %d user and %d item ids for %d users and %d items", m.Name(), len(userIDs), len(itemIDs), m.nUsers, m.nItems)
	}
	return Snapshot{
		Model:   "mf",
		Version: 1,
		Meta:    map[string]string{"from": m.Name(), "factors": strconv.Itoa(m.k)},
		Tables: []Table{
			{Name: pmfGlobalTable, Rows: 1, Cols: 1, Data: []float32{m.mu}, IDs: []string{onlineGlobalID}},
			{Name: pmfItemsTable, Rows: m.nItems, Cols: m.k + 1, Data: slices.Clone(m.items), IDs: slices.Clone(itemIDs)},
			{Name: pmfUsersTable, Rows: m.nUsers, Cols: m.k + 1, Data: slices.Clone(m.users), IDs: slices.Clone(userIDs)},
		},
	}, nil
}
