package nn

import "fmt"

// Reductions. Whole-tensor sums accumulate in float64, in element order; axis sums add
// whole slices in order of the reduced index. Both are independent of the worker count.

// Sum returns the sum of all elements, shape [1].
func (t *Tape) Sum(a *Node) *Node {
	var s float64
	for _, v := range a.Value.Data {
		s += float64(v)
	}
	out := t.empty(1)
	out.Data[0] = float32(s)
	r := t.op(out, backSumAll, a, nil, nil)
	r.farg = 1
	return r
}

// Mean returns the mean of all elements, shape [1].
func (t *Tape) Mean(a *Node) *Node {
	n := a.Value.Len()
	var s float64
	for _, v := range a.Value.Data {
		s += float64(v)
	}
	out := t.empty(1)
	out.Data[0] = float32(s / float64(n))
	r := t.op(out, backSumAll, a, nil, nil)
	r.farg = 1 / float32(n)
	return r
}

func backSumAll(t *Tape, r *Node) {
	ga := t.grad(r.a).Data
	g := r.Grad.Data[0] * r.farg
	for i := range ga {
		ga[i] += g
	}
}

// SumAxis sums over one axis (negative counts from the end) and removes it; a result with
// no dimensions left has shape [1].
func (t *Tape) SumAxis(a *Node, axis int) *Node { return t.reduceAxis(a, axis, false) }

// MeanAxis averages over one axis and removes it.
func (t *Tape) MeanAxis(a *Node, axis int) *Node { return t.reduceAxis(a, axis, true) }

// splitAxis views shape as [outer, n, inner] around axis.
func splitAxis(op string, shape []int, axis int) (outer, n, inner, ax int) {
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis >= len(shape) {
		panic(fmt.Sprintf("nn: %s: axis %d out of range for shape %v", op, axis, shape))
	}
	return shapeLen(shape[:axis]), shape[axis], shapeLen(shape[axis+1:]), axis
}

func (t *Tape) reduceAxis(a *Node, axis int, mean bool) *Node {
	outer, n, inner, ax := splitAxis("SumAxis", a.Value.Shape, axis)
	var shape [maxDims]int
	d := copy(shape[:], a.Value.Shape[:ax])
	d += copy(shape[d:], a.Value.Shape[ax+1:])
	if d == 0 {
		shape[0], d = 1, 1
	}
	out := t.zeros(shape[:d]...)
	x, y := a.Value.Data, out.Data
	scale := float32(1)
	if mean && n > 0 {
		scale = 1 / float32(n)
	}
	for o := 0; o < outer; o++ {
		dst := y[o*inner : (o+1)*inner]
		for k := 0; k < n; k++ {
			src := x[(o*n+k)*inner : (o*n+k+1)*inner]
			for i, v := range src {
				dst[i] += v
			}
		}
		if mean {
			for i := range dst {
				dst[i] *= scale
			}
		}
	}
	r := t.op(out, backReduceAxis, a, nil, nil)
	r.iarg = [6]int{outer, n, inner}
	r.farg = scale
	return r
}

func backReduceAxis(t *Tape, r *Node) {
	outer, n, inner := r.iarg[0], r.iarg[1], r.iarg[2]
	ga, g := t.grad(r.a).Data, r.Grad.Data
	s := r.farg
	for o := 0; o < outer; o++ {
		src := g[o*inner : (o+1)*inner]
		for k := 0; k < n; k++ {
			dst := ga[(o*n+k)*inner : (o*n+k+1)*inner]
			for i, v := range src {
				dst[i] += s * v
			}
		}
	}
}
