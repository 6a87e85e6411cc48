package nn

import "math"

// Elementwise unary ops. Each computes in float32 except where a float64 detour keeps it
// accurate (exp, log and their compositions go through math's float64 functions). Large
// inputs are split across the Tape's workers; every element is independent, so the split
// does not change results.

type unaryKind uint8

const (
	unSigmoid unaryKind = iota
	unReLU
	unTanh
	unSoftplus
	unLogSigmoid
	unExp
	unLog
	unNeg
	unSquare
	unSqrt
	unAbs
)

// unaryParallelMin is the number of elements above which unary ops use several workers.
const unaryParallelMin = 1 << 15

// Sigmoid returns 1/(1+e^−a), computed without overflow for any a.
func (t *Tape) Sigmoid(a *Node) *Node { return t.unary(unSigmoid, a) }

// ReLU returns max(a, 0); its gradient at 0 is 0.
func (t *Tape) ReLU(a *Node) *Node { return t.unary(unReLU, a) }

// Tanh returns tanh(a).
func (t *Tape) Tanh(a *Node) *Node { return t.unary(unTanh, a) }

// Softplus returns log(1+e^a), computed stably as max(a,0) + log1p(e^−|a|).
func (t *Tape) Softplus(a *Node) *Node { return t.unary(unSoftplus, a) }

// LogSigmoid returns log σ(a) = −softplus(−a), stable for large |a| (the BPR loss).
func (t *Tape) LogSigmoid(a *Node) *Node { return t.unary(unLogSigmoid, a) }

// Exp returns e^a.
func (t *Tape) Exp(a *Node) *Node { return t.unary(unExp, a) }

// Log returns the natural logarithm of a (−Inf at 0, NaN below).
func (t *Tape) Log(a *Node) *Node { return t.unary(unLog, a) }

// Neg returns −a.
func (t *Tape) Neg(a *Node) *Node { return t.unary(unNeg, a) }

// Square returns a².
func (t *Tape) Square(a *Node) *Node { return t.unary(unSquare, a) }

// Sqrt returns √a; its gradient at 0 is +Inf.
func (t *Tape) Sqrt(a *Node) *Node { return t.unary(unSqrt, a) }

// Abs returns |a|; its gradient at 0 is 0.
func (t *Tape) Abs(a *Node) *Node { return t.unary(unAbs, a) }

func (t *Tape) unary(kind unaryKind, a *Node) *Node {
	out := t.empty(a.Value.Shape...)
	x, y := a.Value.Data, out.Data
	parallelFor(t.workers, len(x), unaryParallelMin, func(_, lo, hi int) {
		unaryRun(kind, y[lo:hi], x[lo:hi])
	})
	r := t.op(out, backUnary, a, nil, nil)
	r.iarg[0] = int(kind)
	return r
}

func sigmoid(x float32) float32 {
	if x >= 0 {
		return float32(1 / (1 + math.Exp(-float64(x))))
	}
	e := math.Exp(float64(x))
	return float32(e / (1 + e))
}

func softplus(x float32) float32 {
	v := float64(x)
	return float32(math.Max(v, 0) + math.Log1p(math.Exp(-math.Abs(v))))
}

func unaryRun(kind unaryKind, y, x []float32) {
	y = y[:len(x)]
	switch kind {
	case unSigmoid:
		for i, v := range x {
			y[i] = sigmoid(v)
		}
	case unReLU:
		// Branch-free: clear the value when its sign bit is set (−0 and negative NaNs
		// included). Signs of activations are unpredictable, so a branch mispredicts often.
		if n := len(x) &^ 7; useAsmGemm && n > 0 {
			reluAVX(&y[0], &x[0], n)
			x, y = x[n:], y[n:]
		}
		for i, v := range x {
			b := math.Float32bits(v)
			y[i] = math.Float32frombits(b &^ uint32(int32(b)>>31))
		}
	case unTanh:
		for i, v := range x {
			y[i] = float32(math.Tanh(float64(v)))
		}
	case unSoftplus:
		for i, v := range x {
			y[i] = softplus(v)
		}
	case unLogSigmoid:
		for i, v := range x {
			y[i] = -softplus(-v)
		}
	case unExp:
		for i, v := range x {
			y[i] = float32(math.Exp(float64(v)))
		}
	case unLog:
		for i, v := range x {
			y[i] = float32(math.Log(float64(v)))
		}
	case unNeg:
		for i, v := range x {
			y[i] = -v
		}
	case unSquare:
		for i, v := range x {
			y[i] = v * v
		}
	case unSqrt:
		for i, v := range x {
			y[i] = float32(math.Sqrt(float64(v)))
		}
	case unAbs:
		for i, v := range x {
			y[i] = float32(math.Abs(float64(v)))
		}
	}
}

func backUnary(t *Tape, r *Node) {
	kind := unaryKind(r.iarg[0])
	x, y, g := r.a.Value.Data, r.Value.Data, r.Grad.Data
	gt, fresh := t.gradFresh(r.a)
	ga := gt.Data
	parallelFor(t.workers, len(x), unaryParallelMin, func(_, lo, hi int) {
		if fresh && kind == unReLU {
			reluBackSet(ga[lo:hi], g[lo:hi], y[lo:hi])
			return
		}
		if fresh {
			clear(ga[lo:hi])
		}
		unaryBack(kind, ga[lo:hi], g[lo:hi], x[lo:hi], y[lo:hi])
	})
}

// reluBackSet is ReLU's gradient into a fresh buffer: ga = g where y ≠ 0, else +0.
func reluBackSet(ga, g, y []float32) {
	g, y = g[:len(ga)], y[:len(ga)]
	if n := len(ga) &^ 7; useAsmGemm && n > 0 {
		reluBackSetAVX(&ga[0], &g[0], &y[0], n)
		ga, g, y = ga[n:], g[n:], y[n:]
	}
	for i, gi := range g {
		m := uint32(-int32(math.Float32bits(y[i])) >> 31)
		ga[i] = math.Float32frombits(math.Float32bits(gi) & m)
	}
}

// unaryBack accumulates ga += g·f'(x), using the saved output y where it is cheaper.
func unaryBack(kind unaryKind, ga, g, x, y []float32) {
	g, x, y = g[:len(ga)], x[:len(ga)], y[:len(ga)]
	switch kind {
	case unSigmoid:
		for i, gi := range g {
			ga[i] += gi * y[i] * (1 - y[i])
		}
	case unReLU:
		// Branch-free: pass g where the output is non-zero (x > 0). The output has no sign
		// bit, so −bits is negative exactly when it is non-zero.
		if n := len(g) &^ 7; useAsmGemm && n > 0 {
			reluBackAVX(&ga[0], &g[0], &y[0], n)
			ga, g, y = ga[n:], g[n:], y[n:]
		}
		for i, gi := range g {
			m := uint32(-int32(math.Float32bits(y[i])) >> 31)
			ga[i] += math.Float32frombits(math.Float32bits(gi) & m)
		}
	case unTanh:
		for i, gi := range g {
			ga[i] += gi * (1 - y[i]*y[i])
		}
	case unSoftplus:
		for i, gi := range g {
			ga[i] += gi * sigmoid(x[i])
		}
	case unLogSigmoid:
		for i, gi := range g {
			ga[i] += gi * sigmoid(-x[i])
		}
	case unExp:
		for i, gi := range g {
			ga[i] += gi * y[i]
		}
	case unLog:
		for i, gi := range g {
			ga[i] += gi / x[i]
		}
	case unNeg:
		for i, gi := range g {
			ga[i] -= gi
		}
	case unSquare:
		for i, gi := range g {
			ga[i] += 2 * gi * x[i]
		}
	case unSqrt:
		for i, gi := range g {
			ga[i] += gi / (2 * y[i])
		}
	case unAbs:
		for i, gi := range g {
			switch {
			case x[i] > 0:
				ga[i] += gi
			case x[i] < 0:
				ga[i] -= gi
			}
		}
	}
}
