package models

import (
	"fmt"
	"math"
	"testing"
)

// bprLoss is an independent float64 implementation of the objective BPR.Step descends.
func bprLoss(o BPROptions, w float64) func([]float64) float64 {
	k := o.Factors
	reg, regB := float64(o.Reg), float64(o.RegBias)
	return func(theta []float64) float64 {
		rows := unflatten(theta, k, k+1, k+1)
		p, i, j := rows[0], rows[1], rows[2]
		x := i[0] + dot64s(p, i[1:]) - j[0] - dot64s(p, j[1:])
		// −ln σ(x) = ln(1 + e^−x), written plainly: the test's values keep |x| small.
		data := math.Log(1 + math.Exp(-x))
		return w*data + reg/2*(sqnorm(p)+sqnorm(i[1:])+sqnorm(j[1:])) + regB/2*(i[0]*i[0]+j[0]*j[0])
	}
}

func TestBPRGradient(t *testing.T) {
	for _, k := range []int{1, 3, 4, 8, 13, 64} {
		// lr = 1e-3 is the small step; lr = 0.1 makes an update that reads an already
		// updated vector (an O(lr²) error) fail the same tolerance.
		for _, lr := range []float32{1e-3, 0.1} {
			name := fmt.Sprintf("K=%d/lr=%g", k, lr)
			t.Run(name, func(t *testing.T) {
				rng := newRNG(uint64(k*1000) + uint64(lr*1e4))
				for trial := 0; trial < 10; trial++ {
					o := DefaultBPROptions()
					o.Factors, o.LearnRate, o.Reg, o.RegBias = k, lr, 0.05, 0.03
					m := NewBPR(o)
					u, i, j := randRow(rng, k, 0.5), randRow(rng, k+1, 0.5), randRow(rng, k+1, 0.5)
					w := float32(0.5 + 2*rng.Float64())
					before := flatten(u, i, j)
					f := bprLoss(o, float64(w))
					grad := fdGrad(f, before)
					o0 := o
					o0.Reg, o0.RegBias = 0, 0
					wantLoss := bprLoss(o0, float64(w))(before)

					loss := m.Step(&Example{User: u, Item: i, Neg: j, Value: 1, Weight: w})
					if math.Abs(float64(loss)-wantLoss) > 1e-5*math.Max(1, wantLoss) {
						t.Errorf("loss %g, want %g", loss, wantLoss)
					}
					checkStep(t, name, before, flatten(u, i, j), grad, float64(lr))
				}
			})
		}
	}
}

// TestBPRLossStable: the returned loss is ln(1+e^−x) without overflow for large |x|.
func TestBPRLossStable(t *testing.T) {
	for _, x := range []float64{-1000, -50, -1, 0, 1, 50, 1000} {
		loss, g := softplusNeg(x)
		want := math.Log1p(math.Exp(-math.Abs(x))) + math.Max(0, -x)
		if math.Abs(loss-want) > 1e-12*math.Max(1, want) {
			t.Errorf("x=%g: loss %g, want %g", x, loss, want)
		}
		if wantG := 1 / (1 + math.Exp(x)); math.Abs(g-wantG) > 1e-15 {
			t.Errorf("x=%g: σ(−x) %g, want %g", x, g, wantG)
		}
	}
}

// trainImplicit trains m on a planted implicit data set (each user's positives are the 40
// items it truly prefers; 30 train, 10 held out) and returns the AUC of held-out positives
// against items that are not positives.
func trainImplicit(t *testing.T, m Online, seed uint64) float64 {
	t.Helper()
	rng := newRNG(seed)
	const nU, nI, nPos, nTrain = 200, 300, 40, 30
	truth := newPlanted(rng, nU, nI, 4)
	type pair struct{ u, i int }
	var train, test []pair
	positive := make([]map[int]bool, nU)
	order := make([]int, nI)
	for u := 0; u < nU; u++ {
		for i := range order {
			order[i] = i
		}
		s := func(i int) float64 { return truth.affinity(u, i) + truth.bi[i] }
		// Partial selection sort: the top nPos items.
		for a := 0; a < nPos; a++ {
			best := a
			for b := a + 1; b < nI; b++ {
				if s(order[b]) > s(order[best]) {
					best = b
				}
			}
			order[a], order[best] = order[best], order[a]
		}
		positive[u] = map[int]bool{}
		top := order[:nPos]
		rng.Shuffle(len(top), func(a, b int) { top[a], top[b] = top[b], top[a] })
		for n, i := range top {
			positive[u][i] = true
			if n < nTrain {
				train = append(train, pair{u, i})
			} else {
				test = append(test, pair{u, i})
			}
		}
	}
	users, items := newRowTable(nU, m.UserDim()), newRowTable(nI, m.ItemDim())
	for u := 0; u < nU; u++ {
		m.InitUser(users.at(u), rng)
	}
	var global []float32
	if m.GlobalDim() > 0 {
		global = make([]float32, m.GlobalDim())
	}
	ex := &Example{Global: global, Value: 1, Weight: 1}
	for epoch := 0; epoch < 30; epoch++ {
		rng.Shuffle(len(train), func(a, b int) { train[a], train[b] = train[b], train[a] })
		for _, x := range train {
			j := rng.IntN(nI - 1)
			if j >= x.i {
				j++
			}
			ex.User, ex.Item, ex.Neg = users.at(x.u), items.at(x.i), items.at(j)
			m.Step(ex)
		}
	}
	var hits, pairs float64
	for _, x := range test {
		for n := 0; n < 20; n++ {
			j := rng.IntN(nI)
			if positive[x.u][j] {
				continue
			}
			si, sj := m.Score(users.at(x.u), items.at(x.i), global), m.Score(users.at(x.u), items.at(j), global)
			switch {
			case si > sj:
				hits++
			case si == sj:
				hits += 0.5
			}
			pairs++
		}
	}
	return hits / pairs
}

func TestBPRLearns(t *testing.T) {
	o := DefaultBPROptions()
	o.Factors = 16
	auc := trainImplicit(t, NewBPR(o), 5)
	t.Logf("BPR held-out AUC %.4f", auc)
	if !(auc > 0.8) {
		t.Errorf("BPR AUC %.4f, want > 0.8", auc)
	}
}

func TestBPRAllocs(t *testing.T) {
	m := NewBPR(DefaultBPROptions())
	rng := newRNG(3)
	u, i, j := randRow(rng, 64, 0.1), randRow(rng, 65, 0.1), randRow(rng, 65, 0.1)
	ex := &Example{User: u, Item: i, Neg: j, Value: 1, Weight: 1}
	if n := testing.AllocsPerRun(200, func() { m.Step(ex) }); n != 0 {
		t.Errorf("Step allocates %v times", n)
	}
	if n := testing.AllocsPerRun(200, func() { m.Score(u, i, nil) }); n != 0 {
		t.Errorf("Score allocates %v times", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		for k := range u {
			u[k] = 1e30
		}
		m.Step(ex)
	}); n != 0 {
		t.Errorf("fallback Step allocates %v times", n)
	}
}

func TestBPRExtremeInputs(t *testing.T) {
	for _, c := range extremeCases() {
		t.Run(c.name, func(t *testing.T) {
			m := NewBPR(BPROptions{Factors: 8, LearnRate: 0.05, Reg: 0.01, RegBias: 0.01, InitStd: 0.1})
			u, i, j := c.row(8, 1), c.row(9, 2), c.row(9, 3)
			for step := 0; step < 5; step++ {
				loss := m.Step(&Example{User: u, Item: i, Neg: j, Value: c.value, Weight: c.weight})
				if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
					t.Fatalf("step %d: loss %v", step, loss)
				}
				if !allFinite(u, i, j) {
					t.Fatalf("step %d: non-finite parameter: u=%v i=%v j=%v", step, u, i, j)
				}
				if s := m.Score(u, i, nil); math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
					t.Fatalf("step %d: score %v", step, s)
				}
			}
		})
	}
}

// TestBPRNegativeIsItem: a negative that is the observed item's own row changes nothing.
func TestBPRNegativeIsItem(t *testing.T) {
	m := NewBPR(DefaultBPROptions())
	rng := newRNG(9)
	u, i := randRow(rng, 64, 0.1), randRow(rng, 65, 0.1)
	before := flatten(u, i)
	if loss := m.Step(&Example{User: u, Item: i, Neg: i, Value: 1, Weight: 1}); loss != 0 {
		t.Errorf("loss %v, want 0 (no step)", loss)
	}
	after := flatten(u, i)
	for k := range before {
		if before[k] != after[k] {
			t.Fatalf("parameter %d changed", k)
		}
	}
}
