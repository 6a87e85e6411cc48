package models

import (
	"fmt"
	"math"
	"math/rand/v2"
)

var (
	_ Visual   = (*OnlineVBPR)(nil)
	_ Servable = (*OnlineVBPR)(nil)
)

// OnlineVBPROptions configure an OnlineVBPR. DefaultOnlineVBPROptions gives the defaults.
type OnlineVBPROptions struct {
	Factors       int     // K, the latent factors γ_u, γ_i
	VisualFactors int     // K', the visual preference θ_u and the rows of E
	FeatureDim    int     // F, the length of the item features
	FeatureScale  float32 // features are multiplied by it before use
	LearnRate     float32 // SGD step size
	Reg           float32 // L2 strength on γ_u, θ_u, γ_i, γ_j
	RegBias       float32 // L2 strength on the item biases β_i, β_j
	RegVisual     float32 // L2 strength on E and β'
	InitStd       float32 // standard deviation of a fresh user's γ_u and θ_u
}

// PosterFeatureScale is the default FeatureScale: 1/27, about the inverse of the mean
// Euclidean norm of the MobileNetV2 poster features (non-negative, norms in the tens), so
// that scaled features have norm about 1 and one learning rate suits E and the factors.
const PosterFeatureScale = 1.0 / 27

// DefaultOnlineVBPROptions returns K=64, K'=20, F=1280 (MobileNetV2), FeatureScale 1/27,
// learning rate 0.05, Reg 0.001, RegBias 0.01, RegVisual 1e-5 (the batch VBPR's tuned
// values), InitStd 0.1.
func DefaultOnlineVBPROptions() OnlineVBPROptions {
	return OnlineVBPROptions{Factors: 64, VisualFactors: 20, FeatureDim: 1280, FeatureScale: PosterFeatureScale,
		LearnRate: 0.05, Reg: 0.001, RegBias: 0.01, RegVisual: 1e-5, InitStd: 0.1}
}

// Validate reports options that NewOnlineVBPR would refuse.
func (o OnlineVBPROptions) Validate() error {
	if o.Factors < 1 {
		return fmt.Errorf("models: online VBPR factors %d < 1", o.Factors)
	}
	if err := checkVisual("online VBPR", o.VisualFactors, o.FeatureDim, o.FeatureScale, o.RegVisual); err != nil {
		return err
	}
	return checkRates("online VBPR", o.LearnRate, o.Reg, o.RegBias, o.InitStd)
}

// OnlineVBPR is visual Bayesian personalised ranking (He and McAuley, AAAI 2016) learnt by
// online SGD, one event at a time, in the stream. (VBPR is the batch trainer of the same
// model.)
//
// Rows: user [γ_u(K), θ_u(K')], item [β_i, γ_i(K)], global [E (K'×F, row-major), β' (F)].
// With f_i = FeatureScale·x_i, x_i the item's raw features (Example.ItemFeat; nil: zeros),
//
//	s(u,i) = β_i + γ_u·γ_i + θ_u·(E·f_i) + β'·f_i.
//
// Each Step takes the observed item i and the sampled negative j, x = s(u,i) − s(u,j), and
// makes one gradient-descent step, lr·∇, on
//
//	L = −w·ln σ(x) + Reg/2·(‖γ_u‖² + ‖θ_u‖² + ‖γ_i‖² + ‖γ_j‖²) + RegBias/2·(β_i² + β_j²)
//	    + RegVisual/2·(‖E‖² + ‖β'‖²)
//
// with w = ex.Weight and every gradient taken at the old values. E and β' are updated by
// every step (no staleness; see visual.go): the step costs four passes over the
// (K'+1)×F values of [E; β'] on top of BPR's O(K). Step returns w·(−ln σ(x)) before the
// step.
//
// Extreme inputs follow the overflow policy in kernels.go: biases and θ_u are updated in
// float64 and clamped to ±1e15; γ and [E; β'] run in float32 unless their squared norms
// reach 1e30 or a coefficient exceeds 1e6, then in float64, clamped. Feature differences
// are clamped to ±1e15. Finite rows, features and weights always leave finite parameters.
type OnlineVBPR struct {
	opts                OnlineVBPROptions
	k, k2, f            int
	lr, reg, regB, regE float64
	vk                  visualKernel
}

// NewOnlineVBPR returns an OnlineVBPR. It panics when opts.Validate fails.
func NewOnlineVBPR(opts OnlineVBPROptions) *OnlineVBPR {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &OnlineVBPR{opts: opts, k: opts.Factors, k2: opts.VisualFactors, f: opts.FeatureDim,
		lr: float64(opts.LearnRate), reg: float64(opts.Reg), regB: float64(opts.RegBias), regE: float64(opts.RegVisual),
		vk: newVisualKernel(opts.VisualFactors+1, opts.FeatureDim, opts.FeatureScale)}
}

// Options returns the options the model was built with.
func (m *OnlineVBPR) Options() OnlineVBPROptions { return m.opts }

// Name is "vbpr".
func (m *OnlineVBPR) Name() string { return "vbpr" }

// UserDim is K+K'.
func (m *OnlineVBPR) UserDim() int { return m.k + m.k2 }

// ItemDim is K+1.
func (m *OnlineVBPR) ItemDim() int { return m.k + 1 }

// GlobalDim is (K'+1)·F.
func (m *OnlineVBPR) GlobalDim() int { return (m.k2 + 1) * m.f }

// FeatureDim is F.
func (m *OnlineVBPR) FeatureDim() int { return m.f }

// NeedsNegative is true.
func (m *OnlineVBPR) NeedsNegative() bool { return true }

// InitUser draws γ_u and θ_u from N(0, InitStd²).
func (m *OnlineVBPR) InitUser(row []float32, rng *rand.Rand) {
	for k := range row {
		row[k] = float32(rng.NormFloat64()) * m.opts.InitStd
	}
}

// Score returns the score of an item with all-zero features: β_i + γ_u·γ_i.
func (m *OnlineVBPR) Score(user, item, global []float32) float32 {
	return clamp32(m.latent(user, item), scoreLimit)
}

func (m *OnlineVBPR) latent(user, item []float32) float64 {
	k := m.k
	d := float64(dot(user[:k], item[1:k+1]))
	if math.IsInf(d, 0) || math.IsNaN(d) {
		d = dot64(user[:k], item[1:k+1])
	}
	return d + float64(item[0])
}

// ScoreFeatures returns s(u,i) for an item with raw features feat (nil: zeros).
func (m *OnlineVBPR) ScoreFeatures(user, item, global, feat []float32) float32 {
	return clamp32(m.latent(user, item)+m.vk.visualScore(global, user[m.k:m.k+m.k2], feat), scoreLimit)
}

// FeatureWeights writes FeatureScale·(Eᵀθ_u + β').
func (m *OnlineVBPR) FeatureWeights(dst, user, global []float32) {
	m.vk.weights(dst, global, user[m.k:m.k+m.k2])
}

// ServeDim is K+K'+2: [1, γ_u, θ_u, 1] · [β_i, γ_i, E·f_i, β'·f_i].
func (m *OnlineVBPR) ServeDim() int { return m.k + m.k2 + 2 }

// UserVector writes [1, γ_u, θ_u, 1].
func (m *OnlineVBPR) UserVector(dst, user, _ []float32) {
	dst[0] = 1
	copy(dst[1:], user[:m.k+m.k2])
	dst[m.k+m.k2+1] = 1
}

// ItemVector writes [β_i, γ_i, E·f_i, β'·f_i], f_i the scaled features (zeros for nil).
func (m *OnlineVBPR) ItemVector(dst, item, global, features []float32) {
	copy(dst, item[:m.k+1])
	m.vk.projectItem(dst[m.k+1:m.k+m.k2+2], global, features)
}

// Step applies one SGD step; see the type's documentation. A nil ex.Neg, a negative that is
// the same row as ex.Item, or a NaN or infinite Weight changes nothing and returns 0. Rows
// must have the model's widths and non-nil features length F; Step panics otherwise.
func (m *OnlineVBPR) Step(ex *Example) float32 {
	w := float64(ex.Weight)
	if len(ex.Neg) == 0 || sameRow(ex.Item, ex.Neg) || !finite64(w) {
		return 0
	}
	k, k2 := m.k, m.k2
	u, i, j := ex.User[:k+k2], ex.Item[:k+1], ex.Neg[:k+1]
	gu, theta := u[:k], u[k:]
	gi, gj := i[1:], j[1:]
	W := ex.Global[:(k2+1)*m.f]

	si32, sj32, n2 := dot2Norm(gu, gi, gj)
	di, dj := float64(si32), float64(sj32)
	slow := !(n2 < normLimit)
	if slow {
		di, dj = dot64(gu, gi), dot64(gu, gj)
	}
	hasD := m.vk.diff(ex.ItemFeat, ex.NegFeat)
	fastW := true
	var vis float64
	if hasD {
		fastW = m.vk.project(W)
		for r := 0; r < k2; r++ {
			vis += float64(theta[r]) * m.vk.proj[r]
		}
		vis += m.vk.proj[k2] // β'·(f_i − f_j)
	}
	bi, bj := float64(i[0]), float64(j[0])
	x := (bi - bj) + (di - dj) + vis
	loss, g := softplusNeg(x) // g = σ(−x) = d ln σ(x) / dx
	c := m.lr * w * g

	// [E; β'] first: its gradient reads the old θ_u.
	m.vk.update(W, 1-m.lr*m.regE, c, theta, hasD, fastW)
	aT := 1 - m.lr*m.reg
	for r := range theta {
		p := 0.0
		if hasD {
			p = m.vk.proj[r]
		}
		theta[r] = clampParam(aT*float64(theta[r]) + c*p)
	}
	i[0] = clampParam(bi + c - m.lr*m.regB*bi)
	j[0] = clampParam(bj - c - m.lr*m.regB*bj)
	a := 1 - m.lr*m.reg
	if !slow && fastOK(n2, a, c, 0) {
		update3(gu, gi, gj, float32(a), ftz(-c), ftz(c))
	} else {
		update3Safe(gu, gi, gj, a, -c, c)
	}
	return clamp32(w*loss, math.MaxFloat32)
}
