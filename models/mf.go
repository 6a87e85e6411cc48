package models

import (
	"fmt"
	"math"
	"math/rand/v2"
)

var _ Online = (*MF)(nil)

// MFOptions configure an MF. DefaultMFOptions gives the defaults.
type MFOptions struct {
	Factors   int     // K, the number of latent factors
	LearnRate float32 // SGD step size
	Reg       float32 // L2 strength on the factor vectors p_u and q_i
	RegBias   float32 // L2 strength on the biases b_u and b_i (μ is not regularised)
	InitStd   float32 // standard deviation of a fresh user's factors
	// Explicit selects the loss: true regresses on ratings (ex.Value); false is weighted
	// implicit feedback with a sampled negative.
	Explicit bool
	// NoBias drops the biases and the global mean (explicit only): probabilistic MF
	// (Salakhutdinov and Mnih 2008), whose MAP estimate is this L2-regularised squared loss on
	// p·q alone. The model is then named "pmf"; its rows keep the (zero) bias slot.
	NoBias bool
	// MaxError clips the residual used in the gradient to ±MaxError (a Huber-style guard
	// against absurd ratings); <= 0 disables the clip.
	MaxError float32
}

// DefaultMFOptions returns K=64, learning rate 0.01, Reg 0.02, RegBias 0.005, InitStd 0.1,
// explicit, MaxError 100.
func DefaultMFOptions() MFOptions {
	return MFOptions{Factors: 64, LearnRate: 0.01, Reg: 0.02, RegBias: 0.005, InitStd: 0.1, Explicit: true, MaxError: 100}
}

// Validate reports options that NewMF would refuse.
func (o MFOptions) Validate() error {
	if o.Factors < 1 {
		return fmt.Errorf("models: MF factors %d < 1", o.Factors)
	}
	if o.NoBias && !o.Explicit {
		return fmt.Errorf("models: MF without biases (PMF) is explicit only")
	}
	if math.IsNaN(float64(o.MaxError)) {
		return fmt.Errorf("models: MF MaxError is NaN")
	}
	return checkRates("MF", o.LearnRate, o.Reg, o.RegBias, o.InitStd)
}

func checkRates(model string, lr, reg, regBias, std float32) error {
	for _, f := range []struct {
		name string
		v    float32
	}{{"learning rate", lr}, {"reg", reg}, {"bias reg", regBias}, {"init std", std}} {
		if !(f.v >= 0) || math.IsInf(float64(f.v), 0) {
			return fmt.Errorf("models: %s %s %v is not a finite non-negative number", model, f.name, f.v)
		}
	}
	if lr == 0 {
		return fmt.Errorf("models: %s learning rate is 0", model)
	}
	return nil
}

// MF is biased matrix factorisation learnt by online SGD.
//
// Rows: user [b_u, p_u(K)], item [b_i, q_i(K)], global [μ]. The score is
// s(u,i) = μ + b_u + b_i + p_u·q_i.
//
// Each Step is one gradient-descent step, lr·∇, on the example's objective, with every
// gradient taken at the old values:
//
//	explicit: L = w/2·(s(u,i) − y)² + R
//	implicit: L = w/2·(s(u,i) − 1)² + 1/2·s(u,j)² + R   (j the sampled negative, weight 1)
//	R = Reg/2·(‖p_u‖² + ‖q_i‖² [+ ‖q_j‖²]) + RegBias/2·(b_u² + b_i² [+ b_j²])
//
// where w = ex.Weight and y = ex.Value. μ is learnt in both modes. The residuals entering
// the gradient are clipped to ±MaxError. Step returns the data term of L before the step
// (without R and without clipping), clamped to the float32 range.
//
// Extreme inputs (the overflow policy in kernels.go): biases and μ are updated in float64
// and clamped to ±1e15. The factor update runs in float32 unless the squared norms of the
// vectors reach 1e30 (so some |value| ≥ 1e15) or a step coefficient exceeds 1e6 (an absurd
// weight or learning rate); then it runs in float64 and clamps what it writes to ±1e15. So
// finite rows and examples always leave finite parameters. Score falls back to float64 when
// the float32 dot product overflows, and clamps to ±MaxFloat32.
type MF struct {
	opts               MFOptions
	k                  int
	lr, reg, regB, max float64
}

// NewMF returns an MF. It panics when opts.Validate fails.
func NewMF(opts MFOptions) *MF {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &MF{opts: opts, k: opts.Factors, lr: float64(opts.LearnRate), reg: float64(opts.Reg),
		regB: float64(opts.RegBias), max: float64(opts.MaxError)}
}

// Options returns the options the model was built with.
func (m *MF) Options() MFOptions { return m.opts }

// Name is "mf".
func (m *MF) Name() string {
	if m.opts.NoBias {
		return "pmf"
	}
	return "mf"
}

// UserDim is K+1.
func (m *MF) UserDim() int { return m.k + 1 }

// ItemDim is K+1.
func (m *MF) ItemDim() int { return m.k + 1 }

// GlobalDim is 1 (μ).
func (m *MF) GlobalDim() int { return 1 }

// NeedsNegative is true in implicit mode.
func (m *MF) NeedsNegative() bool { return !m.opts.Explicit }

// InitUser sets b_u to 0 and draws p_u from N(0, InitStd²).
func (m *MF) InitUser(row []float32, rng *rand.Rand) {
	row[0] = 0
	for k := 1; k < len(row); k++ {
		row[k] = float32(rng.NormFloat64()) * m.opts.InitStd
	}
}

// Score returns μ + b_u + b_i + p_u·q_i. global may be nil (μ = 0).
func (m *MF) Score(user, item, global []float32) float32 {
	k := m.k
	d := float64(dot(user[1:k+1], item[1:k+1]))
	if math.IsInf(d, 0) || math.IsNaN(d) {
		d = dot64(user[1:k+1], item[1:k+1])
	}
	s := d + float64(user[0]) + float64(item[0])
	if len(global) > 0 {
		s += float64(global[0])
	}
	return clamp32(s, scoreLimit)
}

// Step applies one SGD step; see the type's documentation. In implicit mode a nil ex.Neg,
// or one that is the same row as ex.Item, leaves out the negative term. An example whose
// Weight (or, explicit, Value) is NaN or ±Inf changes nothing and returns 0. Rows must have
// the model's widths; Step panics otherwise.
func (m *MF) Step(ex *Example) float32 {
	if !m.opts.Explicit && len(ex.Neg) > 0 && !sameRow(ex.Item, ex.Neg) {
		return m.stepImplicit(ex)
	}
	return m.stepOne(ex)
}

// stepOne is the explicit step, and the implicit one without a negative (target 1).
func (m *MF) stepOne(ex *Example) float32 {
	k := m.k
	u, i := ex.User[:k+1], ex.Item[:k+1]
	p, q := u[1:], i[1:]
	var mu float64
	if len(ex.Global) > 0 {
		mu = float64(ex.Global[0])
	}
	y := float64(ex.Value)
	if !m.opts.Explicit {
		y = 1
	}
	w := float64(ex.Weight)
	if !finite64(w) || !finite64(y) {
		return 0
	}

	d32, n2 := dotNorm(p, q)
	d := float64(d32)
	slow := !(n2 < normLimit)
	if slow {
		d = dot64(p, q)
	}
	bu, bi := float64(u[0]), float64(i[0])
	if m.opts.NoBias {
		mu, bu, bi = 0, 0, 0
	}
	e := mu + bu + bi + d - y
	loss := 0.5 * w * e * e
	g := w * clip(e, m.max) // dL/ds

	if !m.opts.NoBias {
		if len(ex.Global) > 0 {
			ex.Global[0] = clampParam(mu - m.lr*g)
		}
		u[0] = clampParam(bu - m.lr*(g+m.regB*bu))
		i[0] = clampParam(bi - m.lr*(g+m.regB*bi))
	}
	a, c := 1-m.lr*m.reg, m.lr*g
	if !slow && fastOK(n2, a, c, 0) {
		update2(p, q, float32(a), ftz(c))
	} else {
		update2Safe(p, q, a, c)
	}
	return clamp32(loss, math.MaxFloat32)
}

func (m *MF) stepImplicit(ex *Example) float32 {
	k := m.k
	u, i, j := ex.User[:k+1], ex.Item[:k+1], ex.Neg[:k+1]
	p, qi, qj := u[1:], i[1:], j[1:]
	var mu float64
	if len(ex.Global) > 0 {
		mu = float64(ex.Global[0])
	}
	w := float64(ex.Weight)
	if !finite64(w) {
		return 0
	}

	si32, sj32, n2 := dot2Norm(p, qi, qj)
	di, dj := float64(si32), float64(sj32)
	slow := !(n2 < normLimit)
	if slow {
		di, dj = dot64(p, qi), dot64(p, qj)
	}
	bu, bi, bj := float64(u[0]), float64(i[0]), float64(j[0])
	ei := mu + bu + bi + di - 1 // residual of the positive, target 1
	ej := mu + bu + bj + dj     // residual of the negative, target 0
	loss := 0.5*w*ei*ei + 0.5*ej*ej
	gi, gj := w*clip(ei, m.max), clip(ej, m.max)

	if len(ex.Global) > 0 {
		ex.Global[0] = clampParam(mu - m.lr*(gi+gj))
	}
	u[0] = clampParam(bu - m.lr*(gi+gj+m.regB*bu))
	i[0] = clampParam(bi - m.lr*(gi+m.regB*bi))
	j[0] = clampParam(bj - m.lr*(gj+m.regB*bj))
	a, ci, cj := 1-m.lr*m.reg, m.lr*gi, m.lr*gj
	if !slow && fastOK(n2, a, ci, cj) {
		update3(p, qi, qj, float32(a), ftz(ci), ftz(cj))
	} else {
		update3Safe(p, qi, qj, a, ci, cj)
	}
	return clamp32(loss, math.MaxFloat32)
}
