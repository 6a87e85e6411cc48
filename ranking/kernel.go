package ranking

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Kernels of the ranking: a float32 matrix–vector product over one block of rows and a
// bounded heap of the best k (score, position) pairs.
//
// Measured on this machine (2 cores, a 300 MB L3 that holds a 100,000×65 matrix; under load
// from other work), one block of 1024 rows of 65 floats (BenchmarkMatvecBlock*):
//
//   - a hand-written Go kernel unrolled by four like models/kernels.go dot (goDot): 30–45 µs;
//     four rows at a time in Go gained nothing;
//   - gonum's Sgemv, SSE assembly dot per row (internal/asm/f32.DotUnitary): 13–22 µs;
//   - kernel_amd64.s, AVX2 + FMA, four rows per pass sharing the loads of x: see
//     docs/benchmarks.md; used where the CPU has AVX2 and FMA.
//
//   - matvecTAVX, AVX2 + FMA on a column-major block, 64 rows per pass: 3.3–4.6 µs;
//   - matvecTAVX512, the same with AVX-512 registers, 128 rows per pass: 2.4–3.5 µs.
//
// Column-major blocks are stored in panels of 128 rows (see panelRows).
//
// So item matrices are column-major and ranked with matvecTAVX512 or matvecTAVX where the
// CPU has them; row-major matrices (embeddings) use dot4AVX, and gonum without AVX2. Every
// column-major kernel sums a row with one FMA per element in order, so they agree with each
// other and with dotStridedAVX bit for bit. Either way, dot (for
// Scores and candidate lists) sums exactly as matvec sums a row, so a score from Recommend
// and from Scores agree bit for bit. gonum's assembly peels leading elements until its first
// argument is 16-byte aligned, so its rounding depends on where that argument lies: every
// caller passes the stored matrix row first.

var blas32 gonum.Implementation

// dot returns Σ a[k]·b[k]; len(a) == len(b). Pass the matrix row as a (see above).
func dot(a, b []float32) float32 {
	if useAVX {
		if len(a) == 0 {
			return 0
		}
		_ = b[len(a)-1]
		return dotAVX(&a[0], &b[0], len(a))
	}
	return blas32.Sdot(len(a), a, 1, b, 1)
}

// scoreBlock writes the scores of block bi's rows against x to dst (len blockRows; rows
// past n score whatever their zeros give). The scores equal m.dot of each row bit for bit.
func (m *matrix) scoreBlock(dst []float32, bi int, x []float32) {
	a := m.blocks[bi].data
	if !m.colMajor {
		matvec(dst, a, x, m.dim)
		return
	}
	scoreColMajor(dst, a, x, m.dim)
}

// BlockRows is the number of rows of a column-major block (ScoreColumns, PutRow).
const BlockRows = blockRows

// ScoreColumns writes dst[r] = the score of row r of a against x, for r < BlockRows: a is a
// column-major block of BlockRows rows of len(x) floats, written with PutRow. It is the
// kernel that ranks the item matrices, for callers that keep vectors of their own in such
// blocks (the list materializer scores changed items against its users so).
func ScoreColumns(dst, a, x []float32) { scoreColMajor(dst, a, x, len(x)) }

// PutRow writes v as row r of the column-major block a (len(v)·BlockRows floats).
func PutRow(a []float32, r int, v []float32) {
	dim := len(v)
	for k, x := range v {
		a[colIndex(dim, r, k)] = x
	}
}

// panelRows is the width of a panel: a column-major block is stored as blockRows/panelRows
// panels of panelRows rows, each column-major and contiguous (element k of row r at
// (r/panelRows)·panelRows·dim + k·panelRows + r%panelRows). A kernel pass over one panel
// then reads 33 KB (at 65 floats) in address order, which the hardware prefetcher
// follows, instead of 65 lines 4 KB apart.
const panelRows = 128

// colIndex is the index of element k of row r in a column-major block of rows of dim.
func colIndex(dim, r, k int) int {
	return (r/panelRows)*panelRows*dim + k*panelRows + r%panelRows
}

// scoreColMajor scores the blockRows column-major rows of a against x into dst.
func scoreColMajor(dst, a, x []float32, dim int) {
	dst = dst[:blockRows]
	if dim == 0 {
		clear(dst)
		return
	}
	_ = x[dim-1]
	_ = a[dim*blockRows-1]
	for p := 0; p < blockRows; p += panelRows {
		scorePanel(dst[p:p+panelRows], a[p*dim:(p+panelRows)*dim], x, dim)
	}
}

// scorePanel scores the panelRows rows of panel a against x into dst.
func scorePanel(dst, a, x []float32, dim int) {
	switch {
	case useAVX512:
		matvecTAVX512(&a[0], &x[0], dim, &dst[0], panelRows*4)
	case useAVX:
		matvecTAVX(&a[0], &x[0], dim, &dst[0], panelRows*4)
		matvecTAVX(&a[64], &x[0], dim, &dst[64], panelRows*4)
	default:
		clear(dst)
		for k, xk := range x[:dim] {
			col := a[k*panelRows : (k+1)*panelRows]
			for r := range dst {
				dst[r] += col[r] * xk
			}
		}
	}
}

// scoreBlockMulti is scoreBlock for several vectors: dst[i] gets the scores against xs[i].
// A column-major block is scored panel by panel (33 KB at 65 floats, which fits in L1),
// each panel against every vector before the next, so the batch reads the block once.
func (m *matrix) scoreBlockMulti(dst [][]float32, bi int, xs [][]float32) {
	if !m.colMajor || m.dim == 0 || len(xs) == 1 {
		for i, x := range xs {
			m.scoreBlock(dst[i], bi, x)
		}
		return
	}
	a := m.blocks[bi].data
	_ = a[m.dim*blockRows-1]
	for i, x := range xs {
		_ = x[m.dim-1]
		_ = dst[i][blockRows-1]
	}
	for p := 0; p < blockRows; p += panelRows {
		panel := a[p*m.dim : (p+panelRows)*m.dim]
		for i, x := range xs {
			scorePanel(dst[i][p:p+panelRows], panel, x, m.dim)
		}
	}
}

// firstAbove returns the first index i of s with !(s[i] <= bar) — a score above bar, or NaN
// — or len(s): the scan that skips the rows that cannot enter a full top-k heap.
func firstAbove(s []float32, bar float32) int {
	if useAVX && len(s) > 0 {
		return firstAboveAVX(&s[0], len(s), bar)
	}
	for i, x := range s {
		if !(x <= bar) {
			return i
		}
	}
	return len(s)
}

// dot returns row i's score against x, summed exactly as scoreBlock sums it.
func (m *matrix) dot(i int, x []float32) float32 {
	b := m.blocks[i/blockRows]
	r := i % blockRows
	if !m.colMajor {
		return dot(b.data[r*m.dim:(r+1)*m.dim], x)
	}
	if m.dim == 0 {
		return 0
	}
	_ = x[m.dim-1]
	if useAVX {
		_ = b.data[colIndex(m.dim, r, m.dim-1)]
		return dotStridedAVX(&b.data[colIndex(m.dim, r, 0)], panelRows*4, &x[0], m.dim)
	}
	var s float32
	for k, xk := range x[:m.dim] {
		s += b.data[colIndex(m.dim, r, k)] * xk
	}
	return s
}

// matvec writes dst[r] = dot(a[r*dim:(r+1)*dim], x) for r < len(dst). a holds at least
// len(dst) rows of dim floats, row-major; len(x) == dim.
func matvec(dst, a, x []float32, dim int) {
	rows := len(dst)
	if rows == 0 {
		return
	}
	if !useAVX {
		blas32.Sgemv(blas.NoTrans, rows, dim, 1, a[:rows*dim], dim, x, 1, 0, dst, 1)
		return
	}
	if dim == 0 {
		clear(dst)
		return
	}
	_ = a[rows*dim-1] // the assembly reads rows*dim floats of a and dim of x
	_ = x[dim-1]
	r := 0
	for ; r+4 <= rows; r += 4 {
		dot4AVX(&a[r*dim], dim*4, &x[0], dim, &dst[r])
	}
	for ; r < rows; r++ {
		dst[r] = dotAVX(&a[r*dim], &x[0], dim)
	}
}

// goDot is the hand-written kernel that was measured against Sgemv (see above); it stays
// as the benchmark's baseline.
func goDot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k <= n-4; k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < n; k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// norm returns the Euclidean norm of v, in float64 so that it cannot overflow.
func norm(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(math.Sqrt(s))
}

// entry is a ranked item: its score and catalog position.
type entry struct {
	score float32
	pos   int32
}

// better tells whether a ranks before b: higher score first, ties by catalog order. A NaN
// score ranks last (models never write NaN, but a ranking must stay a total order).
func better(a, b entry) bool {
	if a.score != b.score {
		if a.score != a.score { // NaN
			return false
		}
		if b.score != b.score {
			return true
		}
		return a.score > b.score
	}
	return a.pos < b.pos
}

// topK keeps the best k entries pushed into it. The root of the heap is the worst kept
// entry, so a candidate that does not beat it costs one comparison.
type topK struct {
	k int
	h []entry
}

func (t *topK) reset(k int) {
	t.k = k
	t.h = t.h[:0]
}

// full tells whether k entries are kept; then worst() is the bar to beat.
func (t *topK) full() bool { return len(t.h) >= t.k }

func (t *topK) worst() entry { return t.h[0] }

// push offers e; it is kept when fewer than k are kept or it beats the worst kept.
func (t *topK) push(e entry) {
	if len(t.h) < t.k {
		t.h = append(t.h, e)
		t.up(len(t.h) - 1)
		return
	}
	if t.k == 0 || !better(e, t.h[0]) {
		return
	}
	t.h[0] = e
	t.down(0)
}

func (t *topK) up(i int) {
	h := t.h
	for i > 0 {
		p := (i - 1) / 2
		if !better(h[p], h[i]) { // parent is not better: it is at least as bad, keep it on top
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (t *topK) down(i int) {
	h := t.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		w := l // the worse child
		if r := l + 1; r < n && better(h[l], h[r]) {
			w = r
		}
		if !better(h[i], h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// sorted returns the kept entries best first, reusing the heap's storage; t is empty after.
func (t *topK) sorted() []entry {
	h := t.h
	for n := len(h) - 1; n > 0; n-- {
		h[0], h[n] = h[n], h[0]
		t.h = h[:n]
		t.down(0)
	}
	t.h = h[:0]
	return h
}
