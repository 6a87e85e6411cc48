package models

import (
	"fmt"
	"math"
	"math/rand/v2"
)

var (
	_ Visual   = (*VMF)(nil)
	_ Servable = (*VMF)(nil)
)

// VMFOptions configure a VMF. DefaultVMFOptions gives the defaults.
type VMFOptions struct {
	Factors       int     // K, the latent factors p_u, q_i
	VisualFactors int     // K', the visual preference θ_u and the rows of E
	FeatureDim    int     // F, the length of the item features
	FeatureScale  float32 // features are multiplied by it before use
	LearnRate     float32 // SGD step size
	Reg           float32 // L2 strength on p_u, q_i and θ_u
	RegBias       float32 // L2 strength on b_u and b_i (μ is not regularised)
	RegVisual     float32 // L2 strength on E
	InitStd       float32 // standard deviation of a fresh user's p_u and θ_u
	// MaxError clips the residual used in the gradient to ±MaxError; <= 0 disables it.
	MaxError float32
}

// DefaultVMFOptions returns K=64, K'=20, F=1280, FeatureScale 1/27 (PosterFeatureScale),
// learning rate 0.01, Reg 0.02, RegBias 0.005 (MF's defaults), RegVisual 1e-4, InitStd 0.1,
// MaxError 100.
func DefaultVMFOptions() VMFOptions {
	return VMFOptions{Factors: 64, VisualFactors: 20, FeatureDim: 1280, FeatureScale: PosterFeatureScale,
		LearnRate: 0.01, Reg: 0.02, RegBias: 0.005, RegVisual: 1e-4, InitStd: 0.1, MaxError: 100}
}

// Validate reports options that NewVMF would refuse.
func (o VMFOptions) Validate() error {
	if o.Factors < 1 {
		return fmt.Errorf("models: VMF factors %d < 1", o.Factors)
	}
	if math.IsNaN(float64(o.MaxError)) {
		return fmt.Errorf("models: VMF MaxError is NaN")
	}
	if err := checkVisual("VMF", o.VisualFactors, o.FeatureDim, o.FeatureScale, o.RegVisual); err != nil {
		return err
	}
	return checkRates("VMF", o.LearnRate, o.Reg, o.RegBias, o.InitStd)
}

// VMF is visual matrix factorisation for explicit ratings (Park et al., WWW 2017, as the
// survey describes it: biased MF plus VBPR's visual term), learnt by online SGD.
//
// Rows: user [b_u, p_u(K), θ_u(K')], item [b_i, q_i(K)], global [μ, E (K'×F, row-major)].
// With f_i = FeatureScale·x_i (x_i = Example.ItemFeat; nil: zeros),
//
//	r̂(u,i) = μ + b_u + b_i + p_u·q_i + θ_u·(E·f_i).
//
// Each Step is one gradient-descent step, lr·∇, on
//
//	L = w/2·(r̂(u,i) − y)² + Reg/2·(‖p_u‖² + ‖q_i‖² + ‖θ_u‖²) + RegBias/2·(b_u² + b_i²)
//	    + RegVisual/2·‖E‖²
//
// with w = ex.Weight, y = ex.Value, the residual in the gradient clipped to ±MaxError and
// every gradient taken at the old values; E is updated by every step (see visual.go). Step
// returns w/2·(r̂ − y)² before the step (unclipped), clamped to the float32 range. The
// overflow policy is OnlineVBPR's.
type VMF struct {
	opts                     VMFOptions
	k, k2, f                 int
	lr, reg, regB, regE, max float64
	vk                       visualKernel
}

// NewVMF returns a VMF. It panics when opts.Validate fails.
func NewVMF(opts VMFOptions) *VMF {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &VMF{opts: opts, k: opts.Factors, k2: opts.VisualFactors, f: opts.FeatureDim,
		lr: float64(opts.LearnRate), reg: float64(opts.Reg), regB: float64(opts.RegBias),
		regE: float64(opts.RegVisual), max: float64(opts.MaxError),
		vk: newVisualKernel(opts.VisualFactors, opts.FeatureDim, opts.FeatureScale)}
}

// Options returns the options the model was built with.
func (m *VMF) Options() VMFOptions { return m.opts }

// Name is "vmf".
func (m *VMF) Name() string { return "vmf" }

// UserDim is 1+K+K'.
func (m *VMF) UserDim() int { return 1 + m.k + m.k2 }

// ItemDim is K+1.
func (m *VMF) ItemDim() int { return m.k + 1 }

// GlobalDim is 1+K'·F.
func (m *VMF) GlobalDim() int { return 1 + m.k2*m.f }

// FeatureDim is F.
func (m *VMF) FeatureDim() int { return m.f }

// NeedsNegative is false: VMF regresses on ratings.
func (m *VMF) NeedsNegative() bool { return false }

// InitUser sets b_u to 0 and draws p_u and θ_u from N(0, InitStd²).
func (m *VMF) InitUser(row []float32, rng *rand.Rand) {
	row[0] = 0
	for k := 1; k < len(row); k++ {
		row[k] = float32(rng.NormFloat64()) * m.opts.InitStd
	}
}

func (m *VMF) latent(user, item, global []float32) float64 {
	k := m.k
	d := float64(dot(user[1:k+1], item[1:k+1]))
	if math.IsInf(d, 0) || math.IsNaN(d) {
		d = dot64(user[1:k+1], item[1:k+1])
	}
	s := d + float64(user[0]) + float64(item[0])
	if len(global) > 0 {
		s += float64(global[0])
	}
	return s
}

// Score returns the prediction for an item with all-zero features: μ + b_u + b_i + p_u·q_i
// (μ = 0 when global is empty).
func (m *VMF) Score(user, item, global []float32) float32 {
	return clamp32(m.latent(user, item, global), scoreLimit)
}

// ScoreFeatures returns r̂(u,i) for an item with raw features feat (nil: zeros).
func (m *VMF) ScoreFeatures(user, item, global, feat []float32) float32 {
	s := m.latent(user, item, global)
	if len(global) > 0 {
		s += m.vk.visualScore(global[1:], user[1+m.k:], feat)
	}
	return clamp32(s, scoreLimit)
}

// FeatureWeights writes FeatureScale·Eᵀθ_u.
func (m *VMF) FeatureWeights(dst, user, global []float32) {
	m.vk.weights(dst, global[1:], user[1+m.k:])
}

// ServeDim is K+K'+2: [μ + b_u, 1, p_u, θ_u] · [1, b_i, q_i, E·f_i].
func (m *VMF) ServeDim() int { return m.k + m.k2 + 2 }

// UserVector writes [μ + b_u, 1, p_u, θ_u].
func (m *VMF) UserVector(dst, user, global []float32) {
	dst[0] = user[0]
	if len(global) > 0 {
		dst[0] += global[0]
	}
	dst[1] = 1
	copy(dst[2:], user[1:1+m.k+m.k2])
}

// ItemVector writes [1, b_i, q_i, E·f_i], f_i the scaled features (zeros for nil).
func (m *VMF) ItemVector(dst, item, global, features []float32) {
	dst[0] = 1
	copy(dst[1:], item[:m.k+1])
	m.vk.projectItem(dst[m.k+2:m.k+m.k2+2], global[1:], features)
}

// Step applies one SGD step; see the type's documentation. An example whose Weight or
// Value is NaN or ±Inf changes nothing and returns 0. Rows must have the model's widths
// (the global row included) and non-nil features length F; Step panics otherwise.
func (m *VMF) Step(ex *Example) float32 {
	w, y := float64(ex.Weight), float64(ex.Value)
	if !finite64(w) || !finite64(y) {
		return 0
	}
	k, k2 := m.k, m.k2
	u, i := ex.User[:1+k+k2], ex.Item[:k+1]
	p, theta, q := u[1:1+k], u[1+k:], i[1:]
	g := ex.Global[:1+k2*m.f]
	W := g[1:]

	d32, n2 := dotNorm(p, q)
	d := float64(d32)
	slow := !(n2 < normLimit)
	if slow {
		d = dot64(p, q)
	}
	hasD := m.vk.diff(ex.ItemFeat, nil)
	fastW := true
	var vis float64
	if hasD {
		fastW = m.vk.project(W)
		for r := 0; r < k2; r++ {
			vis += float64(theta[r]) * m.vk.proj[r]
		}
	}
	mu, bu, bi := float64(g[0]), float64(u[0]), float64(i[0])
	e := mu + bu + bi + d + vis - y
	loss := 0.5 * w * e * e
	gr := w * clip(e, m.max) // dL/dr̂
	c := m.lr * gr

	m.vk.update(W, 1-m.lr*m.regE, -c, theta, hasD, fastW) // reads the old θ_u
	a := 1 - m.lr*m.reg
	for r := range theta {
		pr := 0.0
		if hasD {
			pr = m.vk.proj[r]
		}
		theta[r] = clampParam(a*float64(theta[r]) - c*pr)
	}
	g[0] = clampParam(mu - c)
	u[0] = clampParam(bu - m.lr*(gr+m.regB*bu))
	i[0] = clampParam(bi - m.lr*(gr+m.regB*bi))
	if !slow && fastOK(n2, a, c, 0) {
		update2(p, q, float32(a), ftz(c))
	} else {
		update2Safe(p, q, a, c)
	}
	return clamp32(loss, math.MaxFloat32)
}
