package models

import (
	"math"
	"testing"
)

// TestKernels compares the unrolled float32 kernels with plain float64 loops for every
// length around the unroll width, and the float64 fallback with the fast path.
func TestKernels(t *testing.T) {
	rng := newRNG(1)
	near := func(got float32, want float64) bool {
		return math.Abs(float64(got)-want) <= 1e-5*math.Max(1, math.Abs(want))
	}
	for n := 0; n <= 19; n++ {
		p, qi, qj := randRow(rng, n, 1), randRow(rng, n, 1), randRow(rng, n, 1)
		var si, sj, n2 float64
		for k := 0; k < n; k++ {
			si += float64(p[k]) * float64(qi[k])
			sj += float64(p[k]) * float64(qj[k])
			n2 += float64(p[k])*float64(p[k]) + float64(qi[k])*float64(qi[k])
		}
		n3 := n2
		for k := 0; k < n; k++ {
			n3 += float64(qj[k]) * float64(qj[k])
		}
		if got := dot(p, qi); !near(got, si) {
			t.Errorf("n=%d: dot %v, want %v", n, got, si)
		}
		if got := dot64(p, qi); math.Abs(got-si) > 1e-12*math.Max(1, math.Abs(si)) {
			t.Errorf("n=%d: dot64 %v, want %v", n, got, si)
		}
		if s, nn := dotNorm(p, qi); !near(s, si) || !near(nn, n2) {
			t.Errorf("n=%d: dotNorm (%v, %v), want (%v, %v)", n, s, nn, si, n2)
		}
		if a, b, nn := dot2Norm(p, qi, qj); !near(a, si) || !near(b, sj) || !near(nn, n3) {
			t.Errorf("n=%d: dot2Norm (%v, %v, %v), want (%v, %v, %v)", n, a, b, nn, si, sj, n3)
		}

		const a, ci, cj = 0.99, 0.3, -0.2
		fp, fi, fj := clone(p), clone(qi), clone(qj)
		sp, sI, sJ := clone(p), clone(qi), clone(qj)
		update3(fp, fi, fj, a, ci, cj)
		update3Safe(sp, sI, sJ, a, ci, cj)
		for k := 0; k < n; k++ {
			wp := a*float64(p[k]) - ci*float64(qi[k]) - cj*float64(qj[k])
			wi := a*float64(qi[k]) - ci*float64(p[k])
			wj := a*float64(qj[k]) - cj*float64(p[k])
			if !near(fp[k], wp) || !near(fi[k], wi) || !near(fj[k], wj) ||
				!near(sp[k], wp) || !near(sI[k], wi) || !near(sJ[k], wj) {
				t.Fatalf("n=%d k=%d: update3 (%v %v %v), safe (%v %v %v), want (%v %v %v)",
					n, k, fp[k], fi[k], fj[k], sp[k], sI[k], sJ[k], wp, wi, wj)
			}
		}
		fp, fi = clone(p), clone(qi)
		sp, sI = clone(p), clone(qi)
		update2(fp, fi, a, ci)
		update2Safe(sp, sI, a, ci)
		for k := 0; k < n; k++ {
			wp := a*float64(p[k]) - ci*float64(qi[k])
			wi := a*float64(qi[k]) - ci*float64(p[k])
			if !near(fp[k], wp) || !near(fi[k], wi) || !near(sp[k], wp) || !near(sI[k], wi) {
				t.Fatalf("n=%d k=%d: update2 (%v %v), safe (%v %v), want (%v %v)", n, k, fp[k], fi[k], sp[k], sI[k], wp, wi)
			}
		}
	}
}

func TestClamp(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{0, 0}, {1.5, 1.5}, {-2, -2}, {1e20, paramLimit}, {-1e300, -paramLimit},
		{math.Inf(1), paramLimit}, {math.Inf(-1), -paramLimit}, {math.NaN(), 0},
	} {
		if got := clampParam(c.in); float64(got) != float64(float32(c.want)) {
			t.Errorf("clampParam(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }
