package models

import (
	"fmt"
	"math"
	"testing"
)

// mfLoss is an independent float64 implementation of the objective MF.Step descends:
// the weighted squared error (and, implicit, the negative's) plus the L2 terms.
func mfLoss(o MFOptions, w, y float64, implicit bool) func([]float64) float64 {
	k := o.Factors
	reg, regB := float64(o.Reg), float64(o.RegBias)
	return func(theta []float64) float64 {
		var rows [][]float64
		if implicit {
			rows = unflatten(theta, k+1, k+1, k+1, 1)
		} else {
			rows = unflatten(theta, k+1, k+1, 1)
		}
		u, i, g := rows[0], rows[1], rows[len(rows)-1]
		mu := g[0]
		score := func(item []float64) float64 { return mu + u[0] + item[0] + dot64s(u[1:], item[1:]) }
		if !implicit {
			e := score(i) - y
			return w/2*e*e + reg/2*(sqnorm(u[1:])+sqnorm(i[1:])) + regB/2*(u[0]*u[0]+i[0]*i[0])
		}
		j := rows[2]
		ei, ej := score(i)-1, score(j)
		return w/2*ei*ei + ej*ej/2 +
			reg/2*(sqnorm(u[1:])+sqnorm(i[1:])+sqnorm(j[1:])) +
			regB/2*(u[0]*u[0]+i[0]*i[0]+j[0]*j[0])
	}
}

func TestMFGradient(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		for _, k := range []int{1, 3, 4, 8, 13} {
			// lr = 1e-3 is the small step; lr = 0.1 makes an update that reads an already
			// updated vector (an O(lr²) error) fail the same tolerance.
			for _, lr := range []float32{1e-3, 0.1} {
				name := fmt.Sprintf("implicit=%v/K=%d/lr=%g", implicit, k, lr)
				t.Run(name, func(t *testing.T) {
					rng := newRNG(uint64(k*1000) + uint64(lr*1e4))
					for trial := 0; trial < 10; trial++ {
						o := DefaultMFOptions()
						o.Factors, o.LearnRate, o.Explicit = k, lr, !implicit
						o.Reg, o.RegBias = 0.05, 0.03
						m := NewMF(o)
						u, i, j := randRow(rng, k+1, 0.5), randRow(rng, k+1, 0.5), randRow(rng, k+1, 0.5)
						g := []float32{float32(3 + rng.NormFloat64()*0.3)}
						if implicit {
							g[0] = float32(rng.NormFloat64() * 0.2)
						}
						w, y := float32(0.5+2*rng.Float64()), float32(1+rng.IntN(5))
						ex := &Example{User: u, Item: i, Global: g, Value: y, Weight: w}
						rows := [][]float32{u, i, g}
						if implicit {
							ex.Neg, ex.Value = j, 1
							rows = [][]float32{u, i, j, g}
						}
						before := flatten(rows...)
						f := mfLoss(o, float64(w), float64(y), implicit)
						grad := fdGrad(f, before)

						// The returned loss is the data term before the step.
						loss := m.Step(ex)
						wantLoss := mfDataLoss(before, o, float64(w), float64(y), implicit)
						if math.Abs(float64(loss)-wantLoss) > 1e-5*math.Max(1, wantLoss) {
							t.Errorf("loss %g, want %g", loss, wantLoss)
						}
						checkStep(t, name, before, flatten(rows...), grad, float64(lr))
					}
				})
			}
		}
	}
}

// mfDataLoss is mfLoss without the L2 terms.
func mfDataLoss(theta []float64, o MFOptions, w, y float64, implicit bool) float64 {
	o.Reg, o.RegBias = 0, 0
	return mfLoss(o, w, y, implicit)(theta)
}

// TestMFLearnsExplicit trains on a planted rating set and compares held-out RMSE with the
// global-mean predictor.
func TestMFLearnsExplicit(t *testing.T) {
	rng := newRNG(7)
	const nU, nI = 300, 200
	truth := newPlanted(rng, nU, nI, 3)
	type rating struct {
		u, i int
		r    float32
	}
	var train, test []rating
	for u := 0; u < nU; u++ {
		for i := 0; i < nI; i++ {
			if rng.Float64() >= 0.2 {
				continue
			}
			r := 3.5 + truth.bu[u] + truth.bi[i] + truth.affinity(u, i) + 0.2*rng.NormFloat64()
			x := rating{u, i, float32(r)}
			if rng.Float64() < 0.8 {
				train = append(train, x)
			} else {
				test = append(test, x)
			}
		}
	}
	o := DefaultMFOptions()
	o.Factors, o.LearnRate = 8, 0.02
	m := NewMF(o)
	users, items := newRowTable(nU, m.UserDim()), newRowTable(nI, m.ItemDim())
	for u := 0; u < nU; u++ {
		m.InitUser(users.at(u), rng)
	}
	global := make([]float32, 1)
	var mean float64
	for _, x := range train {
		mean += float64(x.r)
	}
	mean /= float64(len(train))
	ex := &Example{Global: global, Weight: 1}
	for epoch := 0; epoch < 30; epoch++ {
		rng.Shuffle(len(train), func(a, b int) { train[a], train[b] = train[b], train[a] })
		for _, x := range train {
			ex.User, ex.Item, ex.Value = users.at(x.u), items.at(x.i), x.r
			m.Step(ex)
		}
	}
	var se, seMean float64
	for _, x := range test {
		d := float64(m.Score(users.at(x.u), items.at(x.i), global) - x.r)
		se += d * d
		seMean += (mean - float64(x.r)) * (mean - float64(x.r))
	}
	rmse, base := math.Sqrt(se/float64(len(test))), math.Sqrt(seMean/float64(len(test)))
	t.Logf("held-out RMSE %.4f, global mean %.4f (%d train, %d test)", rmse, base, len(train), len(test))
	if !(rmse < 0.8*base) {
		t.Errorf("RMSE %.4f is not below 0.8 × the global-mean RMSE %.4f", rmse, base)
	}
}

// TestMFLearnsImplicit: weighted implicit MF with sampled negatives ranks held-out
// positives above random items.
func TestMFLearnsImplicit(t *testing.T) {
	o := DefaultMFOptions()
	o.Factors, o.LearnRate, o.Explicit = 16, 0.02, false
	auc := trainImplicit(t, NewMF(o), 11)
	t.Logf("implicit MF held-out AUC %.4f", auc)
	if !(auc > 0.8) {
		t.Errorf("implicit MF AUC %.4f, want > 0.8", auc)
	}
}

func TestMFAllocs(t *testing.T) {
	for _, explicit := range []bool{true, false} {
		o := DefaultMFOptions()
		o.Explicit = explicit
		m := NewMF(o)
		rng := newRNG(3)
		u, i, j := randRow(rng, 65, 0.1), randRow(rng, 65, 0.1), randRow(rng, 65, 0.1)
		ex := &Example{User: u, Item: i, Global: []float32{3}, Value: 4, Weight: 1}
		if !explicit {
			ex.Neg, ex.Value = j, 1
		}
		if n := testing.AllocsPerRun(200, func() { m.Step(ex) }); n != 0 {
			t.Errorf("explicit=%v: Step allocates %v times", explicit, n)
		}
		if n := testing.AllocsPerRun(200, func() { m.Score(u, i, ex.Global) }); n != 0 {
			t.Errorf("explicit=%v: Score allocates %v times", explicit, n)
		}
		// The float64 fallback allocates nothing either.
		for k := range u {
			i[k], j[k] = -1e30, 1e30
		}
		ex.Value = 1e30
		if n := testing.AllocsPerRun(200, func() {
			for k := range u {
				u[k] = 1e30
			}
			m.Step(ex)
		}); n != 0 {
			t.Errorf("explicit=%v: fallback Step allocates %v times", explicit, n)
		}
	}
}

// TestMFExtremeInputs: finite but absurd rows, ratings and weights leave every parameter,
// the loss and the score finite.
func TestMFExtremeInputs(t *testing.T) {
	for _, c := range extremeCases() {
		for _, explicit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/explicit=%v", c.name, explicit), func(t *testing.T) {
				o := DefaultMFOptions()
				o.Factors, o.Explicit = 8, explicit
				m := NewMF(o)
				u, i, j := c.row(9, 1), c.row(9, 2), c.row(9, 3)
				g := c.row(1, 4)
				for step := 0; step < 5; step++ {
					ex := &Example{User: u, Item: i, Global: g, Value: c.value, Weight: c.weight}
					if !explicit {
						ex.Neg = j
					}
					loss := m.Step(ex)
					if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
						t.Fatalf("step %d: loss %v", step, loss)
					}
					if !allFinite(u, i, j, g) {
						t.Fatalf("step %d: non-finite parameter: u=%v i=%v j=%v g=%v", step, u, i, j, g)
					}
					if s := m.Score(u, i, g); math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
						t.Fatalf("step %d: score %v", step, s)
					}
				}
			})
		}
	}
}

type extremeCase struct {
	name          string
	row           func(n, seed int) []float32
	value, weight float32
}

// extremeCases are finite inputs at the edges of float32: rows near MaxFloat32 with mixed
// signs (so that float32 dot products overflow to +Inf and −Inf and would give NaN), tiny
// rows, absurd ratings and weights.
func extremeCases() []extremeCase {
	fill := func(v float32, alternate bool) func(n, seed int) []float32 {
		return func(n, seed int) []float32 {
			r := make([]float32, n)
			for k := range r {
				r[k] = v
				if alternate && (k+seed)%2 == 0 {
					r[k] = -v
				}
			}
			return r
		}
	}
	normal := func(n, seed int) []float32 { return randRow(newRNG(uint64(seed)), n, 0.1) }
	return []extremeCase{
		{"max-rows", fill(math.MaxFloat32, false), 5, 1},
		{"max-rows-mixed-signs", fill(math.MaxFloat32, true), 5, 1},
		{"1e30-rows", fill(1e30, true), 5, 1},
		{"1e19-rows", fill(1e19, true), 5, 1},
		{"tiny-rows", fill(1e-38, true), 5, 1},
		{"huge-rating", normal, 3e38, 1},
		{"huge-negative-rating", normal, -3e38, 1},
		{"huge-weight", normal, 5, 3e38},
		{"huge-everything", fill(-3e38, true), 3e38, 3e38},
	}
}

// TestNonFiniteExampleIsNoop: a NaN or infinite weight (or rating) changes no parameter.
func TestNonFiniteExampleIsNoop(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	rng := newRNG(12)
	mfe, mfi := DefaultMFOptions(), DefaultMFOptions()
	mfi.Explicit = false
	for _, m := range []Online{NewMF(mfe), NewMF(mfi), NewBPR(DefaultBPROptions())} {
		for _, c := range []struct{ value, weight float32 }{{nan, 1}, {inf, 1}, {1, nan}, {1, inf}, {1, -inf}} {
			if m.NeedsNegative() && c.weight == 1 {
				continue // implicit models ignore Value
			}
			u, i, j := randRow(rng, m.UserDim(), 0.1), randRow(rng, m.ItemDim(), 0.1), randRow(rng, m.ItemDim(), 0.1)
			g := make([]float32, m.GlobalDim())
			before := flatten(u, i, j, g)
			loss := m.Step(&Example{User: u, Item: i, Neg: j, Global: g, Value: c.value, Weight: c.weight})
			after := flatten(u, i, j, g)
			for k := range before {
				if before[k] != after[k] {
					t.Fatalf("%s value=%v weight=%v: parameter %d changed", m.Name(), c.value, c.weight, k)
				}
			}
			if loss != 0 {
				t.Errorf("%s value=%v weight=%v: loss %v, want 0", m.Name(), c.value, c.weight, loss)
			}
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultMFOptions().Validate(); err != nil {
		t.Error(err)
	}
	if err := DefaultBPROptions().Validate(); err != nil {
		t.Error(err)
	}
	bad := []func(*MFOptions){
		func(o *MFOptions) { o.Factors = 0 },
		func(o *MFOptions) { o.LearnRate = 0 },
		func(o *MFOptions) { o.LearnRate = float32(math.Inf(1)) },
		func(o *MFOptions) { o.Reg = -1 },
		func(o *MFOptions) { o.RegBias = float32(math.NaN()) },
		func(o *MFOptions) { o.InitStd = -0.1 },
		func(o *MFOptions) { o.MaxError = float32(math.NaN()) },
	}
	for k, f := range bad {
		o := DefaultMFOptions()
		f(&o)
		if o.Validate() == nil {
			t.Errorf("MF case %d: invalid options accepted: %+v", k, o)
		}
	}
	o := DefaultBPROptions()
	o.Factors = -1
	if o.Validate() == nil {
		t.Error("BPR factors -1 accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewBPR did not panic on invalid options")
		}
	}()
	NewBPR(o)
}
