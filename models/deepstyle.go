package models

import (
	"fmt"
	"math"
	"math/rand/v2"
)

var (
	_ Visual       = (*DeepStyle)(nil)
	_ Servable     = (*DeepStyle)(nil)
	_ ItemMetadata = (*DeepStyle)(nil)
)

// CategoryKey is the item metadata key whose value is an item's category (DeepStyle).
const CategoryKey = "category"

// DeepStyleOptions configure a DeepStyle. DefaultDeepStyleOptions gives the defaults.
type DeepStyleOptions struct {
	Factors      int     // K: γ_u, γ_i, the rows of E and the category latents l_c
	FeatureDim   int     // F, the length of the item features
	FeatureScale float32 // features are multiplied by it before use
	// Categories is the number of category latents C. Category 0 is "none" (an item without
	// a category, or one first seen through an interaction); a named category hashes to
	// 1 + FNV-1a(name) mod (C−1), so that updaters agree without coordination. Different
	// names may share a latent when C−1 is smaller than their number. 1 gives every item the
	// one category: the fallback for data without categories.
	Categories  int
	LearnRate   float32 // SGD step size
	Reg         float32 // L2 strength on γ_u, γ_i, γ_j
	RegCategory float32 // L2 strength on the category latents l_ci, l_cj
	RegVisual   float32 // L2 strength on E
	InitStd     float32 // standard deviation of a fresh user's γ_u
}

// DefaultDeepStyleOptions returns K=64, F=1280, FeatureScale 1/27, 32 categories, learning
// rate 0.05, Reg 0.001, RegCategory 0.001, RegVisual 1e-5 and InitStd 0.1 (online VBPR's
// values).
func DefaultDeepStyleOptions() DeepStyleOptions {
	return DeepStyleOptions{Factors: 64, FeatureDim: 1280, FeatureScale: PosterFeatureScale, Categories: 32,
		LearnRate: 0.05, Reg: 0.001, RegCategory: 0.001, RegVisual: 1e-5, InitStd: 0.1}
}

// Validate reports options that NewDeepStyle would refuse.
func (o DeepStyleOptions) Validate() error {
	if o.Factors < 1 {
		return fmt.Errorf("models: DeepStyle factors %d < 1", o.Factors)
	}
	if o.Categories < 1 || o.Categories > 1<<20 {
		return fmt.Errorf("models: DeepStyle categories %d not in [1, 2^20]", o.Categories)
	}
	if err := checkVisual("DeepStyle", o.Factors, o.FeatureDim, o.FeatureScale, o.RegVisual); err != nil {
		return err
	}
	return checkRates("DeepStyle", o.LearnRate, o.Reg, o.RegCategory, o.InitStd)
}

// DeepStyle learns user preferences for style (Liu et al., SIGIR 2017) by online SGD with
// the BPR criterion. An item is represented by its visual projection minus the latent of its
// category, plus its own latent factors:
//
//	s(u,i) = γ_u·(E·f_i − l_{c(i)} + γ_i)
//
// with f_i = FeatureScale·x_i (x_i = Example.ItemFeat; nil: zeros). Subtracting the category
// latent leaves in E·f_i what is style rather than category. As in the paper, there is no
// item bias.
//
// Rows: user [γ_u(K)], item [c(i), γ_i(K)], global [E (K×F, row-major), L (C×K)]. The first
// value of an item row is its category index, set from item metadata by SetItemMetadata and
// never changed by Step; a value outside [0, C) reads as category 0.
//
// Each Step takes the observed item i and the sampled negative j, x = s(u,i) − s(u,j), and
// makes one gradient-descent step, lr·∇, on
//
//	L = −w·ln σ(x) + Reg/2·(‖γ_u‖² + ‖γ_i‖² + ‖γ_j‖²) + RegCategory/2·(‖l_ci‖² + ‖l_cj‖²)
//	    + RegVisual/2·‖E‖²
//
// every gradient taken at the old values (when c(i) = c(j) the data terms of l cancel and
// its decay counts twice). E is updated by every step (see visual.go). The latent vectors
// are updated in float64 and clamped to ±1e15; E follows OnlineVBPR's overflow policy.
type DeepStyle struct {
	opts                DeepStyleOptions
	k, f, c             int
	lr, reg, regC, regE float64
	vk                  visualKernel
}

// NewDeepStyle returns a DeepStyle. It panics when opts.Validate fails.
func NewDeepStyle(opts DeepStyleOptions) *DeepStyle {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	return &DeepStyle{opts: opts, k: opts.Factors, f: opts.FeatureDim, c: opts.Categories,
		lr: float64(opts.LearnRate), reg: float64(opts.Reg), regC: float64(opts.RegCategory), regE: float64(opts.RegVisual),
		vk: newVisualKernel(opts.Factors, opts.FeatureDim, opts.FeatureScale)}
}

// Options returns the options the model was built with.
func (m *DeepStyle) Options() DeepStyleOptions { return m.opts }

// Name is "deepstyle".
func (m *DeepStyle) Name() string { return "deepstyle" }

// UserDim is K.
func (m *DeepStyle) UserDim() int { return m.k }

// ItemDim is K+1.
func (m *DeepStyle) ItemDim() int { return m.k + 1 }

// GlobalDim is K·F + C·K.
func (m *DeepStyle) GlobalDim() int { return m.k*m.f + m.c*m.k }

// FeatureDim is F.
func (m *DeepStyle) FeatureDim() int { return m.f }

// NeedsNegative is true.
func (m *DeepStyle) NeedsNegative() bool { return true }

// InitUser draws γ_u from N(0, InitStd²).
func (m *DeepStyle) InitUser(row []float32, rng *rand.Rand) {
	for k := range row {
		row[k] = float32(rng.NormFloat64()) * m.opts.InitStd
	}
}

// Category returns the category index of a category name (see DeepStyleOptions.Categories).
func (m *DeepStyle) Category(name string) int {
	if name == "" || m.c == 1 {
		return 0
	}
	return 1 + int(fnv1a(name)%uint64(m.c-1))
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// SetItemMetadata writes the category of meta[CategoryKey] into the item row.
func (m *DeepStyle) SetItemMetadata(row []float32, meta map[string]string) {
	row[0] = float32(m.Category(meta[CategoryKey]))
}

// category returns the latent l_c of an item row's category.
func (m *DeepStyle) category(item, global []float32) []float32 {
	c := 0
	if v := item[0]; v >= 0 && v < float32(m.c) {
		c = int(v)
	}
	off := m.k*m.f + c*m.k
	return global[off : off+m.k : off+m.k]
}

// latent returns γ_u·(γ_i − l_c) in float64.
func (m *DeepStyle) latent(user, item, global []float32) float64 {
	l := m.category(item, global)
	gi := item[1 : m.k+1]
	var s float64
	for r, v := range user[:m.k] {
		s += float64(v) * (float64(gi[r]) - float64(l[r]))
	}
	return s
}

// Score returns the score of an item with all-zero features: γ_u·(γ_i − l_c(i)).
func (m *DeepStyle) Score(user, item, global []float32) float32 {
	return clamp32(m.latent(user, item, global), scoreLimit)
}

// ScoreFeatures returns s(u,i) for an item with raw features feat (nil: zeros).
func (m *DeepStyle) ScoreFeatures(user, item, global, feat []float32) float32 {
	return clamp32(m.latent(user, item, global)+m.vk.visualScore(global, user[:m.k], feat), scoreLimit)
}

// FeatureWeights writes FeatureScale·Eᵀγ_u.
func (m *DeepStyle) FeatureWeights(dst, user, global []float32) {
	m.vk.weights(dst, global, user[:m.k])
}

// ServeDim is K: γ_u · (E·f_i − l_c(i) + γ_i).
func (m *DeepStyle) ServeDim() int { return m.k }

// UserVector writes γ_u.
func (m *DeepStyle) UserVector(dst, user, _ []float32) { copy(dst, user[:m.k]) }

// ItemVector writes E·f_i − l_c(i) + γ_i, f_i the scaled features (zeros for nil).
func (m *DeepStyle) ItemVector(dst, item, global, features []float32) {
	m.vk.projectItem(dst[:m.k], global, features)
	l := m.category(item, global)
	for r := range dst[:m.k] {
		dst[r] = clamp32(float64(dst[r])-float64(l[r])+float64(item[1+r]), math.MaxFloat32)
	}
}

// Step applies one SGD step; see the type's documentation. A nil ex.Neg, a negative that is
// the same row as ex.Item, or a NaN or infinite Weight changes nothing and returns 0. Rows
// must have the model's widths and non-nil features length F; Step panics otherwise.
func (m *DeepStyle) Step(ex *Example) float32 {
	w := float64(ex.Weight)
	if len(ex.Neg) == 0 || sameRow(ex.Item, ex.Neg) || !finite64(w) {
		return 0
	}
	k := m.k
	gu, i, j := ex.User[:k], ex.Item[:k+1], ex.Neg[:k+1]
	gi, gj := i[1:], j[1:]
	g := ex.Global[:m.GlobalDim()]
	W := g[:k*m.f]
	li, lj := m.category(i, g), m.category(j, g)
	same := &li[0] == &lj[0]

	hasD := m.vk.diff(ex.ItemFeat, ex.NegFeat)
	fastW := true
	if hasD {
		fastW = m.vk.project(W)
	}
	// proj becomes the gradient of x with respect to γ_u: E·d − l_ci + l_cj + γ_i − γ_j.
	var x float64
	for r := 0; r < k; r++ {
		p := 0.0
		if hasD {
			p = m.vk.proj[r]
		}
		p += float64(lj[r]) - float64(li[r]) + float64(gi[r]) - float64(gj[r])
		m.vk.proj[r] = p
		x += float64(gu[r]) * p
	}
	loss, sg := softplusNeg(x)
	c := m.lr * w * sg

	m.vk.update(W, 1-m.lr*m.regE, c, gu, hasD, fastW) // reads the old γ_u
	a, aC := 1-m.lr*m.reg, 1-m.lr*m.regC
	for r := 0; r < k; r++ {
		pu := float64(gu[r])
		if same {
			li[r] = clampParam((1 - 2*m.lr*m.regC) * float64(li[r]))
		} else {
			li[r] = clampParam(aC*float64(li[r]) - c*pu)
			lj[r] = clampParam(aC*float64(lj[r]) + c*pu)
		}
		bi, bj := float64(gi[r]), float64(gj[r])
		gu[r] = clampParam(a*pu + c*m.vk.proj[r])
		gi[r] = clampParam(a*bi + c*pu)
		gj[r] = clampParam(a*bj - c*pu)
	}
	return clamp32(w*loss, math.MaxFloat32)
}
