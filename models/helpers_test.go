package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Test helpers shared by the model tests: seeded rows, a finite-difference gradient check
// against an independent float64 loss, and small planted data sets.

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func randRow(rng *rand.Rand, n int, std float64) []float32 {
	r := make([]float32, n)
	for k := range r {
		r[k] = float32(rng.NormFloat64() * std)
	}
	return r
}

// flatten copies rows into one float64 vector; unflatten splits such a vector back into
// float64 rows of the same widths.
func flatten(rows ...[]float32) []float64 {
	var out []float64
	for _, r := range rows {
		for _, v := range r {
			out = append(out, float64(v))
		}
	}
	return out
}

func unflatten(theta []float64, widths ...int) [][]float64 {
	out := make([][]float64, len(widths))
	for i, w := range widths {
		out[i], theta = theta[:w], theta[w:]
	}
	return out
}

// fdGrad is the central finite-difference gradient of f at theta.
func fdGrad(f func([]float64) float64, theta []float64) []float64 {
	g := make([]float64, len(theta))
	x := append([]float64(nil), theta...)
	for k := range x {
		h := 1e-6 * math.Max(1, math.Abs(x[k]))
		old := x[k]
		x[k] = old + h
		fp := f(x)
		x[k] = old - h
		fm := f(x)
		x[k] = old
		g[k] = (fp - fm) / (2 * h)
	}
	return g
}

// checkStep asserts that after − before == −lr·grad element-wise within the tolerance that
// float32 rounding of the stored parameters allows.
func checkStep(t *testing.T, name string, before, after, grad []float64, lr float64) {
	t.Helper()
	bad := 0
	for k := range before {
		want := -lr * grad[k]
		got := after[k] - before[k]
		tol := 4e-7*math.Max(1, math.Abs(before[k])) + 1e-4*math.Abs(want)
		if math.Abs(got-want) > tol {
			if bad < 5 {
				t.Errorf("%s: param %d: change %.9g, want −lr·∂L = %.9g (diff %.3g, tol %.3g)",
					name, k, got, want, got-want, tol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d parameters off", name, bad, len(before))
	}
}

func sqnorm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return s
}

func dot64s(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func allFinite(rows ...[]float32) bool {
	for _, r := range rows {
		for _, v := range r {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}

// rowTable is a contiguous set of rows of one width, like the updater's cache.
type rowTable struct {
	width int
	data  []float32
}

func newRowTable(n, width int) *rowTable {
	return &rowTable{width: width, data: make([]float32, n*width)}
}

func (t *rowTable) at(i int) []float32 {
	off := i * t.width
	return t.data[off : off+t.width : off+t.width]
}

// planted is a synthetic user–item set drawn from true latent factors of rank r.
type planted struct {
	nUsers, nItems int
	pu, qi         [][]float64
	bu, bi         []float64
}

func newPlanted(rng *rand.Rand, nUsers, nItems, r int) *planted {
	p := &planted{nUsers: nUsers, nItems: nItems}
	std := 1 / math.Sqrt(math.Sqrt(float64(r)))
	for u := 0; u < nUsers; u++ {
		v := make([]float64, r)
		for k := range v {
			v[k] = rng.NormFloat64() * std
		}
		p.pu = append(p.pu, v)
		p.bu = append(p.bu, rng.NormFloat64()*0.3)
	}
	for i := 0; i < nItems; i++ {
		v := make([]float64, r)
		for k := range v {
			v[k] = rng.NormFloat64() * std
		}
		p.qi = append(p.qi, v)
		p.bi = append(p.bi, rng.NormFloat64()*0.3)
	}
	return p
}

func (p *planted) affinity(u, i int) float64 { return dot64s(p.pu[u], p.qi[i]) }
