package models

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/nn"
)

// NeuMF is Neural Matrix Factorization (He et al., "Neural Collaborative Filtering",
// WWW 2017) for implicit feedback: the logit of (u, i) is
//
//	h·[p_u ⊙ q_i ; MLP([p'_u ; q'_i])] + b
//
// where p, q are the GMF embeddings (Factors wide), p', q' the MLP embeddings (Layers[0]/2
// wide each), and the MLP is Linear+ReLU layers Layers[0]→Layers[1]→…→Layers[len−1]. It is
// trained with binary cross-entropy on every distinct training pair (label 1) and
// Negatives items per pair drawn uniformly from the training items that the user has not
// interacted with (label 0), in shuffled mini-batches, with Adam. It is trained from
// scratch (no GMF/MLP pre-training).
//
// A NeuMF is safe for concurrent ScoreAll calls; it is not modified after training.
type NeuMF struct {
	opts           NeuMFOptions
	nUsers, nItems int
	userGMF        *nn.Param // [nUsers, Factors]
	itemGMF        *nn.Param // [nItems, Factors]
	userMLP        *nn.Param // [nUsers, Layers[0]/2]
	itemMLP        *nn.Param // [nItems, Layers[0]/2]
	mlp            []*nn.Linear
	out            *nn.Linear // [Factors+Layers[last], 1]

	once     sync.Once
	itemPart *nn.Tensor // q'_i·W0[d:], [nItems, Layers[1]], for ScoreAll
	tapes    sync.Pool
}

// NeuMFOptions configure TrainNeuMF. DefaultNeuMFOptions gives the defaults.
type NeuMFOptions struct {
	Factors   int   // width of the GMF embeddings
	Layers    []int // MLP widths: Layers[0] is the concatenated embedding (even), then hidden layers
	Negatives int   // sampled negatives per positive pair
	Epochs    int
	BatchSize int // examples (positives and negatives) per Adam step
	LearnRate float32
	// WeightDecay is Adam's decoupled weight decay (applied lazily to embedding rows).
	WeightDecay float32
	Seed        uint64
}

// DefaultNeuMFOptions returns Factors 16, Layers 64→32→16, 4 negatives, 4 epochs, batch
// 512, learning rate 2e-3, no weight decay, seed 1.
func DefaultNeuMFOptions() NeuMFOptions {
	return NeuMFOptions{Factors: 16, Layers: []int{64, 32, 16}, Negatives: 4, Epochs: 4,
		BatchSize: 512, LearnRate: 2e-3, Seed: 1}
}

// ErrNeuMFInput is returned (wrapped) by TrainNeuMF for bad options or interactions.
var ErrNeuMFInput = errors.New("models: NeuMF input")

// ErrNeuMFDiverged is returned (wrapped) when a parameter becomes NaN or infinite.
var ErrNeuMFDiverged = errors.New("models: NeuMF diverged")

// Validate checks the options.
func (o NeuMFOptions) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrNeuMFInput, fmt.Sprintf(format, args...))
	}
	switch {
	case o.Factors < 1:
		return bad("Factors %d < 1", o.Factors)
	case len(o.Layers) < 2:
		return bad("Layers %v: need the embedding width and at least one layer", o.Layers)
	case o.Layers[0] < 2 || o.Layers[0]%2 != 0:
		return bad("Layers[0] %d is not a positive even width", o.Layers[0])
	case o.Negatives < 0:
		return bad("Negatives %d < 0", o.Negatives)
	case o.Epochs < 0:
		return bad("Epochs %d < 0", o.Epochs)
	case o.BatchSize < 1:
		return bad("BatchSize %d < 1", o.BatchSize)
	case !(o.LearnRate > 0) || math.IsInf(float64(o.LearnRate), 0):
		return bad("LearnRate %v", o.LearnRate)
	case !(o.WeightDecay >= 0) || math.IsInf(float64(o.WeightDecay), 0):
		return bad("WeightDecay %v", o.WeightDecay)
	}
	for _, w := range o.Layers {
		if w < 1 {
			return bad("Layers %v: width < 1", o.Layers)
		}
	}
	return nil
}

const (
	neumfModel   = "neumf"
	neumfVersion = 1
)

// newNeuMF allocates the parameters, initialised from o.Seed: embeddings N(0, 0.01²),
// dense layers Xavier-uniform with zero bias.
func newNeuMF(nUsers, nItems int, o NeuMFOptions) *NeuMF {
	rng := nn.NewRand(o.Seed)
	d := o.Layers[0] / 2
	m := &NeuMF{opts: o, nUsers: nUsers, nItems: nItems}
	m.userGMF = nn.NewEmbedding("user_gmf", nUsers, o.Factors, 0.01, rng).Table
	m.itemGMF = nn.NewEmbedding("item_gmf", nItems, o.Factors, 0.01, rng).Table
	m.userMLP = nn.NewEmbedding("user_mlp", nUsers, d, 0.01, rng).Table
	m.itemMLP = nn.NewEmbedding("item_mlp", nItems, d, 0.01, rng).Table
	for l := 1; l < len(o.Layers); l++ {
		m.mlp = append(m.mlp, nn.NewLinear("mlp"+strconv.Itoa(l-1), o.Layers[l-1], o.Layers[l], true, rng))
	}
	m.out = nn.NewLinear("out", o.Factors+o.Layers[len(o.Layers)-1], 1, true, rng)
	return m
}

// params lists every parameter in a fixed order (the snapshot's table order).
func (m *NeuMF) params() []*nn.Param {
	ps := []*nn.Param{m.userGMF, m.itemGMF, m.userMLP, m.itemMLP}
	for _, l := range m.mlp {
		ps = append(ps, l.Params()...)
	}
	return append(ps, m.out.Params()...)
}

// TrainNeuMF trains NeuMF on train (every interaction an implicit positive; duplicates
// count once) over nUsers users and nItems items. progress, when not nil, is called after
// each epoch. Training is deterministic for a seed.
func TrainNeuMF(nUsers, nItems int, train []datasets.Interaction, opts NeuMFOptions, progress func(epoch int)) (*NeuMF, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nUsers < 0 || nItems < 0 || nUsers > math.MaxInt32 || nItems > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d users, %d items", ErrNeuMFInput, nUsers, nItems)
	}
	for n, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return nil, fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrNeuMFInput, n, x.User, x.Item, nUsers, nItems)
		}
	}
	opts.Layers = slices.Clone(opts.Layers)
	m := newNeuMF(nUsers, nItems, opts)
	off, items, err := vbprPairs(nUsers, nItems, train)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNeuMFInput, err)
	}
	seen := make([]bool, nItems)
	for _, it := range items {
		seen[it] = true
	}
	var trainItems []int32
	for it, ok := range seen {
		if ok {
			trainItems = append(trainItems, int32(it))
		}
	}
	type pair struct{ u, i int32 }
	pairs := make([]pair, 0, len(items))
	for u := range nUsers {
		for _, it := range items[off[u]:off[u+1]] {
			pairs = append(pairs, pair{int32(u), it})
		}
	}

	rng := nn.NewRand(opts.Seed ^ 0x6e65756d66) // "neumf"
	tape := nn.NewTape(nn.Options{Seed: opts.Seed})
	adam := nn.NewAdam(m.params(), nn.AdamOptions{LR: opts.LearnRate, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: opts.WeightDecay})
	perEpoch := len(pairs) * (1 + opts.Negatives)
	us, is := make([]int, 0, perEpoch), make([]int, 0, perEpoch)
	ys := make([]float32, 0, perEpoch)
	order := make([]int, perEpoch)
	bu, bi := make([]int, 0, opts.BatchSize), make([]int, 0, opts.BatchSize)
	by := make([]float32, 0, opts.BatchSize)
	for ep := range opts.Epochs {
		// Fresh negatives each epoch, then a shuffle of all examples.
		us, is, ys = us[:0], is[:0], ys[:0]
		for _, p := range pairs {
			us, is, ys = append(us, int(p.u)), append(is, int(p.i)), append(ys, 1)
			pos := items[off[p.u]:off[p.u+1]]
			for range opts.Negatives {
				if j, ok := neumfNegative(rng.IntN, trainItems, pos); ok {
					us, is, ys = append(us, int(p.u)), append(is, int(j)), append(ys, 0)
				}
			}
		}
		order = order[:len(us)]
		for n := range order {
			order[n] = n
		}
		for n := len(order) - 1; n > 0; n-- {
			r := rng.IntN(n + 1)
			order[n], order[r] = order[r], order[n]
		}
		for lo := 0; lo < len(order); lo += opts.BatchSize {
			bu, bi, by = bu[:0], bi[:0], by[:0]
			for _, n := range order[lo:min(lo+opts.BatchSize, len(order))] {
				bu, bi, by = append(bu, us[n]), append(bi, is[n]), append(by, ys[n])
			}
			tape.Reset()
			logit := m.forward(tape, bu, bi)
			loss := tape.BCEWithLogits(logit, nn.FromData(by, len(by), 1))
			tape.Backward(loss)
			adam.Step()
		}
		for _, p := range m.params() {
			if !p.Value.AllFinite() {
				return nil, fmt.Errorf("%w: %s is not finite after epoch %d", ErrNeuMFDiverged, p.Name, ep+1)
			}
		}
		if progress != nil {
			progress(ep + 1)
		}
	}
	return m, nil
}

// neumfNegative draws a training item uniformly, redrawing while it is in pos (ascending).
func neumfNegative(intN func(int) int, trainItems, pos []int32) (int32, bool) {
	if len(trainItems) == 0 {
		return 0, false
	}
	for range 32 {
		j := trainItems[intN(len(trainItems))]
		if _, found := slices.BinarySearch(pos, j); !found {
			return j, true
		}
	}
	return 0, false
}

// forward records the logits [len(users), 1] of the pairs (users[n], items[n]).
func (m *NeuMF) forward(t *nn.Tape, users, items []int) *nn.Node {
	gmf := t.Mul(t.Gather(t.Param(m.userGMF), users), t.Gather(t.Param(m.itemGMF), items))
	x := t.Concat(1, t.Gather(t.Param(m.userMLP), users), t.Gather(t.Param(m.itemMLP), items))
	for _, l := range m.mlp {
		x = t.ReLU(l.Forward(t, x))
	}
	return m.out.Forward(t, t.Concat(1, gmf, x))
}

// NUsers returns the number of users.
func (m *NeuMF) NUsers() int { return m.nUsers }

// NItems returns the number of items.
func (m *NeuMF) NItems() int { return m.nItems }

// Options returns the options the model was trained with.
func (m *NeuMF) Options() NeuMFOptions {
	o := m.opts
	o.Layers = slices.Clone(o.Layers)
	return o
}

// prepare computes the item half of the first MLP layer once: q'_i·W0[d:].
func (m *NeuMF) prepare() {
	t := nn.NewTape(nn.Options{Seed: 1, Eval: true})
	d := m.opts.Layers[0] / 2
	w0 := m.mlp[0].W.Value
	wItem := nn.FromData(w0.Data[d*w0.Cols():], d, w0.Cols())
	m.itemPart = t.MatMul(t.Const(m.itemMLP.Value), t.Const(wItem)).Value.Clone()
}

// ScoreAll returns the logit of every item for user (eval.Scorer); a user outside the
// model gets all zeros. The first layer's item half is computed once for all users; each
// call records one forward pass over all items on a pooled evaluation-mode Tape. Safe for
// concurrent use.
func (m *NeuMF) ScoreAll(user int32, dst []float32) []float32 {
	if cap(dst) < m.nItems {
		dst = make([]float32, m.nItems)
	}
	dst = dst[:m.nItems]
	if user < 0 || int(user) >= m.nUsers || m.nItems == 0 {
		clear(dst)
		return dst
	}
	m.once.Do(m.prepare)
	t, _ := m.tapes.Get().(*nn.Tape)
	if t == nil {
		t = nn.NewTape(nn.Options{Seed: 1, Eval: true, Workers: 1})
	}
	defer m.tapes.Put(t)
	t.Reset()
	o := m.opts
	u := int(user)
	d := o.Layers[0] / 2
	k := o.Factors
	// GMF: q_i ⊙ p_u for every item.
	pu := nn.FromData(m.userGMF.Value.Data[u*k:(u+1)*k], 1, k)
	gmf := t.Mul(t.Const(m.itemGMF.Value), t.Const(pu))
	// MLP first layer: q'_i·W0[d:] + (p'_u·W0[:d] + b0).
	w0 := m.mlp[0].W.Value
	pm := nn.FromData(m.userMLP.Value.Data[u*d:(u+1)*d], 1, d)
	wUser := nn.FromData(w0.Data[:d*w0.Cols()], d, w0.Cols())
	userPart := t.Add(t.MatMul(t.Const(pm), t.Const(wUser)), t.Const(m.mlp[0].B.Value))
	x := t.ReLU(t.Add(t.Const(m.itemPart), userPart))
	for _, l := range m.mlp[1:] {
		x = t.ReLU(t.Add(t.MatMul(x, t.Const(l.W.Value)), t.Const(l.B.Value)))
	}
	z := t.Concat(1, gmf, x)
	logits := t.Add(t.MatMul(z, t.Const(m.out.W.Value)), t.Const(m.out.B.Value))
	copy(dst, logits.Value.Data)
	return dst
}

// Snapshot returns the model as a Snapshot: one table per parameter tensor (user_gmf.E,
// item_gmf.E, user_mlp.E, item_mlp.E, mlpN.W, mlpN.b, out.W, out.b), each with Rows the
// tensor's first dimension (1 for a bias) and the options in Meta. The tables alias the
// model's parameters.
func (m *NeuMF) Snapshot() Snapshot {
	o := m.opts
	layers := make([]string, len(o.Layers))
	for n, w := range o.Layers {
		layers[n] = strconv.Itoa(w)
	}
	s := Snapshot{
		Model:   neumfModel,
		Version: neumfVersion,
		Meta: map[string]string{
			"factors":      strconv.Itoa(o.Factors),
			"layers":       strings.Join(layers, ","),
			"negatives":    strconv.Itoa(o.Negatives),
			"epochs":       strconv.Itoa(o.Epochs),
			"batch_size":   strconv.Itoa(o.BatchSize),
			"learn_rate":   strconv.FormatFloat(float64(o.LearnRate), 'g', -1, 32),
			"weight_decay": strconv.FormatFloat(float64(o.WeightDecay), 'g', -1, 32),
			"seed":         strconv.FormatUint(o.Seed, 10),
		},
	}
	for _, p := range m.params() {
		rows, cols := neumfTableShape(p.Value.Shape)
		s.Tables = append(s.Tables, Table{Name: p.Name, Rows: rows, Cols: cols, Data: p.Value.Data})
	}
	return s
}

func neumfTableShape(shape []int) (rows, cols int) {
	if len(shape) == 1 {
		return 1, shape[0]
	}
	return shape[0], shape[1]
}

// NeuMFFromSnapshot rebuilds a NeuMF from a Snapshot written by (*NeuMF).Snapshot. It
// checks the model name and version, the options, every table's presence and shape, and
// that every value is finite; failures wrap ErrSnapshotInvalid. The model keeps the
// tables' Data (no copy): the caller must not modify them afterwards.
func NeuMFFromSnapshot(s Snapshot) (*NeuMF, error) {
	if s.Model != neumfModel || s.Version != neumfVersion {
		return nil, fmt.Errorf("%w: model %q version %d, want %q version %d", ErrSnapshotInvalid, s.Model, s.Version, neumfModel, neumfVersion)
	}
	var o NeuMFOptions
	for _, f := range []struct {
		key string
		dst *int
	}{{"factors", &o.Factors}, {"negatives", &o.Negatives}, {"epochs", &o.Epochs}, {"batch_size", &o.BatchSize}} {
		v, err := strconv.Atoi(s.Meta[f.key])
		if err != nil {
			return nil, fmt.Errorf("%w: neumf meta %q: %w", ErrSnapshotInvalid, f.key, err)
		}
		*f.dst = v
	}
	for _, f := range strings.Split(s.Meta["layers"], ",") {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%w: neumf meta \"layers\": %w", ErrSnapshotInvalid, err)
		}
		o.Layers = append(o.Layers, v)
	}
	if err := parseMeta("neumf", s.Meta, &o.Seed, map[string]*float32{"learn_rate": &o.LearnRate, "weight_decay": &o.WeightDecay}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	ug, ok := s.Table("user_gmf.E")
	if !ok {
		return nil, fmt.Errorf("%w: neumf: no table %q", ErrSnapshotInvalid, "user_gmf.E")
	}
	ig, ok := s.Table("item_gmf.E")
	if !ok {
		return nil, fmt.Errorf("%w: neumf: no table %q", ErrSnapshotInvalid, "item_gmf.E")
	}
	// Shapes come from the options and the user/item counts; newNeuMF only fixes them (its
	// random initial values are replaced below).
	if ug.Rows < 0 || ig.Rows < 0 || ug.Rows > math.MaxInt32 || ig.Rows > math.MaxInt32 {
		return nil, fmt.Errorf("%w: neumf: %d users, %d items", ErrSnapshotInvalid, ug.Rows, ig.Rows)
	}
	m := newNeuMF(ug.Rows, ig.Rows, o)
	ps := m.params()
	if len(s.Tables) != len(ps) {
		return nil, fmt.Errorf("%w: neumf: %d tables, want %d", ErrSnapshotInvalid, len(s.Tables), len(ps))
	}
	for _, p := range ps {
		tab, ok := s.Table(p.Name)
		if !ok {
			return nil, fmt.Errorf("%w: neumf: no table %q", ErrSnapshotInvalid, p.Name)
		}
		rows, cols := neumfTableShape(p.Value.Shape)
		if tab.Rows != rows || tab.Cols != cols || len(tab.Data) != rows*cols {
			return nil, fmt.Errorf("%w: neumf table %q is %d×%d with %d values, want %d×%d",
				ErrSnapshotInvalid, p.Name, tab.Rows, tab.Cols, len(tab.Data), rows, cols)
		}
		for n, v := range tab.Data {
			if !(math.Abs(float64(v)) <= paramLimit) {
				return nil, fmt.Errorf("%w: neumf table %q value %d is %v", ErrSnapshotInvalid, p.Name, n, v)
			}
		}
		data := tab.Data
		if data == nil {
			data = []float32{}
		}
		p.Value = nn.FromData(data, p.Value.Shape...)
		p.Grad = nil
	}
	return m, nil
}
