package ranking

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestMatvecMatchesDot runs every kernel set the CPU has (AVX2, AVX-512, gonum's).
func TestMatvecMatchesDot(t *testing.T) {
	saved := setKernels(0)
	defer setKernels(saved)
	for _, mode := range kernelModes() {
		setKernels(mode)
		testMatvec(t)
	}
}

func testMatvec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, dim := range []int{1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 65, 66, 130} {
		a := randVec(rng, 37*dim)
		x := randVec(rng, dim)
		dst := make([]float32, 37)
		matvec(dst, a, x, dim)
		for r := range dst {
			var s float64
			for k := range dim {
				s += float64(a[r*dim+k]) * float64(x[k])
			}
			if d := float64(dst[r]) - s; d > 1e-4 || d < -1e-4 || math.Abs(float64(goDot(x, a[r*dim:(r+1)*dim]))-s) > 1e-4 {
				t.Fatalf("dim %d row %d: %v, want %v", dim, r, dst[r], s)
			}
			if dst[r] != dot(a[r*dim:(r+1)*dim], x) {
				t.Fatalf("dim %d row %d: matvec and dot differ", dim, r)
			}
		}
	}
}

func TestTopKOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, k := range []int{1, 5, 100} {
		var h topK
		h.reset(k)
		all := make([]entry, 500)
		for i := range all {
			all[i] = entry{score: float32(rng.IntN(20)), pos: int32(i)}
			h.push(all[i])
		}
		got := h.sorted()
		// reference: a stable sort by descending score keeps catalog order among ties
		ref := append([]entry(nil), all...)
		for i := 1; i < len(ref); i++ {
			for j := i; j > 0 && ref[j].score > ref[j-1].score; j-- {
				ref[j], ref[j-1] = ref[j-1], ref[j]
			}
		}
		for i := range got {
			if got[i] != ref[i] {
				t.Fatalf("k=%d rank %d: %v, want %v", k, i, got[i], ref[i])
			}
		}
	}
}

// The kernel against gonum's Sgemv (SSE assembly dot per row) on one block of K=64 BPR
// vectors, to measure what the hand-written kernel gives up.
func benchBlock() (a, x, y []float32) {
	rng := rand.New(rand.NewPCG(3, 3))
	return randVec(rng, blockRows*65), randVec(rng, 65), make([]float32, blockRows)
}

// BenchmarkMatvecBlockGo is the hand-written Go kernel, row by row.
func BenchmarkMatvecBlockGo(b *testing.B) {
	a, x, y := benchBlock()
	b.SetBytes(int64(len(a) * 4))
	for b.Loop() {
		for r := range y {
			y[r] = goDot(x, a[r*65:(r+1)*65])
		}
	}
}

// BenchmarkMatvecBlockGonum is gonum's Sgemv (SSE assembly).
func BenchmarkMatvecBlockGonum(b *testing.B) {
	a, x, y := benchBlock()
	b.SetBytes(int64(len(a) * 4))
	for b.Loop() {
		blas32.Sgemv(blas.NoTrans, blockRows, 65, 1, a, 65, x, 1, 0, y, 1)
	}
}

// BenchmarkMatvecBlockAVX2 is kernel_amd64.s.
func BenchmarkMatvecBlockAVX2(b *testing.B) {
	if !useAVX {
		b.Skip("no AVX2+FMA")
	}
	a, x, y := benchBlock()
	b.SetBytes(int64(len(a) * 4))
	for b.Loop() {
		matvec(y, a, x, 65)
	}
}

// TestMatrixLayouts builds row- and column-major matrices through the builder and checks
// scoreBlock against m.dot (bit for bit), a float64 reference, and row against what was set,
// with both kernels.
func TestMatrixLayouts(t *testing.T) {
	saved := setKernels(0)
	defer setKernels(saved)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, avx := range kernelModes() {
		setKernels(avx)
		for _, colMajor := range []bool{false, true} {
			for _, dim := range []int{1, 5, 9, 65, 66} {
				const n = 1500 // a full block and a partial one
				b := newBuilder(&matrix{dim: dim, colMajor: colMajor})
				b.grow(n)
				rows := make([][]float32, n)
				for i := range rows {
					rows[i] = randVec(rng, dim)
					b.set(i, rows[i])
				}
				m := b.done()
				x := randVec(rng, dim)
				sc := make([]float32, blockRows)
				for bi := range m.blocks {
					m.scoreBlock(sc, bi, x)
					for r := range min(blockRows, n-bi*blockRows) {
						i := bi*blockRows + r
						if d := m.dot(i, x); d != sc[r] {
							t.Fatalf("kernels %v colMajor %v dim %d row %d: scoreBlock %v, dot %v", avx, colMajor, dim, i, sc[r], d)
						}
						var ref float64
						for k := range dim {
							ref += float64(rows[i][k]) * float64(x[k])
						}
						if math.Abs(ref-float64(sc[r])) > 1e-4 {
							t.Fatalf("kernels %v colMajor %v dim %d row %d: %v, want %v", avx, colMajor, dim, i, sc[r], ref)
						}
					}
				}
				// scoreBlockMulti agrees with scoreBlock bit for bit, vector by vector.
				xs := [][]float32{randVec(rng, dim), x, randVec(rng, dim)}
				multi := [][]float32{make([]float32, blockRows), make([]float32, blockRows), make([]float32, blockRows)}
				for bi := range m.blocks {
					m.scoreBlockMulti(multi, bi, xs)
					for v := range xs {
						m.scoreBlock(sc, bi, xs[v])
						for r := range min(blockRows, n-bi*blockRows) {
							if multi[v][r] != sc[r] {
								t.Fatalf("kernels %v colMajor %v dim %d: block %d row %d vector %d: multi %v, single %v", avx, colMajor, dim, bi, r, v, multi[v][r], sc[r])
							}
						}
					}
				}
				for _, i := range []int{0, 1023, 1024, n - 1} {
					got := m.row(make([]float32, dim), i)
					for k := range dim {
						if got[k] != rows[i][k] {
							t.Fatalf("colMajor %v: row %d = %v, want %v", colMajor, i, got, rows[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkMatvecBlockAVX2ColMajor is matvecTAVX, BenchmarkMatvecBlockAVX512ColMajor
// matvecTAVX512: the kernels of the item matrices.
func BenchmarkMatvecBlockAVX2ColMajor(b *testing.B) {
	if !useAVX {
		b.Skip("no AVX2+FMA")
	}
	saved := setKernels(1)
	defer setKernels(saved)
	benchColMajor(b)
}

func BenchmarkMatvecBlockAVX512ColMajor(b *testing.B) {
	if !useAVX512 {
		b.Skip("no AVX-512")
	}
	benchColMajor(b)
}

func benchColMajor(b *testing.B) {
	a, x, y := benchBlock()
	m := &matrix{dim: 65, n: blockRows, colMajor: true, blocks: []*block{{data: a}}}
	b.SetBytes(int64(len(a) * 4))
	for b.Loop() {
		m.scoreBlock(y, 0, x)
	}
}

func TestFirstAbove(t *testing.T) {
	saved := setKernels(0)
	defer setKernels(saved)
	nan := float32(math.NaN())
	for _, mode := range kernelModes() {
		setKernels(mode)
		for n := range 40 {
			for pos := 0; pos <= n; pos++ {
				for _, v := range []float32{2, nan, float32(math.Inf(1))} {
					s := make([]float32, n)
					for i := range s {
						s[i] = float32(i%3) * 0.5 // 0, 0.5, 1: never above the bar 1
					}
					if pos < n {
						s[pos] = v
					}
					if got := firstAbove(s, 1); got != pos {
						t.Fatalf("kernels %d n %d: %v above 1 at %d, got %d", mode, n, v, pos, got)
					}
				}
			}
		}
	}
}
