package nn

import (
	"fmt"
	"math"
)

// LayerNorm normalises each row of x (its last axis) to zero mean and unit variance,
// (x − μ)/√(σ² + eps), then applies gain and bias of shape [D] when they are not nil.
// Statistics are computed in float64.
func (t *Tape) LayerNorm(x, gain, bias *Node, eps float32) *Node {
	rows, d := x.Value.Rows(), x.Value.Cols()
	for _, p := range []*Node{gain, bias} {
		if p != nil && p.Value.Len() != d {
			panic(fmt.Sprintf("nn: LayerNorm of %v with a gain or bias of shape %v", x.Value.Shape, p.Value.Shape))
		}
	}
	out := t.empty(x.Value.Shape...)
	xhat := t.empty(x.Value.Shape...)
	rstd := t.empty(max(rows, 1))
	var gv, bv []float32
	if gain != nil {
		gv = gain.Value.Data
	}
	if bias != nil {
		bv = bias.Value.Data
	}
	parallelFor(t.workers, rows, max(1, 8192/max(1, d)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, hr, yr := x.Value.Data[r*d:(r+1)*d], xhat.Data[r*d:(r+1)*d], out.Data[r*d:(r+1)*d]
			var s, ss float64
			for _, v := range xr {
				s += float64(v)
			}
			mu := s / float64(d)
			for _, v := range xr {
				dv := float64(v) - mu
				ss += dv * dv
			}
			rs := 1 / math.Sqrt(ss/float64(d)+float64(eps))
			rstd.Data[r] = float32(rs)
			for j, v := range xr {
				h := float32((float64(v) - mu) * rs)
				hr[j] = h
				if gv != nil {
					h *= gv[j]
				}
				if bv != nil {
					h += bv[j]
				}
				yr[j] = h
			}
		}
	})
	n := t.op(out, backLayerNorm, x, gain, bias)
	n.aux, n.aux2 = xhat, rstd
	return n
}

func backLayerNorm(t *Tape, n *Node) {
	x, gain, bias := n.a, n.b, n.c
	rows, d := x.Value.Rows(), x.Value.Cols()
	g, xhat, rstd := n.Grad.Data, n.aux.Data, n.aux2.Data
	if gain != nil && gain.needGrad {
		gg := t.grad(gain).Data
		for r := 0; r < rows; r++ {
			for j, v := range g[r*d : (r+1)*d] {
				gg[j] += v * xhat[r*d+j]
			}
		}
	}
	if bias != nil && bias.needGrad {
		gb := t.grad(bias).Data
		for r := 0; r < rows; r++ {
			for j, v := range g[r*d : (r+1)*d] {
				gb[j] += v
			}
		}
	}
	if !x.needGrad {
		return
	}
	gx := t.grad(x).Data
	var gv []float32
	if gain != nil {
		gv = gain.Value.Data
	}
	// With ĝ = g⊙gain: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)).
	parallelFor(t.workers, rows, max(1, 8192/max(1, d)), func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			gr, hr, dr := g[r*d:(r+1)*d], xhat[r*d:(r+1)*d], gx[r*d:(r+1)*d]
			var s1, s2 float64
			for j, v := range gr {
				if gv != nil {
					v *= gv[j]
				}
				s1 += float64(v)
				s2 += float64(v) * float64(hr[j])
			}
			m1, m2 := float32(s1/float64(d)), float32(s2/float64(d))
			rs := rstd[r]
			for j, v := range gr {
				if gv != nil {
					v *= gv[j]
				}
				dr[j] += rs * (v - m1 - hr[j]*m2)
			}
		}
	})
}

// Dropout zeroes each element of x with probability p and scales the others by 1/(1−p),
// in training mode; in evaluation mode (or with p = 0) it returns x itself. The mask
// comes from the Tape's seeded generator, drawn in element order.
func (t *Tape) Dropout(x *Node, p float32) *Node {
	if !t.train || p <= 0 {
		return x
	}
	if p >= 1 {
		panic(fmt.Sprintf("nn: Dropout with p = %v", p))
	}
	mask := t.empty(x.Value.Shape...)
	out := t.empty(x.Value.Shape...)
	scale := 1 / (1 - p)
	for i, v := range x.Value.Data {
		if t.rng.Float32() < p {
			mask.Data[i], out.Data[i] = 0, 0
		} else {
			mask.Data[i], out.Data[i] = scale, v*scale
		}
	}
	n := t.op(out, backDropout, x, nil, nil)
	n.aux = mask
	return n
}

func backDropout(t *Tape, n *Node) {
	ga, g, m := t.grad(n.a).Data, n.Grad.Data, n.aux.Data
	for i, v := range g {
		ga[i] += v * m[i]
	}
}
