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

// BiVAEOptions configure TrainBiVAE. DefaultBiVAEOptions gives the defaults.
type BiVAEOptions struct {
	Hidden int // width of each encoder's tanh layer
	Latent int // dimension K of z_u and z_i
	// Epochs is the number of alternations; each is one pass over the users (items'
	// latents fixed at their means) then one pass over the items (users' fixed).
	Epochs int
	// BatchSize is the number of users (or items) per Adam step.
	BatchSize int
	LR        float32 // Adam learning rate of both encoders
	// BetaKL weighs the KL terms (1 in the paper).
	BetaKL float32
	Seed   uint64
	// Workers is the number of goroutines of the tensor ops and the optimizers; 0 means
	// GOMAXPROCS.
	Workers int
}

// DefaultBiVAEOptions returns small settings: encoders [→128→K] with tanh, K = 32, 30
// epochs, batches of 128, Adam LR 1e-3, KL weight 1, seed 1.
func DefaultBiVAEOptions() BiVAEOptions {
	return BiVAEOptions{Hidden: 128, Latent: 32, Epochs: 30, BatchSize: 128, LR: 1e-3,
		BetaKL: 1, Seed: 1, Workers: runtime.GOMAXPROCS(0)}
}

// Validate reports options that TrainBiVAE would refuse.
func (o BiVAEOptions) Validate() error {
	if err := checkVAE("BiVAE", o.Hidden, o.Latent, o.Epochs, o.BatchSize, o.LR); err != nil {
		return err
	}
	switch {
	case !(o.BetaKL >= 0) || !finite64(float64(o.BetaKL)):
		return fmt.Errorf("models: BiVAE KL weight %v is not a finite non-negative number", o.BetaKL)
	}
	return nil
}

// ErrBiVAEInput is returned (wrapped) by TrainBiVAE for an interaction outside the given
// counts or counts it cannot hold.
var ErrBiVAEInput = errors.New("models: BiVAE input")

// BiVAE is the bilateral variational autoencoder for collaborative filtering (Truong,
// Salah and Lauw 2021, "Bilateral Variational Autoencoder for Collaborative Filtering"),
// with a Bernoulli likelihood and standard Gaussian priors (no constrained adaptive
// priors).
//
// The user encoder reads user u's binary row x_u of the user–item matrix, h =
// tanh(x_u·W + b), and gives μ_u and log σ²_u; the item encoder does the same with item
// i's column. An observation r_ui ∈ {0, 1} is Bernoulli with logit z_u·z_i. Training
// alternates, each epoch, a pass over the users, which minimises with Adam, per batch,
//
//	Σ_i BCE(r_ui, σ(z_u·μ_i)) + BetaKL·KL(N(μ_u, σ²_u) ‖ N(0, I))
//
// averaged over the batch's users, with z_u = μ_u + ε·σ_u and the items' μ_i fixed at
// the item encoder's means, and the symmetric pass over the items with the users' μ_u
// fixed. The model keeps only the final means: Score(u, i) = μ_u·μ_i.
//
// A BiVAE is immutable once trained or loaded; its methods are safe for concurrent use.
type BiVAE struct {
	opts           BiVAEOptions
	nUsers, nItems int
	userMu, itemMu []float32 // nUsers×K and nItems×K, row-major
}

// biSide is one side's encoder and its inputs as CSR rows.
type biSide struct {
	enc, mu, logvar *nn.Linear
	off             []int
	idx             []int32
	n, width        int // rows, and the length of a row (the other side's count)
}

func newBiSide(name string, n, width int, o BiVAEOptions, rng *rand.Rand) *biSide {
	return &biSide{
		enc:    nn.NewLinear(name+".enc", width, o.Hidden, true, rng),
		mu:     nn.NewLinear(name+".mu", o.Hidden, o.Latent, true, rng),
		logvar: nn.NewLinear(name+".logvar", o.Hidden, o.Latent, true, rng),
		n:      n, width: width,
	}
}

func (s *biSide) params() []*nn.Param {
	var ps []*nn.Param
	for _, l := range []*nn.Linear{s.enc, s.mu, s.logvar} {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// fill writes the batch's binary rows into buf (len(batch)·width, zero on entry).
func (s *biSide) fill(buf []float32, batch []int, v float32) {
	for r, u := range batch {
		for _, i := range s.idx[s.off[u]:s.off[u+1]] {
			buf[r*s.width+int(i)] = v
		}
	}
}

// means returns μ of every row (n×K) from the current encoder.
func (s *biSide) means(tape *nn.Tape, bs, k int, buf []float32) []float32 {
	out := make([]float32, s.n*k)
	batch := make([]int, 0, bs)
	for lo := 0; lo < s.n; lo += bs {
		batch = batch[:0]
		for u := lo; u < min(lo+bs, s.n); u++ {
			batch = append(batch, u)
		}
		b := len(batch)
		x := buf[:b*s.width]
		s.fill(x, batch, 1)
		tape.Reset()
		h := tape.Tanh(s.enc.Forward(tape, tape.Const(nn.FromData(x, b, s.width))))
		copy(out[lo*k:], s.mu.Forward(tape, h).Value.Data)
		tape.Reset()
		s.fill(x, batch, 0)
	}
	return out
}

// step records one batch's loss against the other side's fixed means and backpropagates.
func (s *biSide) step(tape *nn.Tape, batch []int, other []float32, k int, beta float32, noise *rand.Rand, buf []float32) {
	tape.Reset()
	b := len(batch)
	x := buf[:b*s.width]
	s.fill(x, batch, 1)
	xt := nn.FromData(x, b, s.width)
	eps := nn.New(b, k)
	for j := range eps.Data {
		eps.Data[j] = float32(noise.NormFloat64())
	}
	h := tape.Tanh(s.enc.Forward(tape, tape.Const(xt)))
	mu := s.mu.Forward(tape, h)
	lv := s.logvar.Forward(tape, h)
	z := tape.Add(mu, tape.Mul(tape.Const(eps), tape.Exp(tape.Scale(lv, 0.5))))
	logits := tape.MatMulT(z, tape.Const(nn.FromData(other, s.width, k)))
	// Σ BCE(r, σ(s)) = Σ softplus(s) − r·s, summed per row and averaged over rows (as
	// separate ops, which run on all workers).
	nll := tape.Scale(tape.Sub(tape.Sum(tape.Softplus(logits)), tape.Sum(tape.Mul(logits, tape.Const(xt)))), 1/float32(b))
	kl := tape.Sum(tape.Sub(tape.Add(tape.Exp(lv), tape.Square(mu)), tape.AddScalar(lv, 1)))
	tape.Backward(tape.Add(nll, tape.Scale(kl, 0.5*beta/float32(b))))
	s.fill(x, batch, 0)
}

// csr returns each row's distinct columns, ascending.
func biCSR(n int, train []datasets.Interaction, key, val func(datasets.Interaction) int32) ([]int, []int32) {
	count := make([]int, n+1)
	for _, x := range train {
		count[key(x)+1]++
	}
	for u := range n {
		count[u+1] += count[u]
	}
	all := make([]int32, len(train))
	next := slices.Clone(count[:n])
	for _, x := range train {
		all[next[key(x)]] = val(x)
		next[key(x)]++
	}
	off := make([]int, n+1)
	idx := make([]int32, 0, len(train))
	for u := range n {
		row := all[count[u]:count[u+1]]
		slices.Sort(row)
		idx = append(idx, slices.Compact(row)...)
		off[u+1] = len(idx)
	}
	return off, idx
}

// TrainBiVAE trains a BiVAE of nUsers users and nItems items on train: every (user, item)
// pair present is a 1, whatever its Value. progress, when non-nil, is called after each
// epoch with the number of epochs done. train is only read. The same options (seed
// included) give a bit-identical model. Batches are dense: BatchSize·max(nUsers, nItems)
// float32s.
func TrainBiVAE(nUsers, nItems int, train []datasets.Interaction, opts BiVAEOptions, progress func(epoch int)) (*BiVAE, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nUsers < 1 || nItems < 1 || nUsers > math.MaxInt32 || nItems > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d users, %d items (both must be ≥ 1)", ErrBiVAEInput, nUsers, nItems)
	}
	for n, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return nil, fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrBiVAEInput, n, x.User, x.Item, nUsers, nItems)
		}
	}
	k := opts.Latent
	rng := nn.NewRand(opts.Seed)
	us := newBiSide("user", nUsers, nItems, opts, rng)
	is := newBiSide("item", nItems, nUsers, opts, rng)
	us.off, us.idx = biCSR(nUsers, train, func(x datasets.Interaction) int32 { return x.User }, func(x datasets.Interaction) int32 { return x.Item })
	is.off, is.idx = biCSR(nItems, train, func(x datasets.Interaction) int32 { return x.Item }, func(x datasets.Interaction) int32 { return x.User })
	ao := nn.DefaultAdamOptions()
	ao.LR, ao.Workers = opts.LR, opts.Workers
	uAdam, iAdam := nn.NewAdam(us.params(), ao), nn.NewAdam(is.params(), ao)
	tape := nn.NewTape(nn.Options{Workers: opts.Workers, Seed: opts.Seed ^ 0xb1})
	noise := rand.New(rand.NewPCG(opts.Seed, 0xe95))
	shuffle := rand.New(rand.NewPCG(opts.Seed, 0x5f1))
	bs := opts.BatchSize
	buf := make([]float32, bs*max(nUsers, nItems))
	order := func(n int) []int {
		o := make([]int, n)
		for j := range o {
			o[j] = j
		}
		return o
	}
	uOrder, iOrder := order(nUsers), order(nItems)
	pass := func(s, o *biSide, ord []int, adam *nn.Adam) {
		other := o.means(tape, bs, k, buf)
		shuffle.Shuffle(len(ord), func(a, b int) { ord[a], ord[b] = ord[b], ord[a] })
		for lo := 0; lo < len(ord); lo += bs {
			s.step(tape, ord[lo:min(lo+bs, len(ord))], other, k, opts.BetaKL, noise, buf)
			adam.Step()
		}
	}
	for ep := 0; ep < opts.Epochs; ep++ {
		pass(us, is, uOrder, uAdam)
		pass(is, us, iOrder, iAdam)
		if progress != nil {
			progress(ep + 1)
		}
	}
	m := &BiVAE{opts: opts, nUsers: nUsers, nItems: nItems}
	m.userMu = us.means(tape, bs, k, buf)
	m.itemMu = is.means(tape, bs, k, buf)
	return m, nil
}

// NumUsers returns the number of users.
func (m *BiVAE) NumUsers() int { return m.nUsers }

// NumItems returns the number of items scored.
func (m *BiVAE) NumItems() int { return m.nItems }

// UserMean returns μ_u (shared: do not modify), nil for an unknown user.
func (m *BiVAE) UserMean(user int32) []float32 {
	if user < 0 || int(user) >= m.nUsers {
		return nil
	}
	k := m.opts.Latent
	return m.userMu[int(user)*k : (int(user)+1)*k]
}

// ItemMean returns μ_i (shared: do not modify), nil for an unknown item.
func (m *BiVAE) ItemMean(item int32) []float32 {
	if item < 0 || int(item) >= m.nItems {
		return nil
	}
	k := m.opts.Latent
	return m.itemMu[int(item)*k : (int(item)+1)*k]
}

// Score returns μ_u·μ_i, 0 for an unknown user or item.
func (m *BiVAE) Score(user, item int32) float32 {
	u, i := m.UserMean(user), m.ItemMean(item)
	if u == nil || i == nil {
		return 0
	}
	var s float32
	for j, v := range u {
		s += v * i[j]
	}
	return s
}

// ScoreAll returns μ_u·μ_i for every item, reusing dst when its capacity suffices. An
// unknown user gets all zeros.
func (m *BiVAE) ScoreAll(user int32, dst []float32) []float32 {
	dst = growF32(dst, m.nItems)
	u := m.UserMean(user)
	if u == nil {
		clear(dst)
		return dst
	}
	k := m.opts.Latent
	for i := range dst {
		row := m.itemMu[i*k : (i+1)*k]
		var s float32
		for j, v := range u {
			s += v * row[j]
		}
		dst[i] = s
	}
	return dst
}

const (
	biVAEModel   = "bivae"
	biVAEVersion = 1
)

// Snapshot returns the model as a Snapshot: tables "user_mu" (nUsers×K) and "item_mu"
// (nItems×K) and the hyper-parameters in Meta. The tables alias the model.
func (m *BiVAE) Snapshot() Snapshot {
	o := m.opts
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	return Snapshot{
		Model:   biVAEModel,
		Version: biVAEVersion,
		Meta: map[string]string{
			"hidden":     strconv.Itoa(o.Hidden),
			"latent":     strconv.Itoa(o.Latent),
			"epochs":     strconv.Itoa(o.Epochs),
			"batch_size": strconv.Itoa(o.BatchSize),
			"lr":         f(o.LR),
			"beta_kl":    f(o.BetaKL),
			"seed":       strconv.FormatUint(o.Seed, 10),
		},
		Tables: []Table{
			{Name: "user_mu", Rows: m.nUsers, Cols: o.Latent, Data: m.userMu},
			{Name: "item_mu", Rows: m.nItems, Cols: o.Latent, Data: m.itemMu},
		},
	}
}

// BiVAEFromSnapshot rebuilds a BiVAE from a Snapshot written by (*BiVAE).Snapshot. It
// checks the model name and version, the hyper-parameters, the tables' shapes and that
// every value is finite; failures wrap ErrSnapshotInvalid. The model keeps the tables'
// Data (no copy).
func BiVAEFromSnapshot(s Snapshot) (*BiVAE, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: bivae: %s", ErrSnapshotInvalid, fmt.Sprintf(format, args...))
	}
	if s.Model != biVAEModel || s.Version != biVAEVersion {
		return nil, bad("model %q version %d, want %q version %d", s.Model, s.Version, biVAEModel, biVAEVersion)
	}
	o := DefaultBiVAEOptions()
	for _, f := range []struct {
		key string
		dst *int
	}{{"hidden", &o.Hidden}, {"latent", &o.Latent}, {"epochs", &o.Epochs}, {"batch_size", &o.BatchSize}} {
		v, err := strconv.Atoi(s.Meta[f.key])
		if err != nil {
			return nil, bad("meta %q: %v", f.key, err)
		}
		*f.dst = v
	}
	if err := parseMeta(biVAEModel, s.Meta, &o.Seed, map[string]*float32{"lr": &o.LR, "beta_kl": &o.BetaKL}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	m := &BiVAE{opts: o}
	for _, t := range []struct {
		name string
		n    *int
		data *[]float32
	}{{"user_mu", &m.nUsers, &m.userMu}, {"item_mu", &m.nItems, &m.itemMu}} {
		tab, ok := s.Table(t.name)
		if !ok || tab.Rows < 1 || tab.Cols != o.Latent || len(tab.Data) != tab.Rows*tab.Cols {
			return nil, bad("missing or malformed table %q", t.name)
		}
		for j, v := range tab.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, bad("table %q value %d is %v", t.name, j, v)
			}
		}
		*t.n, *t.data = tab.Rows, tab.Data
	}
	return m, nil
}
