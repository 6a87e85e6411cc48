package models

import (
	"fmt"
	"math"
	"testing"
)

// onlineVBPRLoss is an independent float64 implementation of the objective OnlineVBPR.Step
// descends, over θ = [user, item, neg, global] (widths K+K', K+1, K+1, (K'+1)·F).
func onlineVBPRLoss(o OnlineVBPROptions, w float64, fi, fj []float64) func([]float64) float64 {
	k, k2, f := o.Factors, o.VisualFactors, o.FeatureDim
	reg, regB, regE, s := float64(o.Reg), float64(o.RegBias), float64(o.RegVisual), float64(o.FeatureScale)
	return func(theta []float64) float64 {
		rows := unflatten(theta, k+k2, k+1, k+1, (k2+1)*f)
		u, i, j, g := rows[0], rows[1], rows[2], rows[3]
		score := func(item []float64, feat []float64) float64 {
			v := item[0] + dot64s(u[:k], item[1:])
			if feat == nil {
				return v
			}
			for r := 0; r <= k2; r++ {
				coef := 1.0 // β' row
				if r < k2 {
					coef = u[k+r]
				}
				proj := 0.0
				for c := 0; c < f; c++ {
					proj += g[r*f+c] * s * feat[c]
				}
				v += coef * proj
			}
			return v
		}
		x := score(i, fi) - score(j, fj)
		data := math.Log(1 + math.Exp(-x))
		return w*data + reg/2*(sqnorm(u)+sqnorm(i[1:])+sqnorm(j[1:])) +
			regB/2*(i[0]*i[0]+j[0]*j[0]) + regE/2*sqnorm(g)
	}
}

func f64(v []float32) []float64 {
	if v == nil {
		return nil
	}
	return flatten(v)
}

func TestOnlineVBPRGradient(t *testing.T) {
	for _, c := range []struct {
		k, k2, f int
		nilI     bool // item without features
		nilJ     bool
	}{{1, 1, 1, false, false}, {4, 3, 7, false, false}, {8, 5, 16, false, false}, {13, 4, 9, false, false},
		{8, 5, 16, true, false}, {8, 5, 16, false, true}, {8, 5, 16, true, true}} {
		for _, lr := range []float32{1e-3, 0.1} {
			name := fmt.Sprintf("K=%d/K'=%d/F=%d/nil=%v,%v/lr=%g", c.k, c.k2, c.f, c.nilI, c.nilJ, lr)
			t.Run(name, func(t *testing.T) {
				rng := newRNG(uint64(c.k*1000+c.k2*100+c.f) + uint64(lr*1e4))
				for trial := 0; trial < 5; trial++ {
					o := DefaultOnlineVBPROptions()
					o.Factors, o.VisualFactors, o.FeatureDim = c.k, c.k2, c.f
					o.LearnRate, o.Reg, o.RegBias, o.RegVisual, o.FeatureScale = lr, 0.05, 0.03, 0.02, 0.5
					m := NewOnlineVBPR(o)
					u, i, j := randRow(rng, c.k+c.k2, 0.5), randRow(rng, c.k+1, 0.5), randRow(rng, c.k+1, 0.5)
					g := randRow(rng, (c.k2+1)*c.f, 0.3)
					fi, fj := randRow(rng, c.f, 1), randRow(rng, c.f, 1)
					if c.nilI {
						fi = nil
					}
					if c.nilJ {
						fj = nil
					}
					w := float32(0.5 + 2*rng.Float64())
					before := flatten(u, i, j, g)
					grad := fdGrad(onlineVBPRLoss(o, float64(w), f64(fi), f64(fj)), before)
					o0 := o
					o0.Reg, o0.RegBias, o0.RegVisual = 0, 0, 0
					wantLoss := onlineVBPRLoss(o0, float64(w), f64(fi), f64(fj))(before)

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

// TestOnlineVBPRScores checks Score, ScoreFeatures and FeatureWeights against the float64
// score of the loss above.
func TestOnlineVBPRScores(t *testing.T) {
	rng := newRNG(17)
	o := DefaultOnlineVBPROptions()
	o.Factors, o.VisualFactors, o.FeatureDim, o.FeatureScale = 6, 3, 11, 0.25
	m := NewOnlineVBPR(o)
	wv := make([]float32, o.FeatureDim)
	for trial := 0; trial < 20; trial++ {
		u, i := randRow(rng, 9, 1), randRow(rng, 7, 1)
		g := randRow(rng, 4*11, 1)
		f := randRow(rng, 11, 1)
		want := float64(i[0]) + dot64(u[:6], i[1:])
		if got := float64(m.Score(u, i, g)); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("Score %v, want %v", got, want)
		}
		for r := 0; r < 4; r++ {
			c := 1.0
			if r < 3 {
				c = float64(u[6+r])
			}
			want += c * 0.25 * dot64(g[r*11:(r+1)*11], f)
		}
		if got := float64(m.ScoreFeatures(u, i, g, f)); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("ScoreFeatures %v, want %v", got, want)
		}
		m.FeatureWeights(wv, u, g)
		if got := float64(m.Score(u, i, g)) + dot64(wv, f); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("Score + FeatureWeights·f %v, want %v", got, want)
		}
	}
}

func TestOnlineVBPRAllocs(t *testing.T) {
	o := DefaultOnlineVBPROptions()
	m := NewOnlineVBPR(o)
	rng := newRNG(3)
	u, i, j := randRow(rng, m.UserDim(), 0.1), randRow(rng, m.ItemDim(), 0.1), randRow(rng, m.ItemDim(), 0.1)
	g := randRow(rng, m.GlobalDim(), 0.01)
	fi, fj := randRow(rng, o.FeatureDim, 1), randRow(rng, o.FeatureDim, 1)
	ex := &Example{User: u, Item: i, Neg: j, Global: g, ItemFeat: fi, NegFeat: fj, Value: 1, Weight: 1}
	if n := testing.AllocsPerRun(50, func() { m.Step(ex) }); n != 0 {
		t.Errorf("Step allocates %v times", n)
	}
	dst := make([]float32, m.ServeDim())
	wv := make([]float32, o.FeatureDim)
	if n := testing.AllocsPerRun(50, func() {
		m.ScoreFeatures(u, i, g, fi)
		m.ItemVector(dst, i, g, fi)
		m.FeatureWeights(wv, u, g)
	}); n != 0 {
		t.Errorf("scoring allocates %v times", n)
	}
	if n := testing.AllocsPerRun(50, func() {
		for k := range g {
			g[k] = 1e30
		}
		m.Step(ex)
	}); n != 0 {
		t.Errorf("fallback Step allocates %v times", n)
	}
}

func TestOnlineVBPRExtremeInputs(t *testing.T) {
	for _, c := range extremeCases() {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOnlineVBPROptions()
			o.Factors, o.VisualFactors, o.FeatureDim = 8, 3, 5
			m := NewOnlineVBPR(o)
			u, i, j := c.row(11, 1), c.row(9, 2), c.row(9, 3)
			g, fi, fj := c.row(20, 4), c.row(5, 5), c.row(5, 6)
			for step := 0; step < 5; step++ {
				loss := m.Step(&Example{User: u, Item: i, Neg: j, Global: g, ItemFeat: fi, NegFeat: fj, Value: c.value, Weight: c.weight})
				if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
					t.Fatalf("step %d: loss %v", step, loss)
				}
				if !allFinite(u, i, j, g) {
					t.Fatalf("step %d: non-finite parameter: u=%v i=%v j=%v g=%v", step, u, i, j, g)
				}
				if s := m.ScoreFeatures(u, i, g, fi); math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
					t.Fatalf("step %d: score %v", step, s)
				}
			}
		})
	}
}

// TestOnlineVBPRLearnsVisual: on planted data whose preferences are a function of the item
// features alone, online VBPR ranks items it never trained on (cold items) well, which BPR
// cannot.
func TestOnlineVBPRLearnsVisual(t *testing.T) {
	rng := newRNG(21)
	const nU, nI, nCold, f = 100, 220, 40, 12
	feats := make([][]float32, nI)
	for i := range feats {
		feats[i] = randRow(rng, f, 1)
	}
	taste := make([][]float64, nU)
	for u := range taste {
		taste[u] = flatten(randRow(rng, f, 1))
	}
	like := func(u, i int) bool { return dot64s(taste[u], flatten(feats[i])) > 1 }
	o := DefaultOnlineVBPROptions()
	o.Factors, o.VisualFactors, o.FeatureDim, o.FeatureScale, o.LearnRate = 8, 6, f, 0.3, 0.05
	m := NewOnlineVBPR(o)
	users, items := newRowTable(nU, m.UserDim()), newRowTable(nI, m.ItemDim())
	for u := 0; u < nU; u++ {
		m.InitUser(users.at(u), rng)
	}
	g := make([]float32, m.GlobalDim())
	ex := &Example{Global: g, Value: 1, Weight: 1}
	warm := nI - nCold
	for epoch := 0; epoch < 20; epoch++ {
		for n := 0; n < 5000; n++ {
			u, i := rng.IntN(nU), rng.IntN(warm)
			if !like(u, i) {
				continue
			}
			j := rng.IntN(warm)
			ex.User, ex.Item, ex.Neg, ex.ItemFeat, ex.NegFeat = users.at(u), items.at(i), items.at(j), feats[i], feats[j]
			m.Step(ex)
		}
	}
	var hits, pairs float64
	for u := 0; u < nU; u++ {
		for a := warm; a < nI; a++ {
			for b := warm; b < nI; b++ {
				if !like(u, a) || like(u, b) {
					continue
				}
				sa, sb := m.ScoreFeatures(users.at(u), items.at(a), g, feats[a]), m.ScoreFeatures(users.at(u), items.at(b), g, feats[b])
				if sa > sb {
					hits++
				} else if sa == sb {
					hits += 0.5
				}
				pairs++
			}
		}
	}
	auc := hits / pairs
	t.Logf("online VBPR cold-item AUC on planted visual tastes: %.4f", auc)
	if !(auc > 0.8) {
		t.Errorf("cold-item AUC %.4f, want > 0.8", auc)
	}
}
