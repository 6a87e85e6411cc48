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

// MultVAEOptions configure TrainMultVAE. DefaultMultVAEOptions gives the defaults.
type MultVAEOptions struct {
	Hidden int // width of the encoder's and the decoder's tanh layer (paper: 600)
	Latent int // dimension of z (paper: 200)
	Epochs int // passes over the users with at least one training item
	// BatchSize is the number of users per Adam step.
	BatchSize int
	LR        float32 // Adam learning rate
	// WeightDecay is Adam's decoupled weight decay (0 in the paper's code).
	WeightDecay float32
	// Dropout is the probability of dropping an entry of the normalised input in training.
	Dropout float32
	// BetaMax caps the KL weight β, which rises linearly by 1/AnnealSteps per Adam step.
	BetaMax float32
	// AnnealSteps is the number of Adam steps over which β would reach 1 (it stops at
	// BetaMax); the paper's 200000.
	AnnealSteps int
	Seed        uint64
	// Workers is the number of goroutines of the tensor ops and the optimizer; 0 means
	// GOMAXPROCS. The model is bit-identical for any number of workers.
	Workers int
}

// DefaultMultVAEOptions returns the paper's settings (Liang et al. 2018, Mult-VAE^PR):
// [I→600→200→600→I] with tanh, dropout 0.5 on the input, Adam with LR 1e-3, batches of 500
// users, 200 epochs, β annealed over 200000 steps up to 0.2; seed 1.
func DefaultMultVAEOptions() MultVAEOptions {
	return MultVAEOptions{Hidden: 600, Latent: 200, Epochs: 200, BatchSize: 500, LR: 1e-3,
		Dropout: 0.5, BetaMax: 0.2, AnnealSteps: 200000, Seed: 1, Workers: runtime.GOMAXPROCS(0)}
}

// checkVAE validates the options the VAE models share.
func checkVAE(model string, hidden, latent, epochs, batch int, lr float32) error {
	switch {
	case hidden < 1 || latent < 1:
		return fmt.Errorf("models: %s hidden %d, latent %d: both must be ≥ 1", model, hidden, latent)
	case epochs < 0:
		return fmt.Errorf("models: %s epochs %d < 0", model, epochs)
	case batch < 1:
		return fmt.Errorf("models: %s batch size %d < 1", model, batch)
	case !(lr > 0) || !finite64(float64(lr)):
		return fmt.Errorf("models: %s LR %v is not a finite positive number", model, lr)
	}
	return nil
}

// Validate reports options that TrainMultVAE would refuse.
func (o MultVAEOptions) Validate() error {
	fin := func(v float32) bool { return finite64(float64(v)) }
	if err := checkVAE("Mult-VAE", o.Hidden, o.Latent, o.Epochs, o.BatchSize, o.LR); err != nil {
		return err
	}
	switch {
	case !(o.WeightDecay >= 0) || !fin(o.WeightDecay):
		return fmt.Errorf("models: Mult-VAE weight decay %v is not a finite non-negative number", o.WeightDecay)
	case !(o.Dropout >= 0 && o.Dropout < 1):
		return fmt.Errorf("models: Mult-VAE dropout %v outside [0, 1)", o.Dropout)
	case !(o.BetaMax >= 0) || !fin(o.BetaMax):
		return fmt.Errorf("models: Mult-VAE β max %v is not a finite non-negative number", o.BetaMax)
	case o.AnnealSteps < 1:
		return fmt.Errorf("models: Mult-VAE anneal steps %d < 1", o.AnnealSteps)
	}
	return nil
}

// ErrMultVAEInput is returned (wrapped) by TrainMultVAE for an interaction outside the
// given counts or counts it cannot hold.
var ErrMultVAEInput = errors.New("models: Mult-VAE input")

// maxMultVAEItems keeps item indices exact in float32 snapshot tables.
const maxMultVAEItems = 1 << 24

// MultVAE is the variational autoencoder for collaborative filtering with a multinomial
// likelihood (Liang, Krishnan, Hoffman and Jebara 2018, "Variational Autoencoders for
// Collaborative Filtering", Mult-VAE^PR).
//
// A user is the binary vector x_u of the items they interacted with in training. The
// encoder reads x_u/‖x_u‖ (with dropout in training), h = tanh(x·W_e + b_e), and gives
// μ = h·W_μ + b_μ and log σ² = h·W_σ + b_σ; training samples z = μ + ε·σ, ε ~ N(0, I). The
// decoder gives logits π = tanh(z·W_d + b_d)·W_o + b_o over all items. Each Adam step
// minimises, averaged over a batch of users,
//
//	−Σ_i x_ui·log softmax(π)_i + β·KL(N(μ, σ²) ‖ N(0, I))
//
// with β = min(BetaMax, step/AnnealSteps). The score of user u is the decoder's logits at
// z = μ(x_u) with x_u the user's training items, which the model keeps.
//
// A MultVAE is immutable once trained or loaded; its methods are safe for concurrent use.
type MultVAE struct {
	opts           MultVAEOptions
	nUsers, nItems int
	// off and items hold each user's distinct training items, ascending (CSR).
	off   []int
	items []int32

	enc, mu, logvar, dec, out *nn.Linear
}

func newMultVAENet(nItems int, o MultVAEOptions, rng *rand.Rand) (enc, mu, logvar, dec, out *nn.Linear) {
	return nn.NewLinear("enc", nItems, o.Hidden, true, rng),
		nn.NewLinear("mu", o.Hidden, o.Latent, true, rng),
		nn.NewLinear("logvar", o.Hidden, o.Latent, true, rng),
		nn.NewLinear("dec", o.Latent, o.Hidden, true, rng),
		nn.NewLinear("out", o.Hidden, nItems, true, rng)
}

func (m *MultVAE) params() []*nn.Param {
	var ps []*nn.Param
	for _, l := range []*nn.Linear{m.enc, m.mu, m.logvar, m.dec, m.out} {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// TrainMultVAE trains a Mult-VAE of nUsers users and nItems items on train: every
// (user, item) pair present is a 1 in the user's vector, whatever its Value. progress,
// when non-nil, is called after each epoch with the number of epochs done. Users without
// training items take no part in training. train is only read. The same options (seed
// included) give a bit-identical model.
func TrainMultVAE(nUsers, nItems int, train []datasets.Interaction, opts MultVAEOptions, progress func(epoch int)) (*MultVAE, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if nUsers < 0 || nItems < 1 || nUsers > math.MaxInt32 || nItems > maxMultVAEItems {
		return nil, fmt.Errorf("%w: %d users, %d items (items must be in [1, %d])", ErrMultVAEInput, nUsers, nItems, maxMultVAEItems)
	}
	m := &MultVAE{opts: opts, nUsers: nUsers, nItems: nItems}
	if err := m.buildRows(train); err != nil {
		return nil, err
	}
	rng := nn.NewRand(opts.Seed)
	m.enc, m.mu, m.logvar, m.dec, m.out = newMultVAENet(nItems, opts, rng)
	ps := m.params()
	ao := nn.DefaultAdamOptions()
	ao.LR, ao.WeightDecay, ao.Workers = opts.LR, opts.WeightDecay, opts.Workers
	adam := nn.NewAdam(ps, ao)
	tape := nn.NewTape(nn.Options{Workers: opts.Workers, Seed: opts.Seed ^ 0x7ae})
	noise := rand.New(rand.NewPCG(opts.Seed, 0xe95))
	shuffle := rand.New(rand.NewPCG(opts.Seed, 0x5f1))

	var active []int
	for u := range nUsers {
		if m.off[u+1] > m.off[u] {
			active = append(active, u)
		}
	}
	bufs := &vaeBufs{x: make([]float32, min(opts.BatchSize, len(active))*nItems),
		xn: make([]float32, min(opts.BatchSize, len(active))*nItems)}
	step := 0
	for ep := 0; ep < opts.Epochs; ep++ {
		shuffle.Shuffle(len(active), func(i, j int) { active[i], active[j] = active[j], active[i] })
		for lo := 0; lo < len(active); lo += opts.BatchSize {
			batch := active[lo:min(lo+opts.BatchSize, len(active))]
			beta := float32(min(float64(opts.BetaMax), float64(step)/float64(opts.AnnealSteps)))
			m.step(tape, batch, beta, noise, bufs)
			adam.Step()
			step++
		}
		if progress != nil {
			progress(ep + 1)
		}
	}
	return m, nil
}

// vaeBufs are the dense input rows of a batch, kept zero between steps but for the
// entries of the batch in use.
type vaeBufs struct{ x, xn []float32 }

// step records one batch's loss on tape and backpropagates it into the parameters.
// Dropout is applied to the input's non-zero entries only (a zero stays zero anyway), each
// kept with probability 1−p and scaled by 1/(1−p); the draws come from noise.
func (m *MultVAE) step(tape *nn.Tape, batch []int, beta float32, noise *rand.Rand, bufs *vaeBufs) {
	tape.Reset()
	b, n := len(batch), m.nItems
	x := nn.FromData(bufs.x[:b*n], b, n)
	xn := nn.FromData(bufs.xn[:b*n], b, n)
	p := m.opts.Dropout
	for r, u := range batch {
		items := m.items[m.off[u]:m.off[u+1]]
		inv := float32(1 / math.Sqrt(float64(len(items))))
		kept := inv / (1 - p)
		for _, i := range items {
			x.Data[r*n+int(i)] = 1
			if p > 0 && noise.Float32() < p {
				xn.Data[r*n+int(i)] = 0
			} else {
				xn.Data[r*n+int(i)] = kept
			}
		}
	}
	defer func() {
		for r, u := range batch {
			for _, i := range m.items[m.off[u]:m.off[u+1]] {
				x.Data[r*n+int(i)], xn.Data[r*n+int(i)] = 0, 0
			}
		}
	}()
	eps := nn.New(b, m.opts.Latent)
	for k := range eps.Data {
		eps.Data[k] = float32(noise.NormFloat64())
	}
	h := tape.Tanh(m.enc.Forward(tape, tape.Const(xn)))
	mu := m.mu.Forward(tape, h)
	lv := m.logvar.Forward(tape, h)
	std := tape.Exp(tape.Scale(lv, 0.5))
	z := tape.Add(mu, tape.Mul(tape.Const(eps), std))
	logits := m.out.Forward(tape, tape.Tanh(m.dec.Forward(tape, z)))
	nll := tape.Scale(tape.Sum(tape.Mul(tape.LogSoftmax(logits), tape.Const(x))), -1/float32(b))
	// KL = ½ Σ (σ² + μ² − 1 − log σ²)
	kl := tape.Sum(tape.Sub(tape.Add(tape.Exp(lv), tape.Square(mu)), tape.AddScalar(lv, 1)))
	loss := tape.Add(nll, tape.Scale(kl, 0.5*beta/float32(b)))
	tape.Backward(loss)
}

// buildRows keeps each user's distinct training items, ascending.
func (m *MultVAE) buildRows(train []datasets.Interaction) error {
	count := make([]int, m.nUsers+1)
	for n, x := range train {
		if x.User < 0 || int(x.User) >= m.nUsers || x.Item < 0 || int(x.Item) >= m.nItems {
			return fmt.Errorf("%w: interaction %d: (user %d, item %d) outside %d×%d", ErrMultVAEInput, n, x.User, x.Item, m.nUsers, m.nItems)
		}
		count[x.User+1]++
	}
	for u := range m.nUsers {
		count[u+1] += count[u]
	}
	all := make([]int32, len(train))
	next := slices.Clone(count[:m.nUsers])
	for _, x := range train {
		all[next[x.User]] = x.Item
		next[x.User]++
	}
	m.off = make([]int, m.nUsers+1)
	m.items = make([]int32, 0, len(train))
	for u := range m.nUsers {
		row := all[count[u]:count[u+1]]
		slices.Sort(row)
		m.items = append(m.items, slices.Compact(row)...)
		m.off[u+1] = len(m.items)
	}
	return nil
}

// NumUsers and NumItems return the model's sizes.
func (m *MultVAE) NumUsers() int { return m.nUsers }

// NumItems returns the number of items scored.
func (m *MultVAE) NumItems() int { return m.nItems }

// UserItems returns user's distinct training items, ascending (shared: do not modify).
func (m *MultVAE) UserItems(user int32) []int32 {
	if user < 0 || int(user) >= m.nUsers {
		return nil
	}
	return m.items[m.off[user]:m.off[user+1]]
}

// ScoreAll returns the decoder's logits at z = μ(x_u) for the user's training items,
// reusing dst when its capacity suffices. An unknown user gets all zeros.
func (m *MultVAE) ScoreAll(user int32, dst []float32) []float32 {
	dst = growF32(dst, m.nItems)
	if user < 0 || int(user) >= m.nUsers {
		clear(dst)
		return dst
	}
	return m.ScoreItems(m.UserItems(user), dst)
}

// ScoreItems returns the logits for a user with the given distinct items (fold-in of a
// new user), reusing dst as ScoreAll does. Items outside [0, NumItems) are ignored.
func (m *MultVAE) ScoreItems(items []int32, dst []float32) []float32 {
	dst = growF32(dst, m.nItems)
	hid, lat := m.opts.Hidden, m.opts.Latent
	h := slices.Clone(m.enc.B.Value.Data)
	var valid []int32
	for _, i := range items {
		if i >= 0 && int(i) < m.nItems {
			valid = append(valid, i)
		}
	}
	if len(valid) > 0 {
		inv := float32(1 / math.Sqrt(float64(len(valid))))
		w := m.enc.W.Value.Data
		for _, i := range valid {
			axpy(h, inv, w[int(i)*hid:(int(i)+1)*hid])
		}
	}
	tanhAll(h)
	mu := slices.Clone(m.mu.B.Value.Data)
	for j, v := range h {
		axpy(mu, v, m.mu.W.Value.Data[j*lat:(j+1)*lat])
	}
	h2 := slices.Clone(m.dec.B.Value.Data)
	for j, v := range mu {
		axpy(h2, v, m.dec.W.Value.Data[j*hid:(j+1)*hid])
	}
	tanhAll(h2)
	copy(dst, m.out.B.Value.Data)
	n := m.nItems
	for j, v := range h2 {
		axpy(dst, v, m.out.W.Value.Data[j*n:(j+1)*n])
	}
	return dst
}

func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for k, v := range x {
		y[k] += a * v
	}
}

func tanhAll(x []float32) {
	for k, v := range x {
		x[k] = float32(math.Tanh(float64(v)))
	}
}

const (
	multVAEModel   = "multvae"
	multVAEVersion = 1
)

// Snapshot returns the model as a Snapshot: one table per parameter (named as the
// parameter, e.g. "enc.W", biases as 1×n), "user_counts" (nUsers×1, each user's number of
// training items) and "user_items" (1×total, the items of all users in user order), both
// as exact float32 integers. The tables alias the model.
func (m *MultVAE) Snapshot() Snapshot {
	o := m.opts
	f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
	s := Snapshot{
		Model:   multVAEModel,
		Version: multVAEVersion,
		Meta: map[string]string{
			"hidden":       strconv.Itoa(o.Hidden),
			"latent":       strconv.Itoa(o.Latent),
			"epochs":       strconv.Itoa(o.Epochs),
			"batch_size":   strconv.Itoa(o.BatchSize),
			"anneal_steps": strconv.Itoa(o.AnnealSteps),
			"lr":           f(o.LR),
			"weight_decay": f(o.WeightDecay),
			"dropout":      f(o.Dropout),
			"beta_max":     f(o.BetaMax),
			"seed":         strconv.FormatUint(o.Seed, 10),
		},
	}
	for _, p := range m.params() {
		sh := p.Value.Shape
		rows, cols := 1, sh[0]
		if len(sh) == 2 {
			rows, cols = sh[0], sh[1]
		}
		s.Tables = append(s.Tables, Table{Name: p.Name, Rows: rows, Cols: cols, Data: p.Value.Data})
	}
	counts := make([]float32, m.nUsers)
	for u := range counts {
		counts[u] = float32(m.off[u+1] - m.off[u])
	}
	items := make([]float32, len(m.items))
	for k, i := range m.items {
		items[k] = float32(i)
	}
	s.Tables = append(s.Tables,
		Table{Name: "user_counts", Rows: m.nUsers, Cols: 1, Data: counts},
		Table{Name: "user_items", Rows: 1, Cols: len(items), Data: items})
	return s
}

// MultVAEFromSnapshot rebuilds a MultVAE from a Snapshot written by (*MultVAE).Snapshot.
// It checks the model name and version, the hyper-parameters, every table's shape, that
// parameters are finite and that the users' items are valid; failures wrap
// ErrSnapshotInvalid. The parameters keep the tables' Data (no copy).
func MultVAEFromSnapshot(s Snapshot) (*MultVAE, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: multvae: %s", ErrSnapshotInvalid, fmt.Sprintf(format, args...))
	}
	if s.Model != multVAEModel || s.Version != multVAEVersion {
		return nil, bad("model %q version %d, want %q version %d", s.Model, s.Version, multVAEModel, multVAEVersion)
	}
	o := DefaultMultVAEOptions()
	for _, f := range []struct {
		key string
		dst *int
	}{{"hidden", &o.Hidden}, {"latent", &o.Latent}, {"epochs", &o.Epochs}, {"batch_size", &o.BatchSize}, {"anneal_steps", &o.AnnealSteps}} {
		v, err := strconv.Atoi(s.Meta[f.key])
		if err != nil {
			return nil, bad("meta %q: %v", f.key, err)
		}
		*f.dst = v
	}
	if err := parseMeta(multVAEModel, s.Meta, &o.Seed, map[string]*float32{
		"lr": &o.LR, "weight_decay": &o.WeightDecay, "dropout": &o.Dropout, "beta_max": &o.BetaMax}); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	counts, ok := s.Table("user_counts")
	if !ok || counts.Cols != 1 || len(counts.Data) != counts.Rows {
		return nil, bad("missing or malformed table \"user_counts\"")
	}
	out, ok := s.Table("out.b")
	if !ok || out.Rows != 1 || out.Cols < 1 || out.Cols > maxMultVAEItems {
		return nil, bad("missing or malformed table \"out.b\"")
	}
	m := &MultVAE{opts: o, nUsers: counts.Rows, nItems: out.Cols}
	// Shapes come from a fresh network; its values are replaced by the tables'.
	m.enc, m.mu, m.logvar, m.dec, m.out = newMultVAENet(m.nItems, o, nn.NewRand(0))
	for _, p := range m.params() {
		t, ok := s.Table(p.Name)
		sh := p.Value.Shape
		rows, cols := 1, sh[0]
		if len(sh) == 2 {
			rows, cols = sh[0], sh[1]
		}
		if !ok || t.Rows != rows || t.Cols != cols || len(t.Data) != rows*cols {
			return nil, bad("table %q missing or not %d×%d", p.Name, rows, cols)
		}
		for k, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, bad("table %q value %d is %v", p.Name, k, v)
			}
		}
		p.Value = nn.FromData(t.Data, sh...)
	}
	items, ok := s.Table("user_items")
	if !ok || items.Rows != 1 || len(items.Data) != items.Cols {
		return nil, bad("missing or malformed table \"user_items\"")
	}
	m.off = make([]int, m.nUsers+1)
	m.items = make([]int32, len(items.Data))
	for u, c := range counts.Data {
		if !(c >= 0 && c <= float32(m.nItems)) || c != float32(int(c)) {
			return nil, bad("user %d has %v items", u, c)
		}
		m.off[u+1] = m.off[u] + int(c)
	}
	if m.off[m.nUsers] != len(items.Data) {
		return nil, bad("user counts sum to %d, %d items stored", m.off[m.nUsers], len(items.Data))
	}
	for k, v := range items.Data {
		if !(v >= 0 && v < float32(m.nItems)) || v != float32(int(v)) {
			return nil, bad("user item %d is %v", k, v)
		}
		m.items[k] = int32(v)
	}
	for u := range m.nUsers {
		row := m.items[m.off[u]:m.off[u+1]]
		for k := 1; k < len(row); k++ {
			if row[k] <= row[k-1] {
				return nil, bad("user %d's items do not ascend", u)
			}
		}
	}
	return m, nil
}
