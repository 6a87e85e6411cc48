package models

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas32"
)

// The shared part of the online visual models (VBPR, VMF, DeepStyle): a projection matrix W
// (rows × F, row-major, in the global row) that maps an item's image features f to rows
// values, and the per-step arithmetic on it.
//
// Staleness: none. Each step reads the current W, projects the feature difference of its
// two items (or one item's features) through it and updates W at once, so the online step is
// exact per-event SGD and replaying a partition gives the same parameters whatever the flush
// cadence or restarts. The price is four passes over W per step: the norm check of the
// overflow policy and the weight decay and rank-one gradient update (Saxpy, Sger) run in
// gonum's BLAS (amd64 assembly); the projection W·d runs in the package's own unrolled dot
// product, because the assembly dot product sums in an order that depends on the slice's
// memory alignment, and a replay into freshly allocated rows must give the same bits (the
// element-wise axpy does not depend on it). See BenchmarkOnlineVBPRStep and
// docs/benchmarks.md. W is a shared row: the updater merges its changes into the store
// as float64 deltas at each flush like every item row, so with several updaters one
// updater's view of the others' changes to W is at most one flush old.
//
// Features are multiplied by the model's FeatureScale before use. An item with no features
// (nil) counts as all zeros: it is scored by its latent factors alone, and its steps move W
// only through the other item's features and the weight decay.

// visualKernel holds the scratch buffers of one model's visual steps; a model is used by
// one goroutine, so one set suffices.
type visualKernel struct {
	rows, f int
	scale   float64
	d       []float32 // scale·(f_i − f_j), or scale·f_i
	proj    []float64 // W·d, one value per row
	coef    []float32 // per-row coefficients of the rank-one update
}

func newVisualKernel(rows, f int, scale float32) visualKernel {
	return visualKernel{rows: rows, f: f, scale: float64(scale), d: make([]float32, f), proj: make([]float64, rows),
		coef: make([]float32, rows)}
}

func vec(v []float32) blas32.Vector { return blas32.Vector{N: len(v), Inc: 1, Data: v} }

// checkVisual reports visual options that a model would refuse.
func checkVisual(model string, visualFactors, featureDim int, scale, regVisual float32) error {
	switch {
	case visualFactors < 1:
		return fmt.Errorf("models: %s visual factors %d < 1", model, visualFactors)
	case featureDim < 1:
		return fmt.Errorf("models: %s feature dimension %d < 1", model, featureDim)
	case !(scale > 0) || math.IsInf(float64(scale), 0):
		return fmt.Errorf("models: %s feature scale %v is not a finite positive number", model, scale)
	case !(regVisual >= 0) || math.IsInf(float64(regVisual), 0):
		return fmt.Errorf("models: %s visual reg %v is not a finite non-negative number", model, regVisual)
	}
	return nil
}

// diff sets d = scale·(fi − fj), each value computed in float64 and clamped to ±paramLimit
// (finite features can differ by more than float32 holds). nil stands for zeros. It returns
// false when d is all zeros (both nil, or equal features), so that the projection can be
// skipped.
func (v *visualKernel) diff(fi, fj []float32) bool {
	d, s := v.d, v.scale
	switch {
	case fi == nil && fj == nil:
		return false
	case fj == nil:
		fi = fi[:len(d)]
		for k := range d {
			d[k] = clampParam(s * float64(fi[k]))
		}
	case fi == nil:
		fj = fj[:len(d)]
		for k := range d {
			d[k] = clampParam(-s * float64(fj[k]))
		}
	default:
		fi, fj = fi[:len(d)], fj[:len(d)]
		for k := range d {
			d[k] = clampParam(s * (float64(fi[k]) - float64(fj[k])))
		}
	}
	for _, x := range d {
		if x != 0 {
			return true
		}
	}
	return false
}

// project sets proj[r] = W_r·d and returns whether the float32 update of W is safe: the
// summed squares of W and of d stay below normLimit (an overflow makes a sum +Inf, which
// fails the test too). Then no product or sum of the projection or the update can
// overflow. It falls back to float64 dot products when they do not. (The norm sums come
// from the assembly dot product, whose rounding depends on alignment; that can only flip
// the choice of path when a sum lies within float32 rounding of 1e30.)
func (v *visualKernel) project(w []float32) (fast bool) {
	f := v.f
	w = w[:v.rows*f]
	if blas32.Dot(vec(w), vec(w)) < normLimit && blas32.Dot(vec(v.d), vec(v.d)) < normLimit {
		for r := 0; r < v.rows; r++ {
			v.proj[r] = float64(dot(w[r*f:(r+1)*f], v.d))
		}
		return true
	}
	for r := 0; r < v.rows; r++ {
		v.proj[r] = dot64(w[r*f:(r+1)*f], v.d)
	}
	return false
}

// update applies W_r ← a·W_r + coef(r)·d to every row, where coef(r) = c·u[r] for r <
// len(u) and c for the rows beyond (VBPR's β' row, whose user coefficient is the constant 1).
// With hasD false (d all zeros) only the decay a applies. fast (from project; true without
// d) selects float32 BLAS: the decay as W += (a−1)·W (Saxpy), then the rank-one update
// W += coef·dᵀ (Sger); it needs |a| ≤ 1 and every |coef| ≤ coefLimit, so that nothing can
// overflow. Otherwise the float64 loop runs and clamps what it writes to ±paramLimit.
func (v *visualKernel) update(w []float32, a, c float64, u []float32, hasD, fast bool) {
	f := v.f
	w = w[:v.rows*f]
	for r := range v.coef {
		b := c
		if r < len(u) {
			b = c * float64(u[r])
		}
		if !hasD {
			b = 0
		}
		if !(math.Abs(b) <= coefLimit) {
			fast = false
		}
		v.coef[r] = ftz(b)
	}
	if fast && math.Abs(a) <= 1 {
		if a != 1 {
			blas32.Axpy(float32(a-1), vec(w), vec(w))
		}
		if hasD {
			blas32.Ger(1, vec(v.coef), vec(v.d), blas32.General{Rows: v.rows, Cols: f, Stride: f, Data: w})
		}
		return
	}
	for r := 0; r < v.rows; r++ {
		b := c
		if r < len(u) {
			b = c * float64(u[r])
		}
		if !hasD {
			b = 0
		}
		axpbySafe(w[r*f:(r+1)*f], v.d, a, b)
	}
}

// axpbySafe is axpby in float64 with every written value clamped to ±paramLimit.
func axpbySafe(w, d []float32, a, b float64) {
	d = d[:len(w)]
	for k := range w {
		w[k] = clampParam(a*float64(w[k]) + b*float64(d[k]))
	}
}

// weights sets dst (len F) = scale·Σ_r coef(r)·W_r, coef as in update: the vector whose dot
// product with raw features f is the visual score term. Computed in float64, clamped to the
// float32 range.
func (v *visualKernel) weights(dst, w, u []float32) {
	f := v.f
	dst = dst[:f]
	for k := range dst {
		var s float64
		for r := 0; r < v.rows; r++ {
			c := 1.0
			if r < len(u) {
				c = float64(u[r])
			}
			s += c * float64(w[r*f+k])
		}
		dst[k] = clamp32(v.scale*s, math.MaxFloat32)
	}
}

// visualScore returns scale·Σ_r coef(r)·(W_r·f) in float64 (0 for nil f).
func (v *visualKernel) visualScore(w, u, feat []float32) float64 {
	if feat == nil {
		return 0
	}
	f := v.f
	feat = feat[:f]
	var s float64
	for r := 0; r < v.rows; r++ {
		c := 1.0
		if r < len(u) {
			c = float64(u[r])
		}
		p := float64(dot(w[r*f:(r+1)*f], feat))
		if math.IsInf(p, 0) || math.IsNaN(p) {
			p = dot64(w[r*f:(r+1)*f], feat)
		}
		s += c * p
	}
	return v.scale * s
}

// projectItem writes scale·W_r·f for each row r into dst (zeros for nil f), clamped to the
// float32 range.
func (v *visualKernel) projectItem(dst, w, feat []float32) {
	f := v.f
	for r := 0; r < v.rows; r++ {
		if feat == nil {
			dst[r] = 0
			continue
		}
		p := float64(dot(w[r*f:(r+1)*f], feat[:f]))
		if math.IsInf(p, 0) || math.IsNaN(p) {
			p = dot64(w[r*f:(r+1)*f], feat[:f])
		}
		dst[r] = clamp32(v.scale*p, math.MaxFloat32)
	}
}
