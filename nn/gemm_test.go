package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// refGemm is C = alpha·op(A)·op(B) + beta·C in float64.
func refGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if tA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestGemmAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 3, 300}, {13, 40, 257}, {130, 33, 20}, {64, 1100, 9}, {250, 70, 513}, {3, 2000, 40}}
	for _, s := range shapes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}} {
					m, n, k := s[0], s[1], s[2]
					name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_a%v_b%v", m, n, k, tA, tB, ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						lda, ldb, ldc := k+1, n+2, n+3
						if tA {
							lda = m + 1
						}
						if tB {
							ldb = k + 2
						}
						a := randSlice(rng, max(m, k)*lda)
						b := randSlice(rng, max(n, k)*ldb)
						c0 := randSlice(rng, m*ldc)
						want := refGemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c0, ldc)
						var got [][]float32
						for _, w := range []int{1, 2, 3} {
							c := append([]float32(nil), c0...)
							newGemmer(w).gemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
							got = append(got, c)
						}
						// Every micro-kernel gives the same bits.
						for _, kn := range testKernels() {
							old := setKernel(kn)
							c := append([]float32(nil), c0...)
							newGemmer(2).gemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
							setKernel(old)
							got = append(got, c)
						}
						for i := 0; i < m; i++ {
							for j := 0; j < n; j++ {
								g := float64(got[0][i*ldc+j])
								tol := 1e-5 * float64(k+1) * (1 + math.Abs(want[i*n+j]))
								if math.Abs(g-want[i*n+j]) > tol {
									t.Fatalf("C[%d,%d] = %v, want %v", i, j, g, want[i*n+j])
								}
							}
						}
						for w := 1; w < len(got); w++ {
							for i := range got[0] {
								if math.Float32bits(got[0][i]) != math.Float32bits(got[w][i]) {
									t.Fatalf("worker count or kernel (run %d) changes element %d: %v vs %v", w, i, got[0][i], got[w][i])
								}
							}
						}
						// Padding columns of C beyond n are untouched.
						for i := 0; i < m; i++ {
							for j := n; j < ldc; j++ {
								if got[0][i*ldc+j] != c0[i*ldc+j] {
									t.Fatalf("C[%d,%d] outside the product was written", i, j)
								}
							}
						}
					})
				}
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range []struct {
		m, n, k int
		tA, tB  bool
	}{{256, 512, 256, false, false}, {256, 512, 256, true, false}, {256, 512, 256, false, true}, {32, 1024, 144, false, false}} {
		b.Run(fmt.Sprintf("%dx%dx%d_tA%v_tB%v", s.m, s.n, s.k, s.tA, s.tB), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			lda, ldb := s.k, s.n
			if s.tA {
				lda = s.m
			}
			if s.tB {
				ldb = s.k
			}
			a := randSlice(rng, s.m*s.k)
			bb := randSlice(rng, s.k*s.n)
			c := make([]float32, s.m*s.n)
			g := newGemmer(runtime.GOMAXPROCS(0))
			for b.Loop() {
				g.gemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
			}
			b.ReportMetric(float64(2*s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// TestGemmInPlaceMatchesPacked checks that reading operands in place (gemmRange's small
// path) and the blocked, packed driver give the same bits, on shapes that span several
// depth and column blocks, and spot-checks them against float64.
func TestGemmInPlaceMatchesPacked(t *testing.T) {
	if !useAsmGemm {
		t.Skip("no assembly kernel")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][3]int{{37, 1100, 530}, {200, 45, 700}, {9, 33, 2}} {
		m, n, k := s[0], s[1], s[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				lda, ldb := k, n
				if tA {
					lda = m
				}
				if tB {
					ldb = k
				}
				a, b := randSlice(rng, m*k), randSlice(rng, k*n)
				c0 := randSlice(rng, m*n)
				var pb packBuf
				for _, acc := range []bool{false, true} {
					packed := append([]float32(nil), c0...)
					gemmBlock(&pb, tA, tB, 0, m, 0, n, k, 1, a, lda, b, ldb, packed, n, acc)
					inPlace := append([]float32(nil), c0...)
					am := matA{data: a, ld: lda, trans: tA}
					bm := matB{data: b, ld: ldb}
					if tB {
						full := make([]float32, k*padCols(n))
						packBFull(full, true, b, ldb, k, n)
						bm = matB{data: full, packed: true}
					}
					gemmMixed(m, n, k, am, bm, &pb, inPlace, n, acc)
					for i := range packed {
						if math.Float32bits(packed[i]) != math.Float32bits(inPlace[i]) {
							t.Fatalf("%v tA=%v tB=%v acc=%v: element %d: packed %v, in place %v", s, tA, tB, acc, i, packed[i], inPlace[i])
						}
					}
					beta := float32(0)
					if acc {
						beta = 1
					}
					want := refGemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c0, n)
					for _, i := range []int{0, m*n/2 + 1, m*n - 1} {
						if math.Abs(float64(packed[i])-want[i]) > 1e-5*float64(k)*(1+math.Abs(want[i])) {
							t.Fatalf("%v: element %d = %v, want %v", s, i, packed[i], want[i])
						}
					}
				}
			}
		}
	}
}
