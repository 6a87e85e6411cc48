package nn

import (
	"fmt"
	"math"
)

// Convolution and pooling on NCHW tensors.
//
// Conv2D lowers each image to a column matrix (im2col, [C·KH·KW, OH·OW], one row per
// filter tap; with stride 1 and "same" padding a row is one shifted copy of a whole input
// plane) and multiplies the filters [F, C·KH·KW] by it, which yields that image's output
// [F, OH·OW] directly in NCHW order. Images are processed in parallel, one column buffer
// per worker, small enough to stay in cache. The backward pass recomputes the columns
// instead of keeping them (they are C·KH·KW times larger than the input); with the
// assembly kernels it forms each image's weight gradient transposed, colᵢ·dOutᵢᵀ, so that
// the column matrix is read in place and only the small dOutᵢ is packed. Weight and bias
// gradients are formed per image and then summed in image order, so results do not depend
// on the number of workers.

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
	var bv []float32
	if b != nil {
		bv = b.Value.Data
	}
	if useAsmGemm {
		t.conv2DPacked(g, x.Value.Data, w.Value.Data, bv, out.Data)
	} else {
		t.conv2DPlain(g, x.Value.Data, w.Value.Data, bv, out.Data)
	}
	n := t.op(out, backConv2D, x, w, b)
	n.iarg = [6]int{stride, pad}
	return n
}

// conv2DPlain is the forward pass through im2col and gemm (the portable path).
func (t *Tape) conv2DPlain(g conv, x, wv, bv, out []float32) {
	cols := t.colBufs(g)
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		col := cols[wk]
		for i := lo; i < hi; i++ {
			im2col(g, x[i*g.inLen():(i+1)*g.inLen()], col)
			o := out[i*g.outLen() : (i+1)*g.outLen()]
			t.gemm.serial(wk, false, false, g.f, g.p(), g.k(), 1, wv, g.k(), col, g.p(), 0, o, g.p())
			addBias(g, o, bv)
		}
	})
}

// conv2DPacked is the forward pass for the assembly kernel: the filters are packed once,
// each image's column matrix is read in place, and the product accumulates onto the bias.
func (t *Tape) conv2DPacked(g conv, x, wv, bv, out []float32) {
	pw := t.f32.get(padRows(g.f)*g.k(), false)
	packAFull(pw, false, wv, g.k(), g.f, g.k(), 1)
	cols := t.colBufs(g)
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		col := cols[wk]
		for i := lo; i < hi; i++ {
			im2col(g, x[i*g.inLen():(i+1)*g.inLen()], col)
			o := out[i*g.outLen() : (i+1)*g.outLen()]
			if bv == nil {
				clear(o)
			} else {
				for f, bf := range bv {
					fill(o[f*g.p():(f+1)*g.p()], bf)
				}
			}
			gemmMixed(g.f, g.p(), g.k(), matA{data: pw, packed: true}, matB{data: col, ld: g.p()}, &t.gemm.bufs[wk], o, g.p(), true)
		}
	})
}

// fill sets every element of x to v (by doubling copies, at memmove speed).
func fill(x []float32, v float32) {
	if len(x) == 0 {
		return
	}
	x[0] = v
	for n := 1; n < len(x); n *= 2 {
		copy(x[n:], x[:n])
	}
}

func addBias(g conv, o, bv []float32) {
	for f, bf := range bv {
		row := o[f*g.p() : (f+1)*g.p()]
		for j := range row {
			row[j] += bf
		}
	}
}

// perWorker returns one arena buffer of size elements for each worker that a loop over
// n items can use.
func (t *Tape) perWorker(n, size int) [][]float32 {
	w := min(t.workers, max(n, 1))
	bufs := make([][]float32, w)
	for i := range bufs {
		bufs[i] = t.f32.get(size, false)
	}
	return bufs
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
func (t *Tape) colBufs(g conv) [][]float32 { return t.perWorker(g.n, g.k()*g.p()) }

// tap decodes row r of the column matrix into its channel and filter offsets.
func (g conv) tap(r int) (c, ki, kj int) {
	return r / g.kArea, (r / g.kw) % g.kh, r % g.kw
}

// sameShift reports whether im2col can move whole planes: stride 1 and output rows as
// wide as input rows ("same" padding), so a filter tap is one shift of the whole plane.
func (g conv) sameShift() bool { return g.stride == 1 && g.ow == g.w }

// tapRows returns, for a filter tap at vertical offset ki, the output rows [oy0, oy1)
// whose input row lies inside the image.
func (g conv) tapRows(ki int) (oy0, oy1 int) {
	dy := ki - g.pad
	oy0 = min(max(0, -dy), g.oh)
	oy1 = max(min(g.oh, g.h-dy), oy0)
	return oy0, oy1
}

// im2col fills col [C·KH·KW, OH·OW] from one image x [C,H,W].
func im2col(g conv, x, col []float32) {
	p := g.p()
	for r := 0; r < g.k(); r++ {
		c, ki, kj := g.tap(r)
		plane := x[c*g.inPlane : (c+1)*g.inPlane]
		row := col[r*p : (r+1)*p]
		if g.sameShift() {
			oy0, oy1 := g.tapRows(ki)
			clear(row[:oy0*g.ow])
			clear(row[oy1*g.ow:])
			dx := kj - g.pad
			if oy1 > oy0 {
				shiftedCopy(row[oy0*g.ow:oy1*g.ow], plane, (oy0+ki-g.pad)*g.w+dx)
				zeroEdgeColumns(row[oy0*g.ow:oy1*g.ow], g.ow, dx)
			}
			continue
		}
		for oy := 0; oy < g.oh; oy++ {
			dst := row[oy*g.ow : (oy+1)*g.ow]
			iy := oy*g.stride - g.pad + ki
			if iy < 0 || iy >= g.h {
				clear(dst)
				continue
			}
			src := plane[iy*g.w : (iy+1)*g.w]
			if g.stride == 1 {
				shiftedCopy(dst, src, kj-g.pad)
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

// shiftedCopy sets dst[i] = src[start+i], or 0 where start+i is outside src.
func shiftedCopy(dst, src []float32, start int) {
	lo := min(max(0, -start), len(dst))
	hi := max(min(len(dst), len(src)-start), lo)
	clear(dst[:lo])
	copy(dst[lo:hi], src[start+lo:start+hi])
	clear(dst[hi:])
}

// zeroEdgeColumns zeroes, in rows of width w, the columns that a horizontal shift by dx
// took from outside the row: the first −dx columns or the last dx.
func zeroEdgeColumns(rows []float32, w, dx int) {
	if dx == 0 {
		return
	}
	lo, hi := 0, -dx
	if dx > 0 {
		lo, hi = w-dx, w
	}
	lo, hi = max(lo, 0), min(hi, w)
	if hi-lo == 1 {
		for off := lo; off < len(rows); off += w {
			rows[off] = 0
		}
		return
	}
	for off := 0; off < len(rows); off += w {
		clear(rows[off+lo : off+hi])
	}
}

// col2im adds the column matrix col back into the image gradient dx [C,H,W]: the adjoint
// of im2col. Taps are visited in a fixed order. col is scratch: the fast path zeroes the
// entries that came from padding before adding whole planes.
func col2im(g conv, col, dx []float32) {
	p := g.p()
	for r := 0; r < g.k(); r++ {
		c, ki, kj := g.tap(r)
		plane := dx[c*g.inPlane : (c+1)*g.inPlane]
		row := col[r*p : (r+1)*p]
		if g.sameShift() {
			oy0, oy1 := g.tapRows(ki)
			if oy1 == oy0 {
				continue
			}
			d := kj - g.pad
			src := row[oy0*g.ow : oy1*g.ow]
			zeroEdgeColumns(src, g.ow, d)
			start := (oy0+ki-g.pad)*g.w + d
			lo := max(0, -start)
			hi := min(len(src), len(plane)-start)
			if hi > lo {
				addTo(plane[start+lo:start+hi], src[lo:hi])
			}
			continue
		}
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
					addTo(dst[lo-g.pad+kj:hi-g.pad+kj], src[lo:hi])
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
					s += sum32(gout[i*g.outLen()+f*g.p() : i*g.outLen()+(f+1)*g.p()])
				}
				gb[f] += s
			}
		})
	}
	if !x.needGrad && !w.needGrad {
		return
	}
	var gx []float32
	if x.needGrad {
		gx = t.grad(x).Data
	}
	var partial []float32 // per-image weight gradients, summed in image order below
	wlen := g.f * g.k()
	if w.needGrad {
		partial = t.f32.get(g.n*wlen, false) // every image overwrites its part
	}
	if useAsmGemm {
		t.backConvPacked(g, x.Value.Data, w.Value.Data, gout, gx, partial)
	} else {
		t.backConvPlain(g, x.Value.Data, w.Value.Data, gout, gx, partial)
	}
	if partial != nil {
		gw := t.grad(w).Data
		// The packed path leaves each image's gradient transposed, [K, F].
		transposed := useAsmGemm
		k := g.k()
		parallelFor(t.workers, g.f, 1, func(_, lo, hi int) {
			for f := lo; f < hi; f++ {
				dst := gw[f*k : (f+1)*k]
				for i := 0; i < g.n; i++ {
					pi := partial[i*wlen : (i+1)*wlen]
					if transposed {
						for j := range dst {
							dst[j] += pi[j*g.f+f]
						}
					} else {
						for j, v := range pi[f*k : (f+1)*k] {
							dst[j] += v
						}
					}
				}
			}
		})
	}
}

// backConvPlain forms the input gradient (into gx, when not nil) and each image's weight
// gradient [F, K] (into partial, when not nil) through im2col, gemm and col2im.
func (t *Tape) backConvPlain(g conv, x, wv, gout, gx, partial []float32) {
	cols := t.colBufs(g)
	var dcols [][]float32
	if gx != nil {
		dcols = t.colBufs(g)
	}
	wlen := g.f * g.k()
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := gout[i*g.outLen() : (i+1)*g.outLen()]
			if partial != nil {
				col := cols[wk]
				im2col(g, x[i*g.inLen():(i+1)*g.inLen()], col)
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
}

// backConvPacked is backConvPlain for the assembly kernel: each image's weight gradient
// is formed transposed, dWᵢᵀ [K, F] = colᵢ · dOutᵢᵀ with colᵢ read in place, and the column
// gradient is Wᵀ · dOutᵢ with Wᵀ packed once and dOutᵢ read in place.
func (t *Tape) backConvPacked(g conv, x, wv, gout, gx, partial []float32) {
	k, p, f := g.k(), g.p(), g.f
	var pwT []float32
	var dcols [][]float32
	if gx != nil {
		pwT = t.f32.get(padRows(k)*f, false)
		packAFull(pwT, true, wv, k, k, f, 1)
		dcols = t.colBufs(g)
	}
	var cols, pbufs [][]float32
	if partial != nil {
		cols = t.colBufs(g)
		pbufs = t.perWorker(g.n, p*padCols(f))
	}
	wlen := f * k
	parallelFor(t.workers, g.n, 1, func(wk, lo, hi int) {
		buf := &t.gemm.bufs[wk]
		for i := lo; i < hi; i++ {
			gi := gout[i*g.outLen() : (i+1)*g.outLen()]
			if partial != nil {
				col, pb := cols[wk], pbufs[wk]
				im2col(g, x[i*g.inLen():(i+1)*g.inLen()], col)
				packBFull(pb, true, gi, p, p, f) // dOutᵢᵀ [P, F]
				gemmMixed(k, f, p, matA{data: col, ld: p}, matB{data: pb, packed: true}, buf, partial[i*wlen:(i+1)*wlen], f, false)
			}
			if gx != nil {
				dc := dcols[wk]
				gemmMixed(k, p, f, matA{data: pwT, packed: true}, matB{data: gi, ld: p}, buf, dc, p, false)
				col2im(g, dc, gx[i*g.inLen():(i+1)*g.inLen()])
			}
		}
	})
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
			if k == 2 && stride == 2 {
				maxPool2x2(in, g.w, out.Data[base:base+g.oh*g.ow], arg[base:base+g.oh*g.ow], g.ow)
				continue
			}
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

// maxPool2x2 is MaxPool2D with a 2×2 window and stride 2 on one plane of width w, out
// having rows of ow. It compares order-preserving integer keys of the values, so the
// selections compile to conditional moves: pooling inputs are unpredictable, and float
// max sequences serialise on partial-register updates. Ties go to the first element.
func maxPool2x2(in []float32, w int, out []float32, arg []int32, ow int) {
	for oy := 0; oy < len(out)/ow; oy++ {
		i0, i1 := 2*oy*w, (2*oy+1)*w
		r0 := in[i0 : i0+2*ow]
		r1 := in[i1 : i1+2*ow]
		o := out[oy*ow : (oy+1)*ow]
		ag := arg[oy*ow : (oy+1)*ow]
		start := 0
		if n := ow &^ 7; useAsmGemm && n > 0 {
			maxPool2x2AVX(&r0[0], &r1[0], &o[0], &ag[0], n, i0, w)
			start = n
		}
		for ox := start; ox < len(o); ox++ {
			best, j := int64(floatKey(r0[2*ox])), int64(i0+2*ox)
			best, j = keepMax(best, j, int64(floatKey(r0[2*ox+1])), int64(i0+2*ox+1))
			best, j = keepMax(best, j, int64(floatKey(r1[2*ox])), int64(i1+2*ox))
			_, j = keepMax(best, j, int64(floatKey(r1[2*ox+1])), int64(i1+2*ox+1))
			o[ox], ag[ox] = in[j], int32(j)
		}
	}
}

// keepMax returns (k, jk) when k > best and (best, j) otherwise, by arithmetic (keys are
// int32 values, so the difference cannot overflow).
func keepMax(best, j, k, jk int64) (int64, int64) {
	m := (best - k) >> 63 // all ones when k > best
	return best ^ ((best ^ k) & m), j ^ ((j ^ jk) & m)
}

// floatKey maps a float32 to an int32 that orders like the float (−0 just below +0; NaNs
// at the ends).
func floatKey(x float32) int32 {
	b := int32(math.Float32bits(x))
	return b ^ (b >> 31 & 0x7fffffff)
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
