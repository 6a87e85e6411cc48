package models

import (
	"fmt"
	"math"
	"testing"
)

// vmfLoss is an independent float64 implementation of the objective VMF.Step descends over
// θ = [user, item, global] (widths 1+K+K', K+1, 1+K'·F).
func vmfLoss(o VMFOptions, w, y float64, fi []float64) func([]float64) float64 {
	k, k2, f := o.Factors, o.VisualFactors, o.FeatureDim
	reg, regB, regE, s := float64(o.Reg), float64(o.RegBias), float64(o.RegVisual), float64(o.FeatureScale)
	return func(theta []float64) float64 {
		rows := unflatten(theta, 1+k+k2, k+1, 1+k2*f)
		u, i, g := rows[0], rows[1], rows[2]
		pred := g[0] + u[0] + i[0] + dot64s(u[1:1+k], i[1:])
		for r := 0; r < k2 && fi != nil; r++ {
			proj := 0.0
			for c := 0; c < f; c++ {
				proj += g[1+r*f+c] * s * fi[c]
			}
			pred += u[1+k+r] * proj
		}
		e := pred - y
		return w/2*e*e + reg/2*(sqnorm(u[1:])+sqnorm(i[1:])) + regB/2*(u[0]*u[0]+i[0]*i[0]) + regE/2*sqnorm(g[1:])
	}
}

func TestVMFGradient(t *testing.T) {
	for _, c := range []struct {
		k, k2, f int
		nilF     bool
	}{{1, 1, 1, false}, {4, 3, 7, false}, {13, 5, 16, false}, {8, 4, 9, true}} {
		for _, lr := range []float32{1e-3, 0.05} {
			name := fmt.Sprintf("K=%d/K'=%d/F=%d/nil=%v/lr=%g", c.k, c.k2, c.f, c.nilF, lr)
			t.Run(name, func(t *testing.T) {
				rng := newRNG(uint64(c.k*1000+c.k2*100+c.f) + uint64(lr*1e4))
				for trial := 0; trial < 5; trial++ {
					o := DefaultVMFOptions()
					o.Factors, o.VisualFactors, o.FeatureDim = c.k, c.k2, c.f
					o.LearnRate, o.Reg, o.RegBias, o.RegVisual, o.FeatureScale = lr, 0.05, 0.03, 0.02, 0.5
					m := NewVMF(o)
					u, i, g := randRow(rng, 1+c.k+c.k2, 0.5), randRow(rng, c.k+1, 0.5), randRow(rng, 1+c.k2*c.f, 0.3)
					fi := randRow(rng, c.f, 1)
					if c.nilF {
						fi = nil
					}
					w, y := float32(0.5+2*rng.Float64()), float32(1+rng.IntN(5))
					before := flatten(u, i, g)
					grad := fdGrad(vmfLoss(o, float64(w), float64(y), f64(fi)), before)
					o0 := o
					o0.Reg, o0.RegBias, o0.RegVisual = 0, 0, 0
					wantLoss := vmfLoss(o0, float64(w), float64(y), f64(fi))(before)
					loss := m.Step(&Example{User: u, Item: i, Global: g, ItemFeat: fi, Value: y, Weight: w})
					if math.Abs(float64(loss)-wantLoss) > 1e-5*math.Max(1, wantLoss) {
						t.Errorf("loss %g, want %g", loss, wantLoss)
					}
					checkStep(t, name, before, flatten(u, i, g), grad, float64(lr))
				}
			})
		}
	}
}

// deepStyleLoss is an independent float64 implementation of the objective DeepStyle.Step
// descends over θ = [user, item, neg, global] (widths K, K+1, K+1, K·F + C·K). The
// category slots of the item rows are constants (their derivative must be 0).
func deepStyleLoss(o DeepStyleOptions, w float64, fi, fj []float64) func([]float64) float64 {
	k, f, nc := o.Factors, o.FeatureDim, o.Categories
	reg, regC, regE, s := float64(o.Reg), float64(o.RegCategory), float64(o.RegVisual), float64(o.FeatureScale)
	return func(theta []float64) float64 {
		rows := unflatten(theta, k, k+1, k+1, k*f+nc*k)
		u, i, j, g := rows[0], rows[1], rows[2], rows[3]
		lat := func(item []float64) []float64 {
			c := int(math.Round(item[0])) // a constant: its finite difference must not move it
			return g[k*f+c*k : k*f+(c+1)*k]
		}
		score := func(item, feat []float64) float64 {
			l := lat(item)
			v := 0.0
			for r := 0; r < k; r++ {
				rep := item[1+r] - l[r]
				for c := 0; c < f && feat != nil; c++ {
					rep += g[r*f+c] * s * feat[c]
				}
				v += u[r] * rep
			}
			return v
		}
		x := score(i, fi) - score(j, fj)
		return w*math.Log(1+math.Exp(-x)) + reg/2*(sqnorm(u)+sqnorm(i[1:])+sqnorm(j[1:])) +
			regC/2*(sqnorm(lat(i))+sqnorm(lat(j))) + regE/2*sqnorm(g[:k*f])
	}
}

func TestDeepStyleGradient(t *testing.T) {
	for _, c := range []struct {
		k, f, cats, ci, cj int
		nilJ               bool
	}{{1, 1, 1, 0, 0, false}, {4, 7, 3, 1, 2, false}, {8, 16, 4, 3, 3, false}, {13, 5, 5, 0, 4, true}} {
		for _, lr := range []float32{1e-3, 0.1} {
			name := fmt.Sprintf("K=%d/F=%d/C=%d/c=%d,%d/nil=%v/lr=%g", c.k, c.f, c.cats, c.ci, c.cj, c.nilJ, lr)
			t.Run(name, func(t *testing.T) {
				rng := newRNG(uint64(c.k*1000+c.f*10+c.ci) + uint64(lr*1e4))
				for trial := 0; trial < 5; trial++ {
					o := DefaultDeepStyleOptions()
					o.Factors, o.FeatureDim, o.Categories = c.k, c.f, c.cats
					o.LearnRate, o.Reg, o.RegCategory, o.RegVisual, o.FeatureScale = lr, 0.05, 0.04, 0.02, 0.5
					m := NewDeepStyle(o)
					u, i, j := randRow(rng, c.k, 0.5), randRow(rng, c.k+1, 0.5), randRow(rng, c.k+1, 0.5)
					i[0], j[0] = float32(c.ci), float32(c.cj)
					g := randRow(rng, m.GlobalDim(), 0.3)
					fi, fj := randRow(rng, c.f, 1), randRow(rng, c.f, 1)
					if c.nilJ {
						fj = nil
					}
					w := float32(0.5 + 2*rng.Float64())
					before := flatten(u, i, j, g)
					grad := fdGrad(deepStyleLoss(o, float64(w), f64(fi), f64(fj)), before)
					o0 := o
					o0.Reg, o0.RegCategory, o0.RegVisual = 0, 0, 0
					wantLoss := deepStyleLoss(o0, float64(w), f64(fi), f64(fj))(before)
					loss := m.Step(&Example{User: u, Item: i, Neg: j, Global: g, ItemFeat: fi, NegFeat: fj, Value: 1, Weight: w})
					if math.Abs(float64(loss)-wantLoss) > 1e-5*math.Max(1, wantLoss) {
						t.Errorf("loss %g, want %g", loss, wantLoss)
					}
					checkStep(t, name, before, flatten(u, i, j, g), grad, float64(lr))
				}
			})
		}
	}
}

// TestVisualScores: for VMF and DeepStyle, Score + FeatureWeights·f == ScoreFeatures, and
// the category of DeepStyle rows follows SetItemMetadata.
func TestVisualScores(t *testing.T) {
	rng := newRNG(23)
	vmf := DefaultVMFOptions()
	vmf.Factors, vmf.VisualFactors, vmf.FeatureDim = 5, 3, 9
	ds := DefaultDeepStyleOptions()
	ds.Factors, ds.FeatureDim, ds.Categories = 5, 9, 4
	for _, m := range []Visual{NewVMF(vmf), NewDeepStyle(ds)} {
		wv := make([]float32, 9)
		for trial := 0; trial < 20; trial++ {
			u, i, g, f := randRow(rng, m.UserDim(), 1), randRow(rng, m.ItemDim(), 1), randRow(rng, m.GlobalDim(), 1), randRow(rng, 9, 1)
			if md, ok := m.(ItemMetadata); ok {
				md.SetItemMetadata(i, map[string]string{CategoryKey: fmt.Sprint("c", trial)})
			}
			m.FeatureWeights(wv, u, g)
			got, want := float64(m.Score(u, i, g))+dot64(wv, f), float64(m.ScoreFeatures(u, i, g, f))
			if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("%s: Score + FeatureWeights·f = %v, ScoreFeatures %v", m.Name(), got, want)
			}
		}
	}
	m := NewDeepStyle(ds)
	row := make([]float32, m.ItemDim())
	m.SetItemMetadata(row, nil)
	if row[0] != 0 {
		t.Errorf("no category: index %v, want 0", row[0])
	}
	m.SetItemMetadata(row, map[string]string{CategoryKey: "Drama"})
	if c := row[0]; c < 1 || c >= 4 || c != float32(m.Category("Drama")) {
		t.Errorf("category Drama: index %v", c)
	}
	one := ds
	one.Categories = 1
	if c := NewDeepStyle(one).Category("Drama"); c != 0 {
		t.Errorf("one category: Drama → %d, want 0", c)
	}
}

func TestVisualModelsAllocsAndExtremes(t *testing.T) {
	vmf := DefaultVMFOptions()
	ds := DefaultDeepStyleOptions()
	for _, m := range []Visual{NewVMF(vmf), NewDeepStyle(ds)} {
		rng := newRNG(3)
		u, i, j := randRow(rng, m.UserDim(), 0.1), randRow(rng, m.ItemDim(), 0.1), randRow(rng, m.ItemDim(), 0.1)
		i[0], j[0] = 1, 2
		g := randRow(rng, m.GlobalDim(), 0.01)
		fi, fj := randRow(rng, m.FeatureDim(), 1), randRow(rng, m.FeatureDim(), 1)
		ex := &Example{User: u, Item: i, Neg: j, Global: g, ItemFeat: fi, NegFeat: fj, Value: 3, Weight: 1}
		if n := testing.AllocsPerRun(20, func() { m.Step(ex) }); n != 0 {
			t.Errorf("%s: Step allocates %v times", m.Name(), n)
		}
		wv := make([]float32, m.FeatureDim())
		dst := make([]float32, m.(Servable).ServeDim())
		if n := testing.AllocsPerRun(20, func() {
			m.ScoreFeatures(u, i, g, fi)
			m.FeatureWeights(wv, u, g)
			m.(Servable).ItemVector(dst, i, g, fi)
		}); n != 0 {
			t.Errorf("%s: scoring allocates %v times", m.Name(), n)
		}
	}
	for _, c := range extremeCases() {
		t.Run(c.name, func(t *testing.T) {
			vo := DefaultVMFOptions()
			vo.Factors, vo.VisualFactors, vo.FeatureDim = 8, 3, 5
			do := DefaultDeepStyleOptions()
			do.Factors, do.FeatureDim, do.Categories = 8, 5, 3
			for _, m := range []Visual{NewVMF(vo), NewDeepStyle(do)} {
				u, i, j := c.row(m.UserDim(), 1), c.row(m.ItemDim(), 2), c.row(m.ItemDim(), 3)
				g, fi, fj := c.row(m.GlobalDim(), 4), c.row(5, 5), c.row(5, 6)
				for step := 0; step < 5; step++ {
					loss := m.Step(&Example{User: u, Item: i, Neg: j, Global: g, ItemFeat: fi, NegFeat: fj, Value: c.value, Weight: c.weight})
					if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
						t.Fatalf("%s step %d: loss %v", m.Name(), step, loss)
					}
					if !allFinite(u, i, j, g) {
						t.Fatalf("%s step %d: non-finite parameter", m.Name(), step)
					}
					if s := m.ScoreFeatures(u, i, g, fi); math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
						t.Fatalf("%s step %d: score %v", m.Name(), step, s)
					}
				}
			}
		})
	}
}
