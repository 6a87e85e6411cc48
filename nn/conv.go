package nn

import (
	"fmt"
	"math"
)

// Convolution and pooling on NCHW tensors.
//
// Conv2D lowers each image to a column matrix (im2col, [C·KH·KW, OH·OW], one row per
// filter tap, so building it is a run of contiguous copies) and multiplies the filters
// [F, C·KH·KW] by it, which yields that image's output [F, OH·OW] directly in NCHW order.
// Images are processed in parallel, one column buffer per worker, small enough to stay in
// cache. The backward pass recomputes the columns instead of keeping them (they are
// C·KH·KW times larger than the input). Weight and bias gradients are formed per image and
// then summed in image order, so results do not depend on the number of workers.

// Conv2D returns the 2-D cross-correlation of x [N,C,H,W] with filters w [F,C,KH,KW],
// plus bias b [F] (nil: none), with the given stride and zero padding on every side. The
// result is [N,F,OH,OW] with OH = (H+2·pad−KH)/stride + 1.
func (t *Tape) Conv2D(x, w, b *Node, stride, pad int) *Node {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 4 || len(ws) != 4 || xs[1] != ws[1] || stride < 1 || pad < 0 {
		panic(fmt.Sprintf("nn: Conv2D of %v with filters %v, stride %d, pad %d", xs, ws, stride, pad))
	}
	g := convGeom(xs, ws, stride, pad)
	if b != nil && b.Value.Len() != g.f {
		panic(fmt.Sprintf("nn: Conv2D bias of shape %v for %d filters", b.Value.Shape, g.f))
	}
	out := t.empty(g.n, g.f, g.oh, g.ow)
	cols := t.colBufs(g)
	wv := w.Value.Data
	var bv []float32
	if b != nil {
		bv = b.Value.Data
	}
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		col := cols[wk]
		for i := lo; i < hi; i++ {
			im2col(g, x.Value.Data[i*g.inLen():(i+1)*g.inLen()], col)
			o := out.Data[i*g.outLen() : (i+1)*g.outLen()]
			t.gemm.serial(wk, false, false, g.f, g.p(), g.k(), 1, wv, g.k(), col, g.p(), 0, o, g.p())
			if bv != nil {
				for f, bf := range bv {
					row := o[f*g.p() : (f+1)*g.p()]
					for j := range row {
						row[j] += bf
					}
				}
			}
		}
	})
	n := t.op(out, backConv2D, x, w, b)
	n.iarg = [6]int{stride, pad}
	return n
}

// conv is the geometry of a convolution.
type conv struct {
	n, c, h, w     int // input
	f, kh, kw      int // filters
	stride, pad    int
	oh, ow         int // output plane
	inPlane, kArea int
}

func convGeom(xs, ws []int, stride, pad int) conv {
	g := conv{n: xs[0], c: xs[1], h: xs[2], w: xs[3], f: ws[0], kh: ws[2], kw: ws[3], stride: stride, pad: pad}
	g.oh = (g.h+2*pad-g.kh)/stride + 1
	g.ow = (g.w+2*pad-g.kw)/stride + 1
	if g.h+2*pad < g.kh || g.w+2*pad < g.kw {
		panic(fmt.Sprintf("nn: Conv2D: filter %dx%d larger than padded input %dx%d", g.kh, g.kw, g.h+2*pad, g.w+2*pad))
	}
	g.inPlane, g.kArea = g.h*g.w, g.kh*g.kw
	return g
}

func (g conv) k() int      { return g.c * g.kArea } // rows of the column matrix
func (g conv) p() int      { return g.oh * g.ow }   // columns of the column matrix
func (g conv) inLen() int  { return g.c * g.inPlane }
func (g conv) outLen() int { return g.f * g.p() }

// colBufs returns one column buffer per worker from the Tape's arena.
func (t *Tape) colBufs(g conv) [][]float32 {
	w := min(t.workers, max(g.n, 1))
	cols := make([][]float32, w)
	for i := range cols {
		cols[i] = t.f32.get(g.k()*g.p(), false)
	}
	return cols
}

// im2col fills col [C·KH·KW, OH·OW] from one image x [C,H,W].
func im2col(g conv, x, col []float32) {
	p := g.p()
	for c := 0; c < g.c; c++ {
		plane := x[c*g.inPlane : (c+1)*g.inPlane]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := col[((c*g.kh+ki)*g.kw+kj)*p : ((c*g.kh+ki)*g.kw+kj+1)*p]
				for oy := 0; oy < g.oh; oy++ {
					dst := row[oy*g.ow : (oy+1)*g.ow]
					iy := oy*g.stride - g.pad + ki
					if iy < 0 || iy >= g.h {
						clear(dst)
						continue
					}
					src := plane[iy*g.w : (iy+1)*g.w]
					if g.stride == 1 {
						// Output columns whose input column ox−pad+kj is inside [0, W).
						lo := max(0, g.pad-kj)
						hi := min(g.ow, g.w+g.pad-kj)
						clear(dst[:lo])
						if hi > lo {
							copy(dst[lo:hi], src[lo-g.pad+kj:hi-g.pad+kj])
						} else {
							hi = lo
						}
						clear(dst[hi:])
						continue
					}
					for ox := range dst {
						ix := ox*g.stride - g.pad + kj
						if ix >= 0 && ix < g.w {
							dst[ox] = src[ix]
						} else {
							dst[ox] = 0
						}
					}
				}
			}
		}
	}
}

// col2im adds the column matrix col back into the image gradient dx [C,H,W]: the adjoint
// of im2col. Taps are visited in a fixed order.
func col2im(g conv, col, dx []float32) {
	p := g.p()
	for c := 0; c < g.c; c++ {
		plane := dx[c*g.inPlane : (c+1)*g.inPlane]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				row := col[((c*g.kh+ki)*g.kw+kj)*p : ((c*g.kh+ki)*g.kw+kj+1)*p]
				for oy := 0; oy < g.oh; oy++ {
					iy := oy*g.stride - g.pad + ki
					if iy < 0 || iy >= g.h {
						continue
					}
					src := row[oy*g.ow : (oy+1)*g.ow]
					dst := plane[iy*g.w : (iy+1)*g.w]
					if g.stride == 1 {
						lo := max(0, g.pad-kj)
						hi := min(g.ow, g.w+g.pad-kj)
						if hi > lo {
							d := dst[lo-g.pad+kj : hi-g.pad+kj]
							for j, v := range src[lo:hi] {
								d[j] += v
							}
						}
						continue
					}
					for ox, v := range src {
						ix := ox*g.stride - g.pad + kj
						if ix >= 0 && ix < g.w {
							dst[ix] += v
						}
					}
				}
			}
		}
	}
}

func backConv2D(t *Tape, n *Node) {
	x, w, b := n.a, n.b, n.c
	g := convGeom(x.Value.Shape, w.Value.Shape, n.iarg[0], n.iarg[1])
	gout := n.Grad.Data
	if b != nil && b.needGrad {
		gb := t.grad(b).Data
		parallelFor(t.workers, g.f, 1, func(_, lo, hi int) {
			for f := lo; f < hi; f++ {
				var s float32
				for i := 0; i < g.n; i++ {
					for _, v := range gout[i*g.outLen()+f*g.p() : i*g.outLen()+(f+1)*g.p()] {
						s += v
					}
				}
				gb[f] += s
			}
		})
	}
	if !x.needGrad && !w.needGrad {
		return
	}
	cols := t.colBufs(g)
	var dcols [][]float32
	var gx []float32
	if x.needGrad {
		gx = t.grad(x).Data
		dcols = t.colBufs(g)
	}
	var partial []float32 // per-image weight gradients, summed in image order below
	wlen := g.f * g.k()
	if w.needGrad {
		partial = t.f32.get(g.n*wlen, false)
	}
	wv := w.Value.Data
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := gout[i*g.outLen() : (i+1)*g.outLen()]
			if partial != nil {
				col := cols[wk]
				im2col(g, x.Value.Data[i*g.inLen():(i+1)*g.inLen()], col)
				// dW_i [F, K] = dOut_i [F, P] · colᵀ
				t.gemm.serial(wk, false, true, g.f, g.k(), g.p(), 1, gi, g.p(), col, g.p(), 0, partial[i*wlen:(i+1)*wlen], g.k())
			}
			if gx != nil {
				dc := dcols[wk]
				// dcol [K, P] = Wᵀ · dOut_i
				t.gemm.serial(wk, true, false, g.k(), g.p(), g.f, 1, wv, g.k(), gi, g.p(), 0, dc, g.p())
				col2im(g, dc, gx[i*g.inLen():(i+1)*g.inLen()])
			}
		}
	})
	if partial != nil {
		gw := t.grad(w).Data
		parallelFor(t.workers, wlen, 1024, func(_, lo, hi int) {
			dst := gw[lo:hi]
			for i := 0; i < g.n; i++ {
				for j, v := range partial[i*wlen+lo : i*wlen+hi] {
					dst[j] += v
				}
			}
		})
	}
}

// MaxPool2D returns the maximum over k×k windows of x [N,C,H,W] taken every stride
// pixels, without padding: [N,C,(H−k)/stride+1,(W−k)/stride+1]. The gradient goes to the
// first maximal element of each window.
func (t *Tape) MaxPool2D(x *Node, k, stride int) *Node {
	g := poolGeom("MaxPool2D", x.Value.Shape, k, stride)
	out := t.empty(g.n, g.c, g.oh, g.ow)
	arg := t.i32.get(out.Len())
	xv := x.Value.Data
	parallelFor(t.workers, g.n*g.c, 4, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			in := xv[pl*g.h*g.w : (pl+1)*g.h*g.w]
			base := pl * g.oh * g.ow
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					best, bi := float32(math.Inf(-1)), -1
					for ky := 0; ky < k; ky++ {
						row := (oy*stride + ky) * g.w
						for kx := 0; kx < k; kx++ {
							idx := row + ox*stride + kx
							if v := in[idx]; v > best || bi < 0 {
								best, bi = v, idx
							}
						}
					}
					out.Data[base+oy*g.ow+ox] = best
					arg[base+oy*g.ow+ox] = int32(bi)
				}
			}
		}
	})
	n := t.op(out, backMaxPool, x, nil, nil)
	n.idx = arg
	n.iarg = [6]int{k, stride}
	return n
}

func backMaxPool(t *Tape, n *Node) {
	g := poolGeom("MaxPool2D", n.a.Value.Shape, n.iarg[0], n.iarg[1])
	gx, gout := t.grad(n.a).Data, n.Grad.Data
	parallelFor(t.workers, g.n*g.c, 4, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			dst := gx[pl*g.h*g.w : (pl+1)*g.h*g.w]
			base := pl * g.oh * g.ow
			for j, v := range gout[base : base+g.oh*g.ow] {
				dst[n.idx[base+j]] += v
			}
		}
	})
}

// AvgPool2D returns the mean over k×k windows of x [N,C,H,W] taken every stride pixels,
// without padding.
func (t *Tape) AvgPool2D(x *Node, k, stride int) *Node {
	g := poolGeom("AvgPool2D", x.Value.Shape, k, stride)
	out := t.empty(g.n, g.c, g.oh, g.ow)
	xv := x.Value.Data
	inv := 1 / float32(k*k)
	parallelFor(t.workers, g.n*g.c, 4, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			in := xv[pl*g.h*g.w : (pl+1)*g.h*g.w]
			base := pl * g.oh * g.ow
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					var s float32
					for ky := 0; ky < k; ky++ {
						row := (oy*stride+ky)*g.w + ox*stride
						for _, v := range in[row : row+k] {
							s += v
						}
					}
					out.Data[base+oy*g.ow+ox] = s * inv
				}
			}
		}
	})
	n := t.op(out, backAvgPool, x, nil, nil)
	n.iarg = [6]int{k, stride}
	return n
}

func backAvgPool(t *Tape, n *Node) {
	k, stride := n.iarg[0], n.iarg[1]
	g := poolGeom("AvgPool2D", n.a.Value.Shape, k, stride)
	gx, gout := t.grad(n.a).Data, n.Grad.Data
	inv := 1 / float32(k*k)
	parallelFor(t.workers, g.n*g.c, 4, func(_, lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			dst := gx[pl*g.h*g.w : (pl+1)*g.h*g.w]
			base := pl * g.oh * g.ow
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					v := gout[base+oy*g.ow+ox] * inv
					for ky := 0; ky < k; ky++ {
						row := (oy*stride+ky)*g.w + ox*stride
						for j := range dst[row : row+k] {
							dst[row+j] += v
						}
					}
				}
			}
		}
	})
}

type pool struct{ n, c, h, w, oh, ow int }

func poolGeom(op string, xs []int, k, stride int) pool {
	if len(xs) != 4 || k < 1 || stride < 1 || xs[2] < k || xs[3] < k {
		panic(fmt.Sprintf("nn: %s of %v with window %d, stride %d", op, xs, k, stride))
	}
	return pool{n: xs[0], c: xs[1], h: xs[2], w: xs[3], oh: (xs[2]-k)/stride + 1, ow: (xs[3]-k)/stride + 1}
}
