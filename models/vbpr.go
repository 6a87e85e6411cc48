package models

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/nn"
)

// VBPROptions configure TrainVBPR. DefaultVBPROptions gives the defaults.
type VBPROptions struct {
	Factors       int // K, the latent factors γ_u, γ_i
	VisualFactors int // K2, the visual factors θ_u and the rows of E
	Epochs        int // passes over the distinct training (user, item) pairs
	Negatives     int // sampled negatives (SGD steps) per positive pair and epoch
	// BatchSize is the number of SGD steps between updates of the shared visual
	// parameters E and β' (the mini-batch; see VBPR). 0 means the default, 4096.
	BatchSize int
	LearnRate float32 // SGD step size
	Reg       float32 // λ_Θ: L2 strength on γ_u, θ_u, γ_i, γ_j
	RegBias   float32 // L2 strength on the item biases b_i, b_j
	RegVisual float32 // λ_E: L2 strength on E and β'
	Seed      uint64  // seeds the initial parameters and the sampling (PCG)
	// Workers is the number of goroutines of the dense products (projections and E's
	// gradient); the SGD steps run on the calling goroutine. ≤ 0 means 1. The model is
	// bit-identical for any number of workers.
	Workers int
}

// defaultVBPRBatch is BatchSize 0's meaning.
const defaultVBPRBatch = 4096

// DefaultVBPROptions returns K=64, K2=20, 20 epochs, 1 negative, mini-batches of 4096
// steps, learning rate 0.05, λ_Θ=0.001, bias λ=0.01, λ_E=1e-5, seed 1 and GOMAXPROCS
// workers, tuned on MovieLens ml-latest-small with the posters' MobileNetV2 features on the
// 20% cold-start item split (seed 1) and checked on the random 80/20 split: K2 40 or
// λ_E 1e-3 lowered the cold-start AUC by 0.02–0.07, λ_E 1e-4 lowered Recall@20, batches of
// 16384 steps (fewer updates of E) lowered the AUC by 0.03, batches of 2048 cost twice the
// time for no gain, and learning rate 0.1 diverged (ErrVBPRDiverged) after 12 epochs.
// Training takes about 0.7 s per epoch on two cores there.
func DefaultVBPROptions() VBPROptions {
	return VBPROptions{Factors: 64, VisualFactors: 20, Epochs: 20, Negatives: 1, BatchSize: defaultVBPRBatch,
		LearnRate: 0.05, Reg: 0.001, RegBias: 0.01, RegVisual: 1e-5, Seed: 1, Workers: runtime.GOMAXPROCS(0)}
}

// Validate reports options that TrainVBPR would refuse.
func (o VBPROptions) Validate() error {
	switch {
	case o.Factors < 1:
		return fmt.Errorf("models: VBPR factors %d < 1", o.Factors)
	case o.VisualFactors < 1:
		return fmt.Errorf("models: VBPR visual factors %d < 1", o.VisualFactors)
	case o.Epochs < 0:
		return fmt.Errorf("models: VBPR epochs %d < 0", o.Epochs)
	case o.Negatives < 1:
		return fmt.Errorf("models: VBPR negatives %d < 1", o.Negatives)
	case o.BatchSize < 0:
		return fmt.Errorf("models: VBPR batch size %d < 0", o.BatchSize)
	}
	if err := checkRates("VBPR", o.LearnRate, o.Reg, o.RegBias, 0); err != nil {
		return err
	}
	if !(o.RegVisual >= 0) || math.IsInf(float64(o.RegVisual), 0) {
		return fmt.Errorf("models: VBPR visual reg %v is not a finite non-negative number", o.RegVisual)
	}
	return nil
}

// ErrVBPRInput is returned (wrapped) by TrainVBPR for input it cannot use: an interaction
// index outside the given counts, a feature table of the wrong shape, or a NaN or infinite
// feature value.
var ErrVBPRInput = errors.New("models: VBPR input")

// ErrVBPRDiverged is returned (wrapped) by TrainVBPR when a parameter stopped being finite
// (a learning rate far too large); no model is returned.
var ErrVBPRDiverged = errors.New("models: VBPR diverged")

// VBPR is visual Bayesian personalised ranking (He and McAuley, AAAI 2016), trained in
// batch:
//
//	s(u,i) = b_i + γ_u·γ_i + θ_u·(E·f_i) + β'·f_i
//
// with γ_u, γ_i in K dimensions, θ_u in K2, E a K2×F matrix, β' the visual bias (F) and
// f_i item i's feature vector after the model's feature transform: f_i = x_i / s, x_i the
// raw feature row and s the feature scale, the mean Euclidean norm of the raw rows of the
// items that occur in training (1 when there are none or all are zero). Dividing by s puts
// the MobileNetV2 poster features (non-negative, norms in the tens) at norm about 1, where
// one learning rate suits E and the latent factors. An item without features has f_i = 0.
//
// Training minimises, by SGD over triples (u, i, j),
//
//	L = Σ −ln σ(s(u,i) − s(u,j)) + λ_Θ/2·(‖γ_u‖² + ‖θ_u‖² + ‖γ_i‖² + ‖γ_j‖²)
//	      + λ_b/2·(b_i² + b_j²) + λ_E/2·(‖E‖² + ‖β'‖²)
//
// (every term per triple). Each epoch visits the distinct training (user, item) pairs in
// a seeded random order, and for each takes Negatives steps, each with a negative j drawn
// uniformly from the items that occur in training, redrawn (up to 32 times, else the step
// is skipped) while it is one of the user's training items. An item absent from training
// is never a negative.
//
// Mini-batches: the per-user and per-item parameters (γ_u, θ_u, γ_i, b_i) take a plain SGD
// step per triple, but E and β' are updated once every BatchSize steps, from the summed
// gradients of the batch's steps, and the projections E·f_i and β'·f_i of all training
// items are recomputed then (two dense products of cost items×K2×F). Within a batch the
// projections are therefore stale by up to BatchSize steps: this is ordinary mini-batch
// SGD for E and β' (every gradient is taken at the batch's starting E and β'), and it makes
// a step cost O(K+K2) instead of O(K2·F). The summed data gradient of E is accumulated
// per item, Σ_t g_t·θ_u ⊗ (f_i − f_j) = Σ_items a_item ⊗ f_item with a_item in K2
// dimensions, so a step adds 2·K2 values; the weight decay of the batch's steps is applied
// exactly, as E ← (1 − lr·λ_E)^B·E. With BatchSize 1 training is plain per-triple SGD.
//
// Initialisation: γ_u, γ_i, θ_u ~ N(0, 0.1²), E ~ N(0, 0.01²), b = 0, β' = 0. After
// training, items absent from the training interactions have γ_i = 0 and b_i = 0, so they
// are scored by their features alone, as ScoreNewItem scores a new item.
//
// A VBPR is immutable once trained or loaded; all its methods are safe for concurrent use.
type VBPR struct {
	opts           VBPROptions
	k, k2, f       int
	nUsers, nItems int
	scale          float32   // the feature scale s
	usersGamma     []float32 // nUsers×K
	usersTheta     []float32 // nUsers×K2
	itemsGamma     []float32 // nItems×K
	itemsBias      []float32 // nItems
	e              []float32 // K2×F
	betaVisual     []float32 // F
	itemsVisual    []float32 // nItems×(K2+1): E·f_i, then β'·f_i
}

// vbprTrainer holds the training state: the model, the shared parameters as one
// (K2+1)×F matrix W = [E; β'], and the per-batch gradient accumulators.
type vbprTrainer struct {
	m       *VBPR
	rng     *rand.Rand
	tape    *nn.Tape
	lr      float32
	reg     float32
	regB    float32
	w       []float32 // (K2+1)×F: E, then β' as its last row
	trainIt []int32   // the items that occur in training, ascending
	feat    []float32 // len(trainIt)×F, the transformed features of trainIt
	slot    []int32   // item → row in trainIt, −1 when absent
	proj    []float32 // len(trainIt)×(K2+1): W·f of the training items
	acc     []float32 // len(trainIt)×(K2+1): the batch's per-item gradient coefficients
	gradW   []float32 // (K2+1)×F
}

// TrainVBPR trains a VBPR of nUsers users and nItems items on the implicit feedback train
// (every interaction is a positive; Value, TS and Type are ignored; duplicate pairs count
// once). features is nil (no item has features) or one row per item, each nil or
// featureDim long, in raw form (the model applies its feature transform; see VBPR);
// featureDim may be 0. progress, when non-nil, is called by the calling goroutine after
// each epoch with the number of epochs done. Epochs 0 returns the seeded initial model.
// train and features are only read. Bad input is an error wrapping ErrVBPRInput.
func TrainVBPR(nUsers, nItems int, train []datasets.Interaction, features [][]float32, featureDim int,
	opts VBPROptions, progress func(epoch int)) (*VBPR, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = defaultVBPRBatch
	}
	if nUsers < 0 || nItems < 0 || nUsers > math.MaxInt32 || nItems > math.MaxInt32 || featureDim < 0 ||
		uint64(max(nUsers, nItems))*uint64(max(opts.Factors, opts.VisualFactors+1)) > math.MaxInt/8 ||
		uint64(nItems)*uint64(featureDim) > math.MaxInt/8 {
		return nil, fmt.Errorf("%w: %d users, %d items, feature dim %d", ErrVBPRInput, nUsers, nItems, featureDim)
	}
	if features != nil && len(features) != nItems {
		return nil, fmt.Errorf("%w: %d feature rows for %d items", ErrVBPRInput, len(features), nItems)
	}
	for i, row := range features {
		if row == nil {
			continue
		}
		if len(row) != featureDim {
			return nil, fmt.Errorf("%w: item %d: feature of length %d, want %d", ErrVBPRInput, i, len(row), featureDim)
		}
		for c, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: item %d: feature %d is %v", ErrVBPRInput, i, c, v)
			}
		}
	}
	off, items, err := vbprPairs(nUsers, nItems, train)
	if err != nil {
		return nil, err
	}

	k, k2, f := opts.Factors, opts.VisualFactors, featureDim
	m := &VBPR{opts: opts, k: k, k2: k2, f: f, nUsers: nUsers, nItems: nItems, scale: 1,
		usersGamma: make([]float32, nUsers*k), usersTheta: make([]float32, nUsers*k2),
		itemsGamma: make([]float32, nItems*k), itemsBias: make([]float32, nItems),
		e: make([]float32, k2*f), betaVisual: make([]float32, f), itemsVisual: make([]float32, nItems*(k2+1))}
	t := &vbprTrainer{m: m, rng: rand.New(rand.NewPCG(opts.Seed, 0x7b9f)), lr: opts.LearnRate,
		reg: opts.Reg, regB: opts.RegBias, slot: make([]int32, nItems)}
	for _, tab := range [][]float32{m.usersGamma, m.itemsGamma, m.usersTheta} {
		for n := range tab {
			tab[n] = float32(t.rng.NormFloat64() * 0.1)
		}
	}
	for n := range m.e {
		m.e[n] = float32(t.rng.NormFloat64() * 0.01)
	}

	// The training items, their feature scale and transformed features.
	for n := range t.slot {
		t.slot[n] = -1
	}
	for _, it := range items {
		t.slot[it] = 0
	}
	var normSum float64
	var normN int
	for it := range nItems {
		if t.slot[it] < 0 {
			continue
		}
		t.slot[it] = int32(len(t.trainIt))
		t.trainIt = append(t.trainIt, int32(it))
		if features != nil && features[it] != nil {
			normSum += math.Sqrt(dot64(features[it], features[it]))
			normN++
		}
	}
	if normN > 0 && normSum > 0 {
		m.scale = float32(normSum / float64(normN))
	}
	nt := len(t.trainIt)
	t.feat = make([]float32, nt*f)
	for r, it := range t.trainIt {
		if features != nil && features[it] != nil {
			m.transform(features[it], t.feat[r*f:(r+1)*f])
		}
	}
	w := k2 + 1
	t.w = make([]float32, w*f)
	t.proj = make([]float32, nt*w)
	t.acc = make([]float32, nt*w)
	t.gradW = make([]float32, w*f)
	t.tape = nn.NewTape(nn.Options{Workers: max(opts.Workers, 1), Seed: 1, Eval: true})
	t.packW()
	t.project()

	// The positive pairs, flattened: pairs[n] is (user, item).
	type pair struct{ u, i int32 }
	pairs := make([]pair, 0, len(items))
	for u := range nUsers {
		for _, it := range items[off[u]:off[u+1]] {
			pairs = append(pairs, pair{int32(u), it})
		}
	}
	steps := 0
	for ep := range opts.Epochs {
		for n := len(pairs) - 1; n > 0; n-- {
			r := t.rng.IntN(n + 1)
			pairs[n], pairs[r] = pairs[r], pairs[n]
		}
		for _, p := range pairs {
			pos := items[off[p.u]:off[p.u+1]]
			for range opts.Negatives {
				j, ok := t.negative(pos)
				if !ok {
					continue
				}
				t.step(p.u, p.i, j)
				if steps++; steps == opts.BatchSize {
					t.flush(steps)
					steps = 0
				}
			}
		}
		if steps > 0 {
			t.flush(steps)
			steps = 0
		}
		if !t.finite() {
			return nil, fmt.Errorf("%w: a parameter is not finite after epoch %d", ErrVBPRDiverged, ep+1)
		}
		if progress != nil {
			progress(ep + 1)
		}
	}

	// Untrained items: no latent part; every item's projection from the final E and β'.
	for it := range nItems {
		if t.slot[it] < 0 {
			clear(m.itemsGamma[it*k : (it+1)*k])
			m.itemsBias[it] = 0
		}
	}
	copy(m.betaVisual, t.w[k2*f:])
	copy(m.e, t.w[:k2*f])
	row := make([]float32, f)
	for it := range nItems {
		dst := m.itemsVisual[it*w : (it+1)*w]
		if features == nil || features[it] == nil {
			clear(dst)
			continue
		}
		m.transform(features[it], row)
		m.project(row, dst)
	}
	return m, nil
}

// vbprPairs returns the distinct training items of each user in CSR form (ascending).
func vbprPairs(nUsers, nItems int, train []datasets.Interaction) (off []int, items []int32, err error) {
	off = make([]int, nUsers+1)
	for n, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return nil, nil, fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrVBPRInput, n, x.User, x.Item, nUsers, nItems)
		}
		off[x.User+1]++
	}
	for u := range nUsers {
		off[u+1] += off[u]
	}
	all := make([]int32, len(train))
	next := slices.Clone(off[:nUsers])
	for _, x := range train {
		all[next[x.User]] = x.Item
		next[x.User]++
	}
	items = all[:0]
	start := 0
	for u := range nUsers {
		row := all[off[u]:off[u+1]]
		slices.Sort(row)
		row = slices.Compact(row)
		items = append(items, row...) // never overtakes the reading position
		off[u] = start
		start += len(row)
	}
	off[nUsers] = start
	return off, items, nil
}

// negative draws a training item uniformly, redrawing while it is in pos (ascending).
func (t *vbprTrainer) negative(pos []int32) (int32, bool) {
	for range 32 {
		j := t.trainIt[t.rng.IntN(len(t.trainIt))]
		if _, found := slices.BinarySearch(pos, j); !found {
			return j, true
		}
	}
	return 0, false
}

// step takes one SGD step on the triple (u, i, j); E and β' only accumulate their
// gradient coefficients in acc.
func (t *vbprTrainer) step(u, i, j int32) {
	m := t.m
	k, k2, w := m.k, m.k2, m.k2+1
	gu := m.usersGamma[int(u)*k : int(u)*k+k]
	th := m.usersTheta[int(u)*k2 : int(u)*k2+k2]
	gi := m.itemsGamma[int(i)*k : int(i)*k+k]
	gj := m.itemsGamma[int(j)*k : int(j)*k+k]
	ri, rj := int(t.slot[i]), int(t.slot[j])
	pi, pj := t.proj[ri*w:ri*w+w], t.proj[rj*w:rj*w+w]
	x := float64(m.itemsBias[i]-m.itemsBias[j]) + float64(dot(gu, gi)-dot(gu, gj)) +
		float64(dot(th, pi[:k2])-dot(th, pj[:k2])) + float64(pi[k2]-pj[k2])
	_, g64 := softplusNeg(x) // σ(−x), the gradient of ln σ(x) w.r.t. x
	g, lr, reg := float32(g64), t.lr, t.reg

	ai, aj := t.acc[ri*w:ri*w+w], t.acc[rj*w:rj*w+w]
	for c, v := range th {
		ai[c] += g * v
		aj[c] -= g * v
		th[c] += lr * (g*(pi[c]-pj[c]) - reg*v)
	}
	ai[k2] += g
	aj[k2] -= g
	for c := range gu {
		u0, i0, j0 := gu[c], gi[c], gj[c]
		gu[c] += lr * (g*(i0-j0) - reg*u0)
		gi[c] += lr * (g*u0 - reg*i0)
		gj[c] += lr * (-g*u0 - reg*j0)
	}
	m.itemsBias[i] += lr * (g - t.regB*m.itemsBias[i])
	m.itemsBias[j] += lr * (-g - t.regB*m.itemsBias[j])
}

// flush applies the batch of the last n steps to E and β' and recomputes the projections.
func (t *vbprTrainer) flush(n int) {
	m := t.m
	f, w := m.f, m.k2+1
	if f > 0 && len(t.trainIt) > 0 {
		// gradW = accᵀ·feat: row c is Σ_items acc[item][c]·f_item.
		t.tape.Reset()
		out := t.tape.Gemm(t.tape.Const(nn.FromData(t.acc, len(t.trainIt), w)),
			t.tape.Const(nn.FromData(t.feat, len(t.trainIt), f)), true, false)
		copy(t.gradW, out.Value.Data)
		decay := float32(math.Pow(1-float64(t.lr)*float64(m.opts.RegVisual), float64(n)))
		for c, v := range t.w {
			t.w[c] = decay*v + t.lr*t.gradW[c]
		}
		t.project()
	}
	clear(t.acc)
}

// packW copies E and β' of the model into W.
func (t *vbprTrainer) packW() {
	m := t.m
	copy(t.w, m.e)
	copy(t.w[m.k2*m.f:], m.betaVisual)
}

// project sets proj = feat·Wᵀ.
func (t *vbprTrainer) project() {
	m := t.m
	if m.f == 0 || len(t.trainIt) == 0 {
		clear(t.proj)
		return
	}
	t.tape.Reset()
	out := t.tape.MatMulT(t.tape.Const(nn.FromData(t.feat, len(t.trainIt), m.f)),
		t.tape.Const(nn.FromData(t.w, m.k2+1, m.f)))
	copy(t.proj, out.Value.Data)
	t.tape.Reset()
}

// finite reports whether every trained parameter is finite.
func (t *vbprTrainer) finite() bool {
	m := t.m
	for _, tab := range [][]float32{m.usersGamma, m.usersTheta, m.itemsGamma, m.itemsBias, t.w} {
		for _, v := range tab {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}

// transform writes the transformed raw feature x (x / scale) into dst.
func (m *VBPR) transform(x, dst []float32) {
	inv := 1 / m.scale
	for c, v := range x {
		dst[c] = v * inv
	}
}

// project writes E·f and β'·f of a transformed feature f into dst (K2+1 long).
func (m *VBPR) project(f, dst []float32) {
	for c := range m.k2 {
		dst[c] = dot(m.e[c*m.f:(c+1)*m.f], f)
	}
	dst[m.k2] = dot(m.betaVisual, f)
}

// Options returns the options the model was trained with (for a model read from a
// snapshot: the recorded ones, with DefaultVBPROptions' Workers).
func (m *VBPR) Options() VBPROptions { return m.opts }

// NumUsers is the number of user rows.
func (m *VBPR) NumUsers() int { return m.nUsers }

// NumItems is the number of item rows.
func (m *VBPR) NumItems() int { return m.nItems }

// FeatureDim is F, the length of a raw feature vector.
func (m *VBPR) FeatureDim() int { return m.f }

// FeatureScale is s, the divisor of the feature transform (see VBPR).
func (m *VBPR) FeatureScale() float32 { return m.scale }

// Score returns s(u,i), or 0 when user or item is out of range.
func (m *VBPR) Score(user, item int32) float32 {
	if user < 0 || int(user) >= m.nUsers || item < 0 || int(item) >= m.nItems {
		return 0
	}
	w := m.k2 + 1
	return m.score(user, m.itemsBias[item], m.itemsGamma[int(item)*m.k:(int(item)+1)*m.k],
		m.itemsVisual[int(item)*w:(int(item)+1)*w])
}

// score combines the user's vectors with an item's bias, γ_i and projection [E·f; β'·f].
func (m *VBPR) score(user int32, bias float32, gamma, vis []float32) float32 {
	u := int(user)
	th := m.usersTheta[u*m.k2 : (u+1)*m.k2]
	s := float64(bias) + float64(dot(m.usersGamma[u*m.k:(u+1)*m.k], gamma)) +
		float64(dot(th, vis[:m.k2])) + float64(vis[m.k2])
	return clamp32(s, scoreLimit)
}

// ScoreAll returns s(u,i) for every item i, reusing dst when its capacity suffices (else
// allocating); a user out of range scores every item 0. The caller owns dst and the result.
// It implements eval.Scorer and is safe for concurrent use with distinct dst.
func (m *VBPR) ScoreAll(user int32, dst []float32) []float32 {
	dst = growF32(dst, m.nItems)
	if user < 0 || int(user) >= m.nUsers {
		clear(dst)
		return dst
	}
	w := m.k2 + 1
	for i := range dst {
		dst[i] = m.score(user, m.itemsBias[i], m.itemsGamma[i*m.k:(i+1)*m.k], m.itemsVisual[i*w:(i+1)*w])
	}
	return dst
}

// ScoreNewItem returns the score of an item that was not in training, from its raw
// feature vector f alone (b_i = 0, γ_i = 0): θ_u·(E·f̃) + β'·f̃ with f̃ = f / FeatureScale,
// the transform training applied. It equals Score for an item of the model that was absent
// from training and has feature f. f nil means no features (score 0); a user out of range
// scores 0. It panics when f is neither nil nor FeatureDim long. Cost O(K2·F).
func (m *VBPR) ScoreNewItem(user int32, f []float32) float32 {
	if f != nil && len(f) != m.f {
		panic(fmt.Sprintf("models: VBPR ScoreNewItem: feature of length %d, want %d", len(f), m.f))
	}
	if user < 0 || int(user) >= m.nUsers || f == nil {
		return 0
	}
	x := make([]float32, m.f)
	m.transform(f, x)
	vis := make([]float32, m.k2+1)
	m.project(x, vis)
	return m.score(user, 0, make([]float32, m.k), vis)
}

// The VBPR snapshot: model "vbpr", version 1.
const (
	vbprModel   = "vbpr"
	vbprVersion = 1
)

// Snapshot returns the model as a Snapshot (model "vbpr", version 1) with tables
// "users_gamma" (users×K), "users_theta" (users×K2), "items_gamma" (items×K), "items_bias"
// (items×1), "E" (K2×F), "beta_visual" (1×F) and "items_visual" (items×(K2+1): each item's
// E·f_i and β'·f_i, derived from E, β' and the features, so that a loaded model scores
// known items without the features), and Meta with the options, "feature_dim" and
// "feature_scale". The tables share the model's storage (no copy): neither the model nor
// the caller may modify their Data.
func (m *VBPR) Snapshot() Snapshot {
	o := m.opts
	fl := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return Snapshot{
		Model:   vbprModel,
		Version: vbprVersion,
		Meta: map[string]string{
			"factors":        strconv.Itoa(o.Factors),
			"visual_factors": strconv.Itoa(o.VisualFactors),
			"epochs":         strconv.Itoa(o.Epochs),
			"negatives":      strconv.Itoa(o.Negatives),
			"batch_size":     strconv.Itoa(o.BatchSize),
			"learn_rate":     fl(o.LearnRate),
			"reg":            fl(o.Reg),
			"reg_bias":       fl(o.RegBias),
			"reg_visual":     fl(o.RegVisual),
			"seed":           strconv.FormatUint(o.Seed, 10),
			"feature_dim":    strconv.Itoa(m.f),
			"feature_scale":  fl(m.scale),
		},
		Tables: []Table{
			{Name: "users_gamma", Rows: m.nUsers, Cols: m.k, Data: m.usersGamma},
			{Name: "users_theta", Rows: m.nUsers, Cols: m.k2, Data: m.usersTheta},
			{Name: "items_gamma", Rows: m.nItems, Cols: m.k, Data: m.itemsGamma},
			{Name: "items_bias", Rows: m.nItems, Cols: 1, Data: m.itemsBias},
			{Name: "E", Rows: m.k2, Cols: m.f, Data: m.e},
			{Name: "beta_visual", Rows: 1, Cols: m.f, Data: m.betaVisual},
			{Name: "items_visual", Rows: m.nItems, Cols: m.k2 + 1, Data: m.itemsVisual},
		},
	}
}

// VBPRFromSnapshot rebuilds a VBPR from a Snapshot written by (*VBPR).Snapshot. It checks
// the model name and version, the options, the tables' shapes, and that every value is
// finite and within ±1e15; failures wrap ErrSnapshotInvalid. The VBPR keeps the tables'
// Data (no copy): the caller must not modify them afterwards.
func VBPRFromSnapshot(s Snapshot) (*VBPR, error) {
	if s.Model != vbprModel || s.Version != vbprVersion {
		return nil, fmt.Errorf("%w: model %q version %d, want %q version %d", ErrSnapshotInvalid, s.Model, s.Version, vbprModel, vbprVersion)
	}
	o := DefaultVBPROptions()
	var f int
	for _, p := range []struct {
		key string
		dst *int
	}{{"factors", &o.Factors}, {"visual_factors", &o.VisualFactors}, {"epochs", &o.Epochs},
		{"negatives", &o.Negatives}, {"batch_size", &o.BatchSize}, {"feature_dim", &f}} {
		v, err := strconv.Atoi(s.Meta[p.key])
		if err != nil {
			return nil, fmt.Errorf("%w: vbpr meta %q: %w", ErrSnapshotInvalid, p.key, err)
		}
		*p.dst = v
	}
	var scale float32
	if err := parseMeta("vbpr", s.Meta, &o.Seed, map[string]*float32{"learn_rate": &o.LearnRate, "reg": &o.Reg,
		"reg_bias": &o.RegBias, "reg_visual": &o.RegVisual, "feature_scale": &scale}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	if f < 0 || f > MaxSnapshotDim || !(scale > 0) || math.IsInf(float64(scale), 0) {
		return nil, fmt.Errorf("%w: vbpr feature dim %d, scale %v", ErrSnapshotInvalid, f, scale)
	}
	m := &VBPR{opts: o, k: o.Factors, k2: o.VisualFactors, f: f, scale: scale}
	nUsers, nItems := -1, -1
	for _, t := range []struct {
		name string
		rows *int // nil: fixed
		nrow int
		cols int
		data *[]float32
	}{
		{"users_gamma", &nUsers, 0, m.k, &m.usersGamma},
		{"users_theta", &nUsers, 0, m.k2, &m.usersTheta},
		{"items_gamma", &nItems, 0, m.k, &m.itemsGamma},
		{"items_bias", &nItems, 0, 1, &m.itemsBias},
		{"E", nil, m.k2, f, &m.e},
		{"beta_visual", nil, 1, f, &m.betaVisual},
		{"items_visual", &nItems, 0, m.k2 + 1, &m.itemsVisual},
	} {
		tab, ok := s.Table(t.name)
		if !ok {
			return nil, fmt.Errorf("%w: vbpr: no table %q", ErrSnapshotInvalid, t.name)
		}
		want := t.nrow
		if t.rows != nil {
			if *t.rows < 0 {
				*t.rows = tab.Rows
			}
			want = *t.rows
		}
		if tab.Cols != t.cols || tab.Rows != want || tab.Rows > math.MaxInt32 ||
			uint64(tab.Rows)*uint64(tab.Cols) != uint64(len(tab.Data)) {
			return nil, fmt.Errorf("%w: vbpr table %q is %d×%d with %d values, want %d×%d",
				ErrSnapshotInvalid, t.name, tab.Rows, tab.Cols, len(tab.Data), want, t.cols)
		}
		for n, v := range tab.Data {
			if !(math.Abs(float64(v)) <= paramLimit) {
				return nil, fmt.Errorf("%w: vbpr table %q value %d is %v", ErrSnapshotInvalid, t.name, n, v)
			}
		}
		*t.data = tab.Data
		if *t.data == nil {
			*t.data = []float32{}
		}
	}
	m.nUsers, m.nItems = nUsers, nItems
	return m, nil
}
