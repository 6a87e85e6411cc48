package nn

import "fmt"

// MatMul returns a·b. b must be 2-D [k,n]; a is [..., k] and is treated as a matrix whose
// rows are its last axis, so a [B,L,k] times b [k,n] gives [B,L,n] (a linear layer over a
// sequence).
func (t *Tape) MatMul(a, b *Node) *Node { return t.Gemm(a, b, false, false) }

// MatMulT returns a·bᵀ for a [..., k] and b [n, k]: a linear layer with weights stored
// [out, in], or scores of queries against keys.
func (t *Tape) MatMulT(a, b *Node) *Node { return t.Gemm(a, b, false, true) }

// Gemm returns op(a)·op(b), op being the transpose where the flag is set, without
// materialising any transpose. With transA false, a may have more than two dimensions (its
// leading ones are flattened into rows); with transA true, a must be 2-D [k,m]. b is
// always 2-D: [k,n], or [n,k] with transB.
func (t *Tape) Gemm(a, b *Node, transA, transB bool) *Node {
	av, bv := a.Value, b.Value
	if bv.Dims() != 2 || (transA && av.Dims() != 2) || av.Dims() < 2 && !transA {
		panic(fmt.Sprintf("nn: Gemm of shapes %v and %v", av.Shape, bv.Shape))
	}
	m, k := av.Rows(), av.Cols()
	if transA {
		m, k = k, m
	}
	kb, n := bv.Shape[0], bv.Shape[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		panic(fmt.Sprintf("nn: Gemm: inner dimensions differ: %v (trans %v) × %v (trans %v)", av.Shape, transA, bv.Shape, transB))
	}
	var out *Tensor
	if transA {
		out = t.empty(m, n)
	} else {
		var shape [8]int
		d := copy(shape[:], av.Shape[:av.Dims()-1])
		shape[d] = n
		out = t.empty(shape[:d+1]...)
	}
	t.gemm.gemm(transA, transB, m, n, k, 1, av.Data, av.Cols(), bv.Data, bv.Cols(), 0, out.Data, n)
	r := t.op(out, backGemm, a, b, nil)
	r.iarg = [6]int{boolInt(transA), boolInt(transB), m, n, k}
	return r
}

func backGemm(t *Tape, r *Node) {
	a, b := r.a, r.b
	tA, tB := r.iarg[0] == 1, r.iarg[1] == 1
	m, n, k := r.iarg[2], r.iarg[3], r.iarg[4]
	g := r.Grad.Data
	av, bv := a.Value.Data, b.Value.Data
	lda, ldb := a.Value.Cols(), b.Value.Cols()
	// C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC.
	// A gradient buffer nobody wrote yet is overwritten (beta 0) instead of cleared and
	// accumulated into.
	if a.needGrad {
		gt, fresh := t.gradFresh(a)
		ga, beta := gt.Data, betaFor(fresh)
		if !tA { // dA [m,k] = dC·op(B)ᵀ
			t.gemm.gemm(false, !tB, m, k, n, 1, g, n, bv, ldb, beta, ga, k)
		} else { // dA [k,m] = op(B)·dCᵀ
			t.gemm.gemm(tB, true, k, m, n, 1, bv, ldb, g, n, beta, ga, m)
		}
	}
	if b.needGrad {
		gt, fresh := t.gradFresh(b)
		gb, beta := gt.Data, betaFor(fresh)
		if !tB { // dB [k,n] = op(A)ᵀ·dC
			t.gemm.gemm(!tA, false, k, n, m, 1, av, lda, g, n, beta, gb, n)
		} else { // dB [n,k] = dCᵀ·op(A)
			t.gemm.gemm(true, tA, n, k, m, 1, g, n, av, lda, beta, gb, k)
		}
	}
}

// BatchedMatMul returns op(a[i])·op(b[i]) for every i: a is [..., m, k] (or [..., k, m]
// with transA), b is [..., k, n] (or [..., n, k]) with the same leading dimensions, and
// the result is [..., m, n]. Batches run in parallel.
func (t *Tape) BatchedMatMul(a, b *Node, transA, transB bool) *Node {
	av, bv := a.Value, b.Value
	d := av.Dims()
	if d < 3 || bv.Dims() != d || !sameShape(av.Shape[:d-2], bv.Shape[:d-2]) {
		panic(fmt.Sprintf("nn: BatchedMatMul of shapes %v and %v", av.Shape, bv.Shape))
	}
	m, k := av.Shape[d-2], av.Shape[d-1]
	if transA {
		m, k = k, m
	}
	kb, n := bv.Shape[d-2], bv.Shape[d-1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		panic(fmt.Sprintf("nn: BatchedMatMul: inner dimensions differ: %v × %v", av.Shape, bv.Shape))
	}
	batch := shapeLen(av.Shape[:d-2])
	var shape [8]int
	copy(shape[:], av.Shape[:d-2])
	shape[d-2], shape[d-1] = m, n
	out := t.empty(shape[:d]...)
	sa, sb, sc := m*k, k*n, m*n
	lda, ldb := av.Shape[d-1], bv.Shape[d-1]
	g := t.gemm
	parallelFor(t.workers, batch, max(1, (1<<15)/max(1, m*n*k)), func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			g.serial(w, transA, transB, m, n, k, 1, av.Data[i*sa:(i+1)*sa], lda, bv.Data[i*sb:(i+1)*sb], ldb, 0, out.Data[i*sc:(i+1)*sc], n)
		}
	})
	r := t.op(out, backBatchedMatMul, a, b, nil)
	r.iarg = [6]int{boolInt(transA), boolInt(transB), m, n, k, batch}
	return r
}

func backBatchedMatMul(t *Tape, r *Node) {
	a, b := r.a, r.b
	tA, tB := r.iarg[0] == 1, r.iarg[1] == 1
	m, n, k, batch := r.iarg[2], r.iarg[3], r.iarg[4], r.iarg[5]
	d := a.Value.Dims()
	lda, ldb := a.Value.Shape[d-1], b.Value.Shape[d-1]
	sa, sb, sc := m*k, k*n, m*n
	g := r.Grad.Data
	av, bv := a.Value.Data, b.Value.Data
	var ga, gb []float32
	if a.needGrad {
		ga = t.grad(a).Data
	}
	if b.needGrad {
		gb = t.grad(b).Data
	}
	gm := t.gemm
	parallelFor(t.workers, batch, max(1, (1<<15)/max(1, m*n*k)), func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := g[i*sc : (i+1)*sc]
			ai, bi := av[i*sa:(i+1)*sa], bv[i*sb:(i+1)*sb]
			if ga != nil {
				gai := ga[i*sa : (i+1)*sa]
				if !tA {
					gm.serial(w, false, !tB, m, k, n, 1, gi, n, bi, ldb, 1, gai, k)
				} else {
					gm.serial(w, tB, true, k, m, n, 1, bi, ldb, gi, n, 1, gai, m)
				}
			}
			if gb != nil {
				gbi := gb[i*sb : (i+1)*sb]
				if !tB {
					gm.serial(w, !tA, false, k, n, m, 1, ai, lda, gi, n, 1, gbi, n)
				} else {
					gm.serial(w, true, tA, n, k, m, 1, gi, n, ai, lda, 1, gbi, k)
				}
			}
		}
	})
}

// betaFor is the gemm beta that overwrites a fresh output (0) or accumulates (1).
func betaFor(fresh bool) float32 {
	if fresh {
		return 0
	}
	return 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
