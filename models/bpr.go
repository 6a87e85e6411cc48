package models

import (
	"fmt"
	"math"
	"math/rand/v2"
)

var _ Online = (*BPR)(nil)

// BPROptions configure a BPR. DefaultBPROptions gives the defaults.
type BPROptions struct {
	Factors   int     // K, the number of latent factors
	LearnRate float32 // SGD step size
	Reg       float32 // L2 strength on p_u, q_i and q_j
	RegBias   float32 // L2 strength on the item biases b_i and b_j
	InitStd   float32 // standard deviation of a fresh user's factors
}

// DefaultBPROptions returns K=64, learning rate 0.05, Reg 0.01, RegBias 0.01, InitStd 0.1.
func DefaultBPROptions() BPROptions {
	return BPROptions{Factors: 64, LearnRate: 0.05, Reg: 0.01, RegBias: 0.01, InitStd: 0.1}
}

// Validate reports options that NewBPR would refuse.
func (o BPROptions) Validate() error {
	if o.Factors < 1 {
		return fmt.Errorf("models: BPR factors %d < 1", o.Factors)
	}
	return checkRates("BPR", o.LearnRate, o.Reg, o.RegBias, o.InitStd)
}

// BPR is Bayesian personalised ranking (Rendle et al., 2009) learnt by online SGD.
//
// Rows: user [p_u(K)], item [b_i, q_i(K)]; no global row. The score is
// s(u,i) = b_i + p_u·q_i. Each Step takes the observed item i and the sampled negative j,
// x = s(u,i) − s(u,j), and makes one gradient-descent step, lr·∇, on
//
//	L = −w·ln σ(x) + Reg/2·(‖p_u‖² + ‖q_i‖² + ‖q_j‖²) + RegBias/2·(b_i² + b_j²)
//
// (gradient ascent on w·ln σ(x) minus the L2 terms), with w = ex.Weight and every gradient
// taken at the old values. Step returns the data term w·(−ln σ(x)) before the step,
// computed stably as w·ln(1+e^−x).
//
// Extreme inputs (the overflow policy in kernels.go): σ(−x) lies in [0, 1], so the gradient
// coefficient is at most lr·w. Biases are updated in float64 and clamped to ±1e15. The
// factor update runs in float32 unless the squared norms of the three vectors reach 1e30 (so
// some |value| ≥ 1e15) or lr·w·σ(−x) exceeds 1e6; then it runs in float64 and clamps what it
// writes to ±1e15. So finite rows and examples always leave finite parameters. Score falls
// back to float64 when the float32 dot product overflows, and clamps to ±MaxFloat32.
type BPR struct {
	opts          BPROptions
	k             int
	lr, reg, regB float64
}

// NewBPR returns a BPR. It panics when opts.Validate fails.
func NewBPR(opts BPROptions) *BPR {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &BPR{opts: opts, k: opts.Factors, lr: float64(opts.LearnRate), reg: float64(opts.Reg),
		regB: float64(opts.RegBias)}
}

// Options returns the options the model was built with.
func (m *BPR) Options() BPROptions { return m.opts }

// Name is "bpr".
func (m *BPR) Name() string { return "bpr" }

// UserDim is K.
func (m *BPR) UserDim() int { return m.k }

// ItemDim is K+1.
func (m *BPR) ItemDim() int { return m.k + 1 }

// GlobalDim is 0.
func (m *BPR) GlobalDim() int { return 0 }

// NeedsNegative is true.
func (m *BPR) NeedsNegative() bool { return true }

// InitUser draws p_u from N(0, InitStd²).
func (m *BPR) InitUser(row []float32, rng *rand.Rand) {
	for k := range row {
		row[k] = float32(rng.NormFloat64()) * m.opts.InitStd
	}
}

// Score returns b_i + p_u·q_i; global is ignored.
func (m *BPR) Score(user, item, global []float32) float32 {
	k := m.k
	d := float64(dot(user[:k], item[1:k+1]))
	if math.IsInf(d, 0) || math.IsNaN(d) {
		d = dot64(user[:k], item[1:k+1])
	}
	return clamp32(d+float64(item[0]), scoreLimit)
}

// Step applies one SGD step; see the type's documentation. A nil ex.Neg, a negative that is
// the same row as ex.Item, or a NaN or infinite Weight changes nothing and returns 0. Rows
// must have the model's widths; Step panics otherwise.
func (m *BPR) Step(ex *Example) float32 {
	w := float64(ex.Weight)
	if len(ex.Neg) == 0 || sameRow(ex.Item, ex.Neg) || !finite64(w) {
		return 0
	}
	k := m.k
	p, i, j := ex.User[:k], ex.Item[:k+1], ex.Neg[:k+1]
	qi, qj := i[1:], j[1:]

	si32, sj32, n2 := dot2Norm(p, qi, qj)
	di, dj := float64(si32), float64(sj32)
	slow := !(n2 < normLimit)
	if slow {
		di, dj = dot64(p, qi), dot64(p, qj)
	}
	bi, bj := float64(i[0]), float64(j[0])
	x := (bi - bj) + (di - dj)
	loss, g := softplusNeg(x) // g = σ(−x) = d ln σ(x) / dx

	c := m.lr * w * g
	i[0] = clampParam(bi + c - m.lr*m.regB*bi)
	j[0] = clampParam(bj - c - m.lr*m.regB*bj)
	a := 1 - m.lr*m.reg
	if !slow && fastOK(n2, a, c, 0) {
		update3(p, qi, qj, float32(a), ftz(-c), ftz(c))
	} else {
		update3Safe(p, qi, qj, a, -c, c)
	}
	return clamp32(w*loss, math.MaxFloat32)
}
