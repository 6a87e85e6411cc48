package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// GEMM: C = alpha·op(A)·op(B) + beta·C on row-major float32 matrices.
//
// On amd64 with AVX2 and FMA the product runs in a packed, cache-blocked driver (the
// GotoBLAS/BLIS scheme) around a 6×16 assembly micro-kernel; elsewhere it calls gonum's
// pure-Go Sgemm. Transposed operands are never materialised: the packing routines read A
// or Aᵀ, B or Bᵀ directly.
//
// Determinism: every element of C is accumulated in the same order whatever the number
// of workers: the k dimension is cut into fixed kc blocks, always visited in order, and the
// parallel driver splits C only by rows or by columns, never along k. So a product is
// bit-identical with 1 or 16 workers. (The FMA kernel and gonum's fallback round
// differently, so results differ between machines with and without AVX2/FMA.)

const (
	gemmKC = 256  // depth of a packed block
	gemmMC = 120  // rows of a packed A block (a multiple of every kernel's MR)
	gemmNC = 1024 // columns of a packed B block (a multiple of every kernel's NR)

	maxMR, maxNR = 8, 32 // the largest micro-tile of any kernel

	// gemmParallelMin is the number of multiply-adds below which a product runs on the
	// calling goroutine only.
	gemmParallelMin = 1 << 17

	// inPlaceMax is the size (elements) up to which an operand is read where it lies
	// rather than packed: small enough to stay in the L2 cache.
	inPlaceMax = 1 << 18
)

// microKernel computes an MR×NR tile of C from a k-deep panel of A and one of B:
// s[i][j] = Σ_p a[i·ai+p·ap]·b[p·bp+j], formed in registers in order of p with fused
// multiply-adds, then c[i·ldc+j] += s[i][j] when add is set, c[i·ldc+j] = s[i][j]
// otherwise. Strides are in elements: a packed A panel has ai = 1, ap = MR, a packed B
// panel bp = NR; a row-major operand is read in place with ai = lda, ap = 1, or bp = ldb.
// The caller guarantees the bounds. Every kernel computes each element by the same
// sequence of operations, so the choice of kernel does not change results.
type microKernel struct {
	mr, nr int
	fn     func(k int, a *float32, ai, ap int, b *float32, bp int, c *float32, ldc int, add bool)
}

// The micro-kernel in use, chosen at start-up from the CPU's features (see
// gemm_amd64.go) and constant afterwards; gemmMR and gemmNR are its tile.
var (
	kern           = defaultKernel()
	gemmMR, gemmNR = kern.mr, kern.nr
)

// setKernel switches the micro-kernel and returns the previous one. Only tests call it,
// with no product in flight.
func setKernel(k microKernel) microKernel {
	old := kern
	kern, gemmMR, gemmNR = k, k.mr, k.nr
	return old
}

// packBuf holds one worker's packing buffers. They grow on demand and are reused.
type packBuf struct {
	a, b []float32
	full []float32 // a fully packed B (gemmRange)
	tile [maxMR * maxNR]float32
}

func (p *packBuf) ensure() {
	if p.a == nil {
		p.a = make([]float32, gemmMC*gemmKC)
		p.b = make([]float32, gemmKC*gemmNC)
	}
}

// gemmer runs products with up to workers goroutines. Its buffers belong to it: a gemmer
// is used by one goroutine at a time (its owner, usually a Tape), which may however hand
// worker i's buffer to a goroutine it starts (see serial).
type gemmer struct {
	workers int
	bufs    []packBuf
	fullB   []float32 // a transposed B packed once and shared by the workers
}

func newGemmer(workers int) *gemmer {
	if workers < 1 {
		workers = 1
	}
	return &gemmer{workers: workers, bufs: make([]packBuf, workers)}
}

// gemm computes C = alpha·op(A)·op(B) + beta·C where op(A) is m×k, op(B) is k×n and C is
// m×n with leading dimensions lda, ldb and ldc (row strides, in elements). With tA set, A
// is stored k×m (so op(A) = Aᵀ); likewise tB. It may use all workers.
func (g *gemmer) gemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if !useAsmGemm {
		gonumGemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if k == 0 || alpha == 0 || beta != 0 {
		scaleC(m, n, beta, c, ldc)
		if k == 0 || alpha == 0 {
			return
		}
	}
	acc := beta != 0 // with beta 0 the first depth block overwrites C
	w := g.workers
	if w > 1 && m*n*k >= gemmParallelMin {
		switch {
		case m >= w*4*gemmMR && tB && inPlaceOK(alpha, m, n, k):
			// Pack the transposed B once; the row pieces share it.
			size := k * padCols(n)
			if cap(g.fullB) < size {
				g.fullB = make([]float32, size)
			}
			packBFull(g.fullB[:size], true, b, ldb, k, n)
			bm := matB{data: g.fullB[:size], packed: true}
			g.split(w, m, gemmMR, func(i, lo, hi int) {
				gemmMixed(hi-lo, n, k, inPlaceA(tA, a, lda, lo), bm, &g.bufs[i], c[lo*ldc:], ldc, acc)
			})
			return
		case m >= w*4*gemmMR:
			g.split(w, m, gemmMR, func(i, lo, hi int) {
				gemmRange(&g.bufs[i], tA, tB, lo, hi, 0, n, k, alpha, a, lda, b, ldb, c, ldc, acc)
			})
			return
		case n >= w*2*gemmNR:
			g.split(w, n, gemmNR, func(i, lo, hi int) {
				gemmRange(&g.bufs[i], tA, tB, 0, m, lo, hi, k, alpha, a, lda, b, ldb, c, ldc, acc)
			})
			return
		}
	}
	gemmRange(&g.bufs[0], tA, tB, 0, m, 0, n, k, alpha, a, lda, b, ldb, c, ldc, acc)
}

// serial is gemm on the calling goroutine with worker i's buffers. Parallel ops (conv over
// images) call it from their own goroutines, one worker index each.
func (g *gemmer) serial(i int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if !useAsmGemm {
		gonumGemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if k == 0 || alpha == 0 || beta != 0 {
		scaleC(m, n, beta, c, ldc)
		if k == 0 || alpha == 0 {
			return
		}
	}
	gemmRange(&g.bufs[i], tA, tB, 0, m, 0, n, k, alpha, a, lda, b, ldb, c, ldc, beta != 0)
}

// inPlaceOK reports whether gemmRange reads the operands of an m×n×k product in place.
func inPlaceOK(alpha float32, m, n, k int) bool {
	return alpha == 1 && m*k <= inPlaceMax && k*n <= inPlaceMax
}

// inPlaceA describes op(A) from row m0 on, read in place.
func inPlaceA(tA bool, a []float32, lda, m0 int) matA {
	if tA {
		return matA{data: a[m0:], ld: lda, trans: true}
	}
	return matA{data: a[m0*lda:], ld: lda}
}

// gemmRange computes alpha·op(A)·op(B) into the block of C with rows [m0,m1) and columns
// [n0,n1): small operands are read in place (A in either orientation, B untransposed; a
// transposed B is packed whole), large ones go through the blocked, packed driver. Both
// give the same bits.
func gemmRange(pb *packBuf, tA, tB bool, m0, m1, n0, n1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	m, n := m1-m0, n1-n0
	if !inPlaceOK(alpha, m, n, k) {
		gemmBlock(pb, tA, tB, m0, m1, n0, n1, k, alpha, a, lda, b, ldb, c, ldc, acc)
		return
	}
	am := inPlaceA(tA, a, lda, m0)
	bm := matB{data: b[n0:], ld: ldb}
	if tB {
		size := k * padCols(n)
		if cap(pb.full) < size {
			pb.full = make([]float32, size)
		}
		packBFull(pb.full[:size], true, b[n0*ldb:], ldb, k, n)
		bm = matB{data: pb.full[:size], packed: true}
	}
	gemmMixed(m, n, k, am, bm, pb, c[m0*ldc+n0:], ldc, acc)
}

// split runs fn(worker, lo, hi) over [0,n) cut into pieces whose starts are multiples of
// align (see parallelFor), with up to w goroutines.
func (g *gemmer) split(w, n, align int, fn func(i, lo, hi int)) {
	units := (n + align - 1) / align
	parallelFor(w, units, 2, func(i, lo, hi int) {
		fn(i, lo*align, min(hi*align, n))
	})
}

func scaleC(m, n int, beta float32, c []float32, ldc int) {
	switch beta {
	case 1:
	case 0:
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	default:
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// gemmBlock computes alpha·op(A)·op(B) into the block of C with rows [m0,m1) and columns
// [n0,n1), on the calling goroutine: added to C when acc is set, overwriting it otherwise.
func gemmBlock(pb *packBuf, tA, tB bool, m0, m1, n0, n1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	pb.ensure()
	for jc := n0; jc < n1; jc += gemmNC {
		nb := min(gemmNC, n1-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kb := min(gemmKC, k-pc)
			packB(pb.b, tB, b, ldb, pc, kb, jc, nb)
			for ic := m0; ic < m1; ic += gemmMC {
				mb := min(gemmMC, m1-ic)
				packA(pb.a, tA, a, lda, ic, mb, pc, kb, alpha)
				macroKernel(pb.a, pb.b, &pb.tile, mb, nb, kb, c[ic*ldc+jc:], ldc, acc || pc > 0)
			}
		}
	}
}

// Fully packed operands. Callers that reuse an operand for many products (convolution
// filters) pack it once in this layout and pass it to gemmMixed:
//
//	packed A (m×k): k-block pc (rows pc..pc+kb of the depth) starts at pc·padRows(m);
//	                within it, row panel q starts at q·kb·MR (see packA)
//	packed B (k×n): k-block pc starts at pc·padCols(n); column panel q at q·kb·NR (packB)

func padRows(m int) int { return (m + gemmMR - 1) / gemmMR * gemmMR }
func padCols(n int) int { return (n + gemmNR - 1) / gemmNR * gemmNR }

// packAFull packs all of alpha·op(A) (m×k) into dst (at least padRows(m)·k elements).
func packAFull(dst []float32, tA bool, a []float32, lda, m, k int, alpha float32) {
	mp := padRows(m)
	for pc := 0; pc < k; pc += gemmKC {
		kb := min(gemmKC, k-pc)
		packA(dst[pc*mp:pc*mp+mp*kb], tA, a, lda, 0, m, pc, kb, alpha)
	}
}

// packBFull packs all of op(B) (k×n) into dst (at least k·padCols(n) elements).
func packBFull(dst []float32, tB bool, b []float32, ldb, k, n int) {
	np := padCols(n)
	for pc := 0; pc < k; pc += gemmKC {
		kb := min(gemmKC, k-pc)
		packB(dst[pc*np:pc*np+np*kb], tB, b, ldb, pc, kb, 0, n)
	}
}

// macroKernel multiplies a packed mb×kb block of A (ap, row panels) by a packed kb×nb
// block of B (bp, column panels) into C, whose top-left element is c[0]: added to C when
// add is set, overwriting it otherwise.
func macroKernel(ap, bp []float32, tile *[maxMR * maxNR]float32, mb, nb, kb int, c []float32, ldc int, add bool) {
	for jr := 0; jr < nb; jr += gemmNR {
		nr := min(gemmNR, nb-jr)
		bpan := bp[(jr/gemmNR)*kb*gemmNR:]
		bpan = bpan[:kb*gemmNR]
		for ir := 0; ir < mb; ir += gemmMR {
			mr := min(gemmMR, mb-ir)
			apan := ap[(ir/gemmMR)*kb*gemmMR:]
			apan = apan[:kb*gemmMR]
			off := ir*ldc + jr
			if kb == 0 {
				continue
			}
			if mr == gemmMR && nr == gemmNR {
				_ = c[off+(gemmMR-1)*ldc+gemmNR-1] // bounds check for the kernel's stores
				kern.fn(kb, &apan[0], 1, gemmMR, &bpan[0], gemmNR, &c[off], ldc, add)
				continue
			}
			// Edge tile: compute into the scratch tile and add the valid part; C gets the
			// same sum a full tile would add.
			kern.fn(kb, &apan[0], 1, gemmMR, &bpan[0], gemmNR, &tile[0], gemmNR, false)
			if add {
				addTile(tile, mr, nr, c[off:], ldc)
			} else {
				setTile(tile, mr, nr, c[off:], ldc)
			}
		}
	}
}

// addTile adds the top-left mr×nr part of the scratch tile to C at c[0].
func addTile(tile *[maxMR * maxNR]float32, mr, nr int, c []float32, ldc int) {
	for i := 0; i < mr; i++ {
		row := c[i*ldc : i*ldc+nr]
		for j := range row {
			row[j] += tile[i*gemmNR+j]
		}
	}
}

// setTile copies the top-left mr×nr part of the scratch tile to C at c[0].
func setTile(tile *[maxMR * maxNR]float32, mr, nr int, c []float32, ldc int) {
	for i := 0; i < mr; i++ {
		copy(c[i*ldc:i*ldc+nr], tile[i*gemmNR:i*gemmNR+nr])
	}
}

// Operands of gemmMixed: fully packed (the layout above) or row-major, read in place.
type (
	matA struct {
		data   []float32
		ld     int  // row stride when not packed
		trans  bool // in place and stored transposed (A only): element (i,p) at p·ld+i
		packed bool
	}
	matB = matA
)

// gemmMixed computes A·B into C (m×n, row stride ldc) on the calling goroutine, adding
// to C when acc is set and overwriting it otherwise (then C need not be initialised), each
// operand either fully packed or row-major in place. Full micro-tiles of an in-place
// operand are read where they lie; partial panels are packed into pb's buffers first. The
// accumulation order per element is that of gemm.
func gemmMixed(m, n, k int, a matA, b matB, pb *packBuf, c []float32, ldc int, acc bool) {
	if !useAsmGemm {
		panic("nn: gemmMixed without the assembly kernel")
	}
	pb.ensure()
	mp, np := padRows(m), padCols(n)
	for pc := 0; pc < k; pc += gemmKC {
		kb := min(gemmKC, k-pc)
		if kb == 0 {
			break
		}
		// The partial row panel of an in-place A is packed once per depth block.
		mFull := m / gemmMR * gemmMR
		if !a.packed && mFull < m {
			packA(pb.a, a.trans, a.data, a.ld, mFull, m-mFull, pc, kb, 1)
		}
		for jr := 0; jr < n; jr += gemmNR {
			nr := min(gemmNR, n-jr)
			var bptr *float32
			bp := gemmNR
			switch {
			case b.packed:
				bpan := b.data[pc*np+(jr/gemmNR)*kb*gemmNR:]
				bptr = &bpan[:kb*gemmNR][0]
			case nr == gemmNR:
				_ = b.data[(pc+kb-1)*b.ld+jr+gemmNR-1]
				bptr, bp = &b.data[pc*b.ld+jr], b.ld
			default:
				packB(pb.b, false, b.data, b.ld, pc, kb, jr, nr)
				bptr = &pb.b[:kb*gemmNR][0]
			}
			for ir := 0; ir < m; ir += gemmMR {
				mr := min(gemmMR, m-ir)
				var aptr *float32
				ai, ap := 1, gemmMR
				switch {
				case a.packed:
					apan := a.data[pc*mp+(ir/gemmMR)*kb*gemmMR:]
					aptr = &apan[:kb*gemmMR][0]
				case mr == gemmMR && a.trans:
					_ = a.data[(pc+kb-1)*a.ld+ir+gemmMR-1]
					aptr, ai, ap = &a.data[pc*a.ld+ir], 1, a.ld
				case mr == gemmMR:
					_ = a.data[(ir+gemmMR-1)*a.ld+pc+kb-1]
					aptr, ai, ap = &a.data[ir*a.ld+pc], a.ld, 1
				default:
					aptr = &pb.a[:kb*gemmMR][0]
				}
				off := ir*ldc + jr
				add := acc || pc > 0
				if mr == gemmMR && nr == gemmNR {
					_ = c[off+(gemmMR-1)*ldc+gemmNR-1]
					kern.fn(kb, aptr, ai, ap, bptr, bp, &c[off], ldc, add)
					continue
				}
				kern.fn(kb, aptr, ai, ap, bptr, bp, &pb.tile[0], gemmNR, false)
				if add {
					addTile(&pb.tile, mr, nr, c[off:], ldc)
				} else {
					setTile(&pb.tile, mr, nr, c[off:], ldc)
				}
			}
		}
	}
}

// packA copies rows [ic, ic+mb) and depth [pc, pc+kb) of op(A), times alpha, into dst as
// row panels of gemmMR: dst[q·kb·MR + p·MR + i] = alpha·op(A)[ic+q·MR+i][pc+p], with zero
// rows past mb.
func packA(dst []float32, tA bool, a []float32, lda, ic, mb, pc, kb int, alpha float32) {
	for q := 0; q*gemmMR < mb; q++ {
		panel := dst[q*kb*gemmMR : (q+1)*kb*gemmMR]
		r0 := ic + q*gemmMR
		rows := min(gemmMR, mb-q*gemmMR)
		if tA {
			for p := 0; p < kb; p++ {
				src := a[(pc+p)*lda+r0 : (pc+p)*lda+r0+rows]
				d := panel[p*gemmMR : p*gemmMR+gemmMR]
				for i, v := range src {
					d[i] = alpha * v
				}
				for i := rows; i < gemmMR; i++ {
					d[i] = 0
				}
			}
			continue
		}
		for i := 0; i < gemmMR; i++ {
			if i >= rows {
				for p := 0; p < kb; p++ {
					panel[p*gemmMR+i] = 0
				}
				continue
			}
			src := a[(r0+i)*lda+pc : (r0+i)*lda+pc+kb]
			if alpha == 1 {
				for p, v := range src {
					panel[p*gemmMR+i] = v
				}
			} else {
				for p, v := range src {
					panel[p*gemmMR+i] = alpha * v
				}
			}
		}
	}
}

// packB copies depth [pc, pc+kb) and columns [jc, jc+nb) of op(B) into dst as column
// panels of gemmNR: dst[q·kb·NR + p·NR + j] = op(B)[pc+p][jc+q·NR+j], with zero columns
// past nb.
func packB(dst []float32, tB bool, b []float32, ldb, pc, kb, jc, nb int) {
	for q := 0; q*gemmNR < nb; q++ {
		panel := dst[q*kb*gemmNR : (q+1)*kb*gemmNR]
		c0 := jc + q*gemmNR
		cols := min(gemmNR, nb-q*gemmNR)
		if !tB {
			for p := 0; p < kb; p++ {
				d := panel[p*gemmNR : p*gemmNR+gemmNR]
				n := copy(d, b[(pc+p)*ldb+c0:(pc+p)*ldb+c0+cols])
				clear(d[n:])
			}
			continue
		}
		nr := gemmNR
		j := 0
		// Eight source rows at a time: eight sequential reads, one contiguous write of
		// eight per depth step.
		for ; j+8 <= cols; j += 8 {
			r := (c0+j)*ldb + pc
			s0, s1, s2, s3 := b[r:r+kb], b[r+ldb:r+ldb+kb], b[r+2*ldb:r+2*ldb+kb], b[r+3*ldb:r+3*ldb+kb]
			r += 4 * ldb
			s4, s5, s6, s7 := b[r:r+kb], b[r+ldb:r+ldb+kb], b[r+2*ldb:r+2*ldb+kb], b[r+3*ldb:r+3*ldb+kb]
			for p := 0; p < kb; p++ {
				d := panel[p*nr+j : p*nr+j+8 : p*nr+j+8]
				d[0], d[1], d[2], d[3] = s0[p], s1[p], s2[p], s3[p]
				d[4], d[5], d[6], d[7] = s4[p], s5[p], s6[p], s7[p]
			}
		}
		for ; j < nr; j++ {
			if j >= cols {
				for p := 0; p < kb; p++ {
					panel[p*nr+j] = 0
				}
				continue
			}
			src := b[(c0+j)*ldb+pc : (c0+j)*ldb+pc+kb]
			for p, v := range src {
				panel[p*nr+j] = v
			}
		}
	}
}

// gonumGemm is the portable path: gonum's Sgemm (which parallelises large products over
// blocks of C, never along k).
func gonumGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	if k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	gonum.Implementation{}.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
