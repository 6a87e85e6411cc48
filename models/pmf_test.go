package models

import (
	"fmt"
	"testing"
)

// TestPMFGradient: with NoBias, one step equals −lr times the finite-difference gradient of
// ½w(p·q − y)² + ½λ(‖p‖² + ‖q‖²), computed independently here, and no bias or μ moves.
func TestPMFGradient(t *testing.T) {
	for _, k := range []int{1, 4, 13} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			rng := newRNG(uint64(k))
			o := DefaultMFOptions()
			o.Factors, o.LearnRate, o.Reg, o.NoBias = k, 1e-3, 0.05, true
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			m := NewMF(o)
			if m.Name() != "pmf" {
				t.Fatalf("name %q", m.Name())
			}
			for trial := 0; trial < 10; trial++ {
				u, i := randRow(rng, k+1, 0.5), randRow(rng, k+1, 0.5)
				g := []float32{3}
				w, y := float32(0.5+2*rng.Float64()), float32(1+rng.IntN(5))
				bu, bi := u[0], i[0]
				p0, q0 := flatten(u[1:]), flatten(i[1:])
				before := append(append([]float64(nil), p0...), q0...)
				loss := func(th []float64) float64 {
					p, q := th[:k], th[k:]
					e := dot64s(p, q) - float64(y)
					return 0.5*float64(w)*e*e + 0.5*float64(o.Reg)*(sqnorm(p)+sqnorm(q))
				}
				grad := fdGrad(loss, before)
				m.Step(&Example{User: u, Item: i, Global: g, Value: y, Weight: w})
				if u[0] != bu || i[0] != bi || g[0] != 3 {
					t.Fatalf("PMF moved a bias or μ: %v %v %v", u[0], i[0], g[0])
				}
				after := append(flatten(u[1:]), flatten(i[1:])...)
				checkStep(t, "pmf", before, after, grad, float64(o.LearnRate))
			}
		})
	}
	o := DefaultMFOptions()
	o.NoBias, o.Explicit = true, false
	if o.Validate() == nil {
		t.Error("implicit PMF validated")
	}
}
