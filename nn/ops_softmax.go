package nn

import (
	"fmt"
	"math"
)

// Softmax over the last axis. Each row is shifted by its maximum before exponentiation
// and summed in float64, so large logits neither overflow nor lose the small ones.

// Softmax returns exp(a)/Σexp(a) over the last axis.
func (t *Tape) Softmax(a *Node) *Node { return t.softmax(a, nil) }

// MaskedSoftmax is Softmax restricted to the positions where mask is non-zero: masked
// positions get probability 0 and no gradient. mask must broadcast to a's shape (NumPy
// rules: a key-padding mask [B,1,1,Lk] or a causal mask [Lq,Lk] against scores
// [B,H,Lq,Lk]). A row with every position masked is all zeros. The mask is referenced,
// not copied; leave it unchanged until Backward has run.
func (t *Tape) MaskedSoftmax(a *Node, mask *Tensor) *Node { return t.softmax(a, mask) }

func (t *Tape) softmax(a *Node, mask *Tensor) *Node {
	x := a.Value
	out := t.empty(x.Shape...)
	rows, n := x.Rows(), x.Cols()
	var mrow func(r int) []float32
	if mask != nil {
		mrow = maskRows("MaskedSoftmax", x.Shape, mask, t)
	}
	parallelFor(t.workers, rows, max(1, 4096/max(1, n)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			var m []float32
			if mrow != nil {
				m = mrow(r)
			}
			softmaxRow(out.Data[r*n:(r+1)*n], x.Data[r*n:(r+1)*n], m)
		}
	})
	return t.op(out, backSoftmax, a, nil, nil)
}

// maskRows returns a function giving, for row r of a tensor of the given shape, the
// matching row of mask broadcast to that shape. The last dimension of mask must equal
// the shape's or be 1.
func maskRows(op string, shape []int, mask *Tensor, t *Tape) func(r int) []float32 {
	p := newBcast(op, shape, mask.Shape)
	if !sameShape(p.outShape(), shape) {
		panic(fmt.Sprintf("nn: %s: mask %v does not broadcast to %v", op, mask.Shape, shape))
	}
	n := shape[len(shape)-1]
	rows := shapeLen(shape) / max(1, n)
	// Precompute each row's mask, expanded to n elements when the mask's last axis is 1.
	var starts []int32
	if rows > 0 && n > 0 {
		starts = t.i32.get(rows)
	}
	expand := p.sb[p.nd-1] == 0 && n > 1
	var expanded []float32
	if expand {
		expanded = t.f32.get(rows*n, false)
	}
	r := 0
	p.rows(func(o, ia, ib, cnt int) {
		if expand {
			row := expanded[r*n : (r+1)*n]
			for j := range row {
				row[j] = mask.Data[ib]
			}
		} else {
			starts[r] = int32(ib)
		}
		r++
	})
	if expand {
		return func(r int) []float32 { return expanded[r*n : (r+1)*n] }
	}
	return func(r int) []float32 { s := int(starts[r]); return mask.Data[s : s+n] }
}

// softmaxRow writes the (masked) softmax of x into y.
func softmaxRow(y, x, mask []float32) {
	mx := float32(math.Inf(-1))
	for j, v := range x {
		if (mask == nil || mask[j] != 0) && v > mx {
			mx = v
		}
	}
	if math.IsInf(float64(mx), -1) {
		// Every position masked (or every logit −Inf): an all-zero row.
		clear(y)
		return
	}
	var s float64
	for j, v := range x {
		if mask != nil && mask[j] == 0 {
			y[j] = 0
			continue
		}
		e := math.Exp(float64(v - mx))
		y[j] = float32(e)
		s += e
	}
	inv := 1 / s
	for j := range y {
		y[j] = float32(float64(y[j]) * inv)
	}
}

func backSoftmax(t *Tape, r *Node) {
	y, g := r.Value, r.Grad.Data
	ga := t.grad(r.a).Data
	rows, n := y.Rows(), y.Cols()
	// dx = y ⊙ (g − Σ g⊙y); masked positions have y = 0 and get nothing.
	parallelFor(t.workers, rows, max(1, 4096/max(1, n)), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			yr, gr, dr := y.Data[i*n:(i+1)*n], g[i*n:(i+1)*n], ga[i*n:(i+1)*n]
			var dot float64
			for j, v := range yr {
				dot += float64(v) * float64(gr[j])
			}
			d := float32(dot)
			for j, v := range yr {
				dr[j] += v * (gr[j] - d)
			}
		}
	})
}

// LogSoftmax returns a − log Σ exp(a) over the last axis.
func (t *Tape) LogSoftmax(a *Node) *Node {
	x := a.Value
	out := t.empty(x.Shape...)
	rows, n := x.Rows(), x.Cols()
	for i := 0; i < rows; i++ {
		xr, yr := x.Data[i*n:(i+1)*n], out.Data[i*n:(i+1)*n]
		lse := logSumExp(xr)
		for j, v := range xr {
			yr[j] = float32(float64(v) - lse)
		}
	}
	return t.op(out, backLogSoftmax, a, nil, nil)
}

func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	if math.IsInf(mx, 0) {
		return mx
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

func backLogSoftmax(t *Tape, r *Node) {
	y, g := r.Value, r.Grad.Data
	ga := t.grad(r.a).Data
	rows, n := y.Rows(), y.Cols()
	// dx = g − softmax(x)·Σg, softmax(x) = exp(y).
	for i := 0; i < rows; i++ {
		yr, gr, dr := y.Data[i*n:(i+1)*n], g[i*n:(i+1)*n], ga[i*n:(i+1)*n]
		var s float64
		for _, v := range gr {
			s += float64(v)
		}
		for j, v := range yr {
			dr[j] += gr[j] - float32(math.Exp(float64(v))*s)
		}
	}
}
