package nn

import (
	"math"
	"runtime"
)

// Optimizer applies the gradients accumulated in its parameters and clears them.
//
// Contract: Step reads each parameter's Grad, updates Value in place, then clears the
// gradient (Param.ZeroGrad). A parameter with no gradient since the last step is left
// alone (no weight decay, no momentum drift). A parameter whose gradient is sparse (it
// came only through Gather) is updated only in its touched rows: the "lazy" variants of
// momentum, Adagrad and Adam, whose state for untouched rows stands still. An optimizer is
// used by one goroutine; large dense updates are split across Workers goroutines, element
// ranges that do not change results.
type Optimizer interface {
	Step()
}

// optimParallelMin is the number of elements above which an update uses several workers.
const optimParallelMin = 1 << 15

// updater applies an optimizer's rule to a run of parameter i's elements starting at
// element off: v are the values, g the gradients.
type updater interface {
	update(i, off int, v, g []float32)
}

// forEachGrad applies u to the parts of parameter i (p) that hold gradient: the whole
// tensor when dense (split into element ranges across workers when large), or each
// touched row when sparse.
func forEachGrad(p *Param, i, workers int, u updater) {
	if rows, sparse := p.SparseRows(); sparse {
		w := p.rowLen()
		for _, r := range rows {
			off := int(r) * w
			u.update(i, off, p.Value.Data[off:off+w], p.Grad.Data[off:off+w])
		}
		return
	}
	n := p.Value.Len()
	if workers <= 1 || n < 2*optimParallelMin {
		u.update(i, 0, p.Value.Data, p.Grad.Data)
		return
	}
	parallelFor(workers, n, optimParallelMin, func(_, lo, hi int) {
		u.update(i, lo, p.Value.Data[lo:hi], p.Grad.Data[lo:hi])
	})
}

func defaultWorkers(w int) int {
	if w <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return w
}

// SGD is stochastic gradient descent with optional momentum and L2 weight decay:
// g' = g + WeightDecay·p; with Momentum μ > 0, v = μ·v + g' and p −= LR·v; otherwise
// p −= LR·g'.
type SGD struct {
	LR, Momentum, WeightDecay float32
	// Workers bounds the goroutines of one step; 0 means GOMAXPROCS.
	Workers int

	params []*Param
	vel    [][]float32
}

// NewSGD returns SGD over params.
func NewSGD(params []*Param, lr, momentum float32) *SGD {
	return &SGD{LR: lr, Momentum: momentum, params: params, vel: make([][]float32, len(params))}
}

// Step implements Optimizer.
func (o *SGD) Step() {
	mu := o.Momentum
	for i, p := range o.params {
		if !p.HasGrad() {
			continue
		}
		if mu != 0 && o.vel[i] == nil {
			o.vel[i] = make([]float32, p.Value.Len())
		}
		forEachGrad(p, i, defaultWorkers(o.Workers), o)
		p.ZeroGrad()
	}
}

func (o *SGD) update(i, off int, v, g []float32) {
	lr, mu, wd := o.LR, o.Momentum, o.WeightDecay
	g = g[:len(v)]
	var vel []float32
	if mu != 0 {
		vel = o.vel[i][off : off+len(v)]
	}
	for j, gj := range g {
		gj += wd * v[j]
		if mu != 0 {
			m := mu*vel[j] + gj
			vel[j] = m
			gj = m
		}
		v[j] -= lr * gj
	}
}

// Adagrad scales each coordinate's step by the root of its summed squared gradients:
// h += g², p −= LR·g/(√h + Eps).
type Adagrad struct {
	LR, Eps float32
	// Workers bounds the goroutines of one step; 0 means GOMAXPROCS.
	Workers int

	params []*Param
	acc    [][]float32
}

// NewAdagrad returns Adagrad over params with Eps 1e-10.
func NewAdagrad(params []*Param, lr float32) *Adagrad {
	return &Adagrad{LR: lr, Eps: 1e-10, params: params, acc: make([][]float32, len(params))}
}

// Step implements Optimizer.
func (o *Adagrad) Step() {
	for i, p := range o.params {
		if !p.HasGrad() {
			continue
		}
		if o.acc[i] == nil {
			o.acc[i] = make([]float32, p.Value.Len())
		}
		forEachGrad(p, i, defaultWorkers(o.Workers), o)
		p.ZeroGrad()
	}
}

func (o *Adagrad) update(i, off int, v, g []float32) {
	lr, eps := o.LR, o.Eps
	h := o.acc[i][off : off+len(v)]
	g = g[:len(v)]
	for j, gj := range g {
		h[j] += gj * gj
		v[j] -= lr * gj / (float32(math.Sqrt(float64(h[j]))) + eps)
	}
}

// AdamOptions configure Adam.
type AdamOptions struct {
	LR, Beta1, Beta2, Eps float32
	// WeightDecay is decoupled (AdamW, Loshchilov & Hutter): each step first shrinks
	// p by LR·WeightDecay·p, then applies the Adam update; it never enters the moments.
	WeightDecay float32
	// Workers bounds the goroutines of one step; 0 means GOMAXPROCS.
	Workers int
}

// DefaultAdamOptions returns LR 1e-3, β 0.9 and 0.999, ε 1e-8, no weight decay.
func DefaultAdamOptions() AdamOptions {
	return AdamOptions{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Adam is Adam (Kingma & Ba) with bias correction and decoupled weight decay:
//
//	p −= LR·WeightDecay·p
//	m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//	p −= LR·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
//
// t counts steps of the optimizer (not of each parameter), also for sparse rows, which are
// updated lazily (only when touched).
type Adam struct {
	AdamOptions

	params []*Param
	m, v   [][]float32
	t      int
	c1, c2 float32 // bias corrections of the current step
}

// NewAdam returns Adam over params.
func NewAdam(params []*Param, opt AdamOptions) *Adam {
	return &Adam{AdamOptions: opt, params: params, m: make([][]float32, len(params)), v: make([][]float32, len(params))}
}

// Steps returns the number of steps taken.
func (o *Adam) Steps() int { return o.t }

// Step implements Optimizer.
func (o *Adam) Step() {
	o.t++
	o.c1 = float32(1 / (1 - math.Pow(float64(o.Beta1), float64(o.t))))
	o.c2 = float32(1 / (1 - math.Pow(float64(o.Beta2), float64(o.t))))
	for i, p := range o.params {
		if !p.HasGrad() {
			continue
		}
		if o.m[i] == nil {
			o.m[i] = make([]float32, p.Value.Len())
			o.v[i] = make([]float32, p.Value.Len())
		}
		forEachGrad(p, i, defaultWorkers(o.Workers), o)
		p.ZeroGrad()
	}
}

func (o *Adam) update(i, off int, v, g []float32) {
	n := len(v)
	adamKernel(v, g, o.m[i][off:off+n], o.v[i][off:off+n], o.LR, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.c1, o.c2)
}

func adamKernel(p, g, m, v []float32, lr, b1, b2, eps, wd, c1, c2 float32) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for j, gj := range g {
		pj := p[j]
		if wd != 0 {
			pj -= lr * wd * pj
		}
		mj := b1*m[j] + (1-b1)*gj
		vj := b2*v[j] + (1-b2)*gj*gj
		m[j], v[j] = mj, vj
		p[j] = pj - lr*(mj*c1)/(float32(math.Sqrt(float64(vj*c2)))+eps)
	}
}

// ClipGradNorm scales the gradients of params so that their joint L2 norm is at most
// maxNorm, and returns the norm before clipping (computed in float64).
func ClipGradNorm(params []*Param, maxNorm float64) float64 {
	var ss sumSquares
	for i, p := range params {
		if p.HasGrad() {
			forEachGrad(p, i, 1, &ss)
		}
	}
	norm := math.Sqrt(float64(ss))
	if norm > maxNorm && norm > 0 {
		sc := scaleGrad(maxNorm / norm)
		for i, p := range params {
			if p.HasGrad() {
				forEachGrad(p, i, 1, sc)
			}
		}
	}
	return norm
}

type sumSquares float64

func (s *sumSquares) update(_, _ int, _, g []float32) {
	for _, v := range g {
		*s += sumSquares(float64(v) * float64(v))
	}
}

type scaleGrad float64

func (s scaleGrad) update(_, _ int, _, g []float32) {
	f := float32(s)
	for j := range g {
		g[j] *= f
	}
}
