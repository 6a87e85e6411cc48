package models_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// pmfProblem is a small random rating data set: ratings 1–5 from planted rank-3 tastes plus
// noise, some users and items without ratings.
func pmfProblem(seed uint64, nUsers, nItems, perUser int) []datasets.Interaction {
	rng := rand.New(rand.NewPCG(seed, 7))
	const r = 3
	pu, qi := make([][r]float64, nUsers), make([][r]float64, nItems)
	for u := range pu {
		for d := range r {
			pu[u][d] = rng.NormFloat64()
		}
	}
	for i := range qi {
		for d := range r {
			qi[i][d] = rng.NormFloat64()
		}
	}
	var xs []datasets.Interaction
	for u := range nUsers - 1 { // the last user has no ratings
		for range perUser {
			i := rng.IntN(nItems - 1) // nor has the last item
			s := 3 + 0.5*(pu[u][0]*qi[i][0]+pu[u][1]*qi[i][1]+pu[u][2]*qi[i][2]) + 0.3*rng.NormFloat64()
			xs = append(xs, datasets.Interaction{User: int32(u), Item: int32(i), Value: float32(min(5, max(1, math.Round(s))))})
		}
	}
	return xs
}

func smallPMFOptions(biases, scale bool) models.PMFOptions {
	o := models.DefaultPMFOptions()
	o.Factors, o.Iterations, o.Biases, o.ScaleReg, o.Seed, o.Workers = 4, 4, biases, scale, 3, 2
	if !scale {
		o.Reg, o.RegBias = 2, 1
	}
	return o
}

// pmfObjective is the MAP objective of the type's documentation, computed here in float64
// from the stored rows.
func pmfObjective(m *models.PMF, train []datasets.Interaction) float64 {
	o := m.Options()
	var mu float64
	for _, x := range train {
		mu += float64(x.Value)
	}
	mu /= float64(len(train))
	nu, ni := map[int32]float64{}, map[int32]float64{}
	var l float64
	for _, x := range train {
		p, q := m.UserRow(x.User), m.ItemRow(x.Item)
		s := mu + float64(p[0]) + float64(q[0])
		for d := 1; d < len(p); d++ {
			s += float64(p[d]) * float64(q[d])
		}
		l += (float64(x.Value) - s) * (float64(x.Value) - s)
		nu[x.User]++
		ni[x.Item]++
	}
	penalty := func(row []float32, n float64) float64 {
		if !o.ScaleReg {
			n = 1
		}
		var f float64
		for _, v := range row[1:] {
			f += float64(v) * float64(v)
		}
		return n * (float64(o.Reg)*f + float64(o.RegBias)*float64(row[0])*float64(row[0]))
	}
	for u, n := range nu {
		l += penalty(m.UserRow(u), n)
	}
	for i, n := range ni {
		l += penalty(m.ItemRow(i), n)
	}
	return l
}

// TestPMFRowsAreExactSolves: after training, every item row is the exact minimiser of the
// objective with the users fixed, solved here independently by gonum from the normal
// equations; rows without ratings are 0; without biases the bias slot stays 0; and the
// objective never rises from one iteration to the next.
func TestPMFRowsAreExactSolves(t *testing.T) {
	train := pmfProblem(5, 60, 40, 12)
	const nUsers, nItems = 60, 40
	for _, c := range []struct {
		name          string
		biases, scale bool
	}{{"pmf", false, false}, {"pmf-scaled", false, true}, {"biased", true, false}, {"biased-scaled", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			o := smallPMFOptions(c.biases, c.scale)
			m, err := models.TrainPMF(nUsers, nItems, train, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			var mu float64
			for _, x := range train {
				mu += float64(x.Value)
			}
			mu /= float64(len(train))
			if math.Abs(float64(m.Mean())-mu) > 1e-6 {
				t.Errorf("μ %v, want %v", m.Mean(), mu)
			}
			k := o.Factors
			d := k
			if c.biases {
				d++
			}
			for i := int32(0); i < nItems; i++ {
				a := mat.NewDense(d, d, nil)
				b := mat.NewVecDense(d, nil)
				n := 0.0
				for _, x := range train {
					if x.Item != i {
						continue
					}
					n++
					p := m.UserRow(x.User)
					z := make([]float64, d)
					target := float64(x.Value) - mu
					if c.biases {
						z[0] = 1
						target -= float64(p[0])
						for s := range k {
							z[s+1] = float64(p[s+1])
						}
					} else {
						for s := range k {
							z[s] = float64(p[s+1])
						}
					}
					for r := range d {
						for s := range d {
							a.Set(r, s, a.At(r, s)+z[r]*z[s])
						}
						b.SetVec(r, b.AtVec(r)+target*z[r])
					}
				}
				got := m.ItemRow(i)
				if n == 0 {
					if slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
						t.Errorf("item %d has no ratings but row %v", i, got)
					}
					continue
				}
				scale := 1.0
				if c.scale {
					scale = n
				}
				for r := range d {
					a.Set(r, r, a.At(r, r)+scale*float64(o.Reg))
				}
				if c.biases {
					a.Set(0, 0, a.At(0, 0)-scale*float64(o.Reg)+scale*float64(o.RegBias))
				}
				var want mat.VecDense
				if err := want.SolveVec(a, b); err != nil {
					t.Fatal(err)
				}
				w := want.RawVector().Data
				if !c.biases {
					if got[0] != 0 {
						t.Fatalf("item %d: PMF bias slot %v", i, got[0])
					}
					w = append([]float64{0}, w...)
				}
				for s := range got {
					if math.Abs(float64(got[s])-w[s]) > 1e-4*(1+math.Abs(w[s])) {
						t.Fatalf("item %d: row %v, exact solve %v", i, got, w)
					}
				}
			}
			if u := m.UserRow(nUsers - 1); slices.ContainsFunc(u, func(v float32) bool { return v != 0 }) {
				t.Errorf("user without ratings has row %v", u)
			}

			prev := math.Inf(1)
			for it := 1; it <= 6; it++ {
				o.Iterations = it
				mi, err := models.TrainPMF(nUsers, nItems, train, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				l := pmfObjective(mi, train)
				if l > prev*(1+1e-6) {
					t.Errorf("objective rose at iteration %d: %.6f after %.6f", it, l, prev)
				}
				prev = l
			}
		})
	}
}

func TestPMFOptionsAndInput(t *testing.T) {
	for name, mod := range map[string]func(*models.PMFOptions){
		"factors":    func(o *models.PMFOptions) { o.Factors = 0 },
		"iterations": func(o *models.PMFOptions) { o.Iterations = -1 },
		"reg 0":      func(o *models.PMFOptions) { o.Reg = 0 },
		"reg NaN":    func(o *models.PMFOptions) { o.Reg = float32(math.NaN()) },
		"reg Inf":    func(o *models.PMFOptions) { o.Reg = float32(math.Inf(1)) },
		"bias reg":   func(o *models.PMFOptions) { o.Biases, o.RegBias = true, 0 },
		"init std":   func(o *models.PMFOptions) { o.InitStd = -1 },
	} {
		o := models.DefaultPMFOptions()
		mod(&o)
		if o.Validate() == nil {
			t.Errorf("%s: validated", name)
		}
		if _, err := models.TrainPMF(2, 2, nil, o, nil); err == nil {
			t.Errorf("%s: trained", name)
		}
	}
	o := models.DefaultPMFOptions()
	o.RegBias = 0 // unused without biases
	if err := o.Validate(); err != nil {
		t.Errorf("PMF without biases refused a zero bias reg: %v", err)
	}
	for name, x := range map[string]datasets.Interaction{
		"user":  {User: 2, Item: 0, Value: 3},
		"item":  {User: 0, Item: -1, Value: 3},
		"NaN":   {User: 0, Item: 0, Value: float32(math.NaN())},
		"+Inf":  {User: 0, Item: 0, Value: float32(math.Inf(1))},
		"-Inf:": {User: 0, Item: 0, Value: float32(math.Inf(-1))},
	} {
		_, err := models.TrainPMF(2, 2, []datasets.Interaction{{User: 1, Item: 1, Value: 4}, x}, models.DefaultPMFOptions(), nil)
		if !errors.Is(err, models.ErrPMFInput) {
			t.Errorf("%s: error %v, want ErrPMFInput", name, err)
		}
	}
	// No data: every prediction is μ = 0; negative ratings are fine (centred anyway).
	m, err := models.TrainPMF(3, 3, nil, models.DefaultBiasedMFOptions(), nil)
	if err != nil || m.Predict(1, 1) != 0 || m.Score(-1, 7) != 0 {
		t.Errorf("empty training: %v, %v", err, m)
	}
	m, err = models.TrainPMF(1, 2, []datasets.Interaction{{User: 0, Item: 0, Value: -2}, {User: 0, Item: 0, Value: -4}}, models.DefaultBiasedMFOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Mean() != -3 || m.Predict(5, 1) != -3 {
		t.Errorf("μ %v, unknown pair %v, want -3", m.Mean(), m.Predict(5, 1))
	}
}

// TestPMFDeterministicWorkers: the trained model is bit-identical for any number of
// workers, and progress counts the iterations.
func TestPMFDeterministicWorkers(t *testing.T) {
	train := pmfProblem(8, 300, 200, 20)
	for _, biases := range []bool{false, true} {
		var ref []byte
		for _, workers := range []int{1, 2, 5} {
			o := smallPMFOptions(biases, true)
			o.Workers = workers
			var seen []int
			m, err := models.TrainPMF(300, 200, train, o, func(it int) { seen = append(seen, it) })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seen, []int{1, 2, 3, 4}) {
				t.Errorf("progress saw %v", seen)
			}
			b := encode(t, m.Snapshot())
			if ref == nil {
				ref = b
			} else if !bytes.Equal(b, ref) {
				t.Errorf("biases=%v: %d workers give other bytes than 1", biases, workers)
			}
		}
	}
}

// TestPMFSnapshot: a round trip is bit-exact and scores the same; the loader refuses
// snapshots that are not a valid PMF.
func TestPMFSnapshot(t *testing.T) {
	train := pmfProblem(2, 50, 30, 10)
	for _, biases := range []bool{false, true} {
		m, err := models.TrainPMF(50, 30, train, smallPMFOptions(biases, true), nil)
		if err != nil {
			t.Fatal(err)
		}
		snap := m.Snapshot()
		if want := map[bool]string{false: "pmf-als", true: "mf-als"}[biases]; snap.Model != want || m.Name() != want {
			t.Fatalf("model %q / %q, want %q", snap.Model, m.Name(), want)
		}
		m2 := roundTrip(t, snap, models.PMFFromSnapshot)
		if m2.Options().Biases != biases || m2.Options().Factors != 4 || !m2.Options().ScaleReg {
			t.Errorf("options %+v", m2.Options())
		}
		for u := int32(-1); u <= 50; u++ {
			a, b := m.ScoreAll(u, nil), m2.ScoreAll(u, make([]float32, 3))
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) || a[i] != m.Score(u, int32(i)) {
					t.Fatalf("user %d item %d: %v, loaded %v", u, i, a[i], b[i])
				}
			}
		}

		bad := map[string]func(s *models.Snapshot){
			"model":     func(s *models.Snapshot) { s.Model = "wmf" },
			"version":   func(s *models.Snapshot) { s.Version = 2 },
			"factors":   func(s *models.Snapshot) { s.Meta["factors"] = "5" },
			"reg":       func(s *models.Snapshot) { s.Meta["reg"] = "0" },
			"scale_reg": func(s *models.Snapshot) { s.Meta["scale_reg"] = "maybe" },
			"seed":      func(s *models.Snapshot) { delete(s.Meta, "seed") },
			"no global": func(s *models.Snapshot) { s.Tables = s.Tables[:2] },
			"global 2x1": func(s *models.Snapshot) {
				s.Tables[2] = models.Table{Name: "global", Rows: 2, Cols: 1, Data: []float32{1, 2}}
			},
			"short": func(s *models.Snapshot) { s.Tables[0].Data = s.Tables[0].Data[:len(s.Tables[0].Data)-1] },
			"NaN":   func(s *models.Snapshot) { s.Tables[1].Data[7] = float32(math.NaN()) },
			"huge":  func(s *models.Snapshot) { s.Tables[2].Data = []float32{1e20} },
		}
		if !biases {
			bad["bias in pmf"] = func(s *models.Snapshot) { s.Tables[0].Data[5*s.Tables[0].Cols] = 0.5 }
		}
		for name, mod := range bad {
			s := m.Snapshot()
			s.Meta = map[string]string{}
			for k, v := range m.Snapshot().Meta {
				s.Meta[k] = v
			}
			s.Tables = slices.Clone(s.Tables)
			for n := range s.Tables {
				s.Tables[n].Data = slices.Clone(s.Tables[n].Data)
			}
			mod(&s)
			if _, err := models.PMFFromSnapshot(s); !errors.Is(err, models.ErrSnapshotInvalid) {
				t.Errorf("biases=%v %s: error %v, want ErrSnapshotInvalid", biases, name, err)
			}
		}
	}
}

// ratingBaselines holds the mean-rating predictors, computed from train here, independently
// of the models.
type ratingBaselines struct {
	mu             float64
	userMean       []float64 // NaN: user without training ratings (predict mu)
	itemMean       []float64
	userN, itemPop []float64
}

func newRatingBaselines(nUsers, nItems int, train []datasets.Interaction) *ratingBaselines {
	b := &ratingBaselines{userMean: make([]float64, nUsers), itemMean: make([]float64, nItems),
		userN: make([]float64, nUsers), itemPop: make([]float64, nItems)}
	for _, x := range train {
		b.mu += float64(x.Value)
		b.userMean[x.User] += float64(x.Value)
		b.userN[x.User]++
		b.itemMean[x.Item] += float64(x.Value)
		b.itemPop[x.Item]++
	}
	b.mu /= float64(len(train))
	for u, n := range b.userN {
		if n > 0 {
			b.userMean[u] /= n
		} else {
			b.userMean[u] = b.mu
		}
	}
	for i, n := range b.itemPop {
		if n > 0 {
			b.itemMean[i] /= n
		} else {
			b.itemMean[i] = b.mu
		}
	}
	return b
}

// rmse is the root mean squared error of predict over test.
func rmse(test []datasets.Interaction, predict func(u, i int32) float64) float64 {
	var s float64
	for _, x := range test {
		e := predict(x.User, x.Item) - float64(x.Value)
		s += e * e
	}
	return math.Sqrt(s / float64(len(test)))
}

// ratingOrderAUC is, over the test users, the mean fraction of their pairs of held-out items
// with different ratings that score orders like the ratings (ties half): how well a model
// orders what a user did rate, which is what a rating model learns (the ranking AUC of
// eval asks instead which items a user rates at all).
func ratingOrderAUC(test []datasets.Interaction, score func(u, i int32) float64) float64 {
	byUser := map[int32][]datasets.Interaction{}
	for _, x := range test {
		byUser[x.User] = append(byUser[x.User], x)
	}
	var sum float64
	var users int
	for u, xs := range byUser {
		var good, pairs float64
		for a := range xs {
			for b := a + 1; b < len(xs); b++ {
				if xs[a].Value == xs[b].Value {
					continue
				}
				hi, lo := xs[a], xs[b]
				if hi.Value < lo.Value {
					hi, lo = lo, hi
				}
				switch sh, sl := score(u, hi.Item), score(u, lo.Item); {
				case sh > sl:
					good++
				case sh == sl:
					good += 0.5
				}
				pairs++
			}
		}
		if pairs > 0 {
			sum += good / pairs
			users++
		}
	}
	return sum / float64(users)
}

// TestPMFALSMovieLens trains batch PMF and biased MF by ALS with the defaults on the seeded
// random 80/20 split of ml-latest-small (the split of docs/results.md) and compares the
// held-out RMSE with the mean-rating baselines computed here.
//
// Measured (go test ./models -run TestPMFALSMovieLens -v; amd64, 2 loaded cores): global
// mean 1.0372, user mean 0.9377, item mean 0.9690; PMF (ScaleReg λ=0.15) 0.8808, PMF
// with the paper's fixed prior (λ=10) 0.9019, biased MF 0.8542, each trained in well
// under a second.
//
// Ranking: as rating models, PMF and MF rank all items far worse than popularity (AUC
// 0.61-0.64 against 0.896): the squared loss is fitted on rated pairs only, so it says
// nothing about which items a user rates, and an obscure film with two five-star ratings
// tops every list. What they do beat is popularity's order of the films a user rated: the
// per-user pairwise agreement of score and held-out rating (ratingOrderAUC) is 0.648
// (PMF), 0.655 (fixed prior) and 0.663 (MF) against popularity's 0.583; the item mean
// (0.656) orders them about as well as PMF. The test asserts these facts.
func TestPMFALSMovieLens(t *testing.T) {
	ds := loadML(t)
	sp, err := eval.RandomSplit(ds, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	nU, nI := len(ds.Users), len(ds.Items)
	base := newRatingBaselines(nU, nI, sp.Train)
	global := rmse(sp.Test, func(u, i int32) float64 { return base.mu })
	userMean := rmse(sp.Test, func(u, i int32) float64 { return base.userMean[u] })
	itemMean := rmse(sp.Test, func(u, i int32) float64 { return base.itemMean[i] })
	best := min(global, userMean, itemMean)
	t.Logf("baselines: global mean %.4f, user mean %.4f, item mean %.4f", global, userMean, itemMean)
	eo := eval.EvalOptions{Workers: 2}
	pop := eval.Evaluate(eval.NewPopularityScorer(nI, sp.Train), nI, sp.Train, sp.Test, []int{20}, eo)
	popOrder := ratingOrderAUC(sp.Test, func(u, i int32) float64 { return base.itemPop[i] })
	itemOrder := ratingOrderAUC(sp.Test, func(u, i int32) float64 { return base.itemMean[i] })
	t.Logf("popularity: AUC %.4f, Recall@20 %.4f, rating-order AUC %.4f; item mean rating-order AUC %.4f",
		pop.AUC, pop.AtK[0].Recall, popOrder, itemOrder)

	fixed := models.DefaultPMFOptions()
	fixed.ScaleReg, fixed.Reg = false, 10
	for _, c := range []struct {
		name     string
		o        models.PMFOptions
		measured float64 // held-out RMSE
		margin   float64 // below the best baseline at least by
	}{
		{"pmf-als", models.DefaultPMFOptions(), 0.8808, 0.04},
		{"pmf-als fixed prior", fixed, 0.9019, 0.02},
		{"mf-als", models.DefaultBiasedMFOptions(), 0.8542, 0.07},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Workers = 2
			t0 := time.Now()
			m, err := models.TrainPMF(nU, nI, sp.Train, c.o, nil)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			got := rmse(sp.Test, m.Predict)
			r := eval.Evaluate(m, nI, sp.Train, sp.Test, []int{20}, eo)
			order := ratingOrderAUC(sp.Test, m.Predict)
			t.Logf("%s (K=%d, λ=%g, scaled %v): RMSE %.4f, AUC %.4f, Recall@20 %.4f, rating-order AUC %.4f; trained in %v",
				c.name, c.o.Factors, c.o.Reg, c.o.ScaleReg, got, r.AUC, r.AtK[0].Recall, order, took.Round(time.Millisecond))
			if got > best-c.margin {
				t.Errorf("RMSE %.4f, want at most the best baseline's %.4f − %.2f", got, best, c.margin)
			}
			if math.Abs(got-c.measured) > 0.01 {
				t.Errorf("RMSE %.4f, measured %.4f ± 0.01", got, c.measured)
			}
			if order <= popOrder+0.04 || order <= itemOrder-0.02 {
				t.Errorf("rating-order AUC %.4f, want above popularity's %.4f by 0.04 and within 0.02 of the item mean's %.4f or above", order, popOrder, itemOrder)
			}
			if r.AUC >= pop.AUC || r.AUC <= 0.55 {
				t.Errorf("ranking AUC %.4f: documented as between 0.55 and popularity's %.4f; update the comments", r.AUC, pop.AUC)
			}
		})
	}
}

// TestMFOnlineMovieLensRMSE trains the online explicit models (models.MF through the
// updater, 10 shuffled epochs, the defaults of visrec eval: K=64) on the same split and
// compares their held-out RMSE with the mean-rating baselines, over all test ratings and
// over the test ratings of items rated in training ("known" items; 19,321 of 20,167).
//
// Measured: online MF 0.8624 (known items 0.8582), below the global mean (1.0372), the user
// mean (0.9377) and the item mean (0.9690). Online PMF ("pmf": MF with NoBias) 1.1422
// overall but 0.9199 on known items (global mean there 1.0336): its step learns, but
// without biases it also drops μ, so an item never trained on predicts 0 stars, and the 846
// test ratings of such items (RMSE 3.43) sink the whole. The test asserts both, so a
// change of that design shows here.
func TestMFOnlineMovieLensRMSE(t *testing.T) {
	ds := loadML(t)
	sp, err := eval.RandomSplit(ds, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := newRatingBaselines(len(ds.Users), len(ds.Items), sp.Train)
	var known []datasets.Interaction
	for _, x := range sp.Test {
		if base.itemPop[x.Item] > 0 {
			known = append(known, x)
		}
	}
	mean := func(u, i int32) float64 { return base.mu }
	global, globalKnown := rmse(sp.Test, mean), rmse(known, mean)
	userMean := rmse(sp.Test, func(u, i int32) float64 { return base.userMean[u] })
	itemMean := rmse(sp.Test, func(u, i int32) float64 { return base.itemMean[i] })
	t.Logf("global mean %.4f (known items %.4f), user mean %.4f, item mean %.4f", global, globalKnown, userMean, itemMean)
	for _, noBias := range []bool{false, true} {
		o := models.DefaultMFOptions()
		o.NoBias = noBias
		m := models.NewMF(o)
		t.Run(m.Name(), func(t *testing.T) {
			t0 := time.Now()
			on, err := eval.TrainOnline(context.Background(), ds, sp.Train,
				eval.TrainOptions{Epochs: 10, Seed: 1, Updater: updater.DefaultOptions()}, m)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			s, err := on.Scorer(m.Name())
			if err != nil {
				t.Fatal(err)
			}
			scores := map[int32][]float32{}
			predict := func(u, i int32) float64 {
				if scores[u] == nil {
					scores[u] = s.ScoreAll(u, nil)
				}
				return float64(scores[u][i])
			}
			got, gotKnown := rmse(sp.Test, predict), rmse(known, predict)
			t.Logf("online %s: RMSE %.4f, known items %.4f; trained in %v", m.Name(), got, gotKnown, took.Round(time.Millisecond))
			want := 0.8624
			if noBias {
				want = 1.1422
			}
			if math.Abs(got-want) > 0.01 {
				t.Errorf("RMSE %.4f, measured %.4f ± 0.01", got, want)
			}
			if gotKnown > globalKnown-0.1 {
				t.Errorf("known-item RMSE %.4f, want below the global mean's %.4f by 0.1", gotKnown, globalKnown)
			}
			if !noBias && (got > global-0.15 || got > min(userMean, itemMean)-0.05) {
				t.Errorf("RMSE %.4f, want below the global mean %.4f by 0.15 and the user and item means (%.4f, %.4f) by 0.05", got, global, userMean, itemMean)
			}
		})
	}
}

// TestPMFOnlineSnapshotRestores: an mf-als model's OnlineSnapshot survives the codec, is
// taken by updater.Restore into an online MF of the same K, and the updater then scores
// every (user, item) as the batch model does; PMF without biases and wrong id counts are
// refused.
func TestPMFOnlineSnapshotRestores(t *testing.T) {
	const nUsers, nItems = 60, 40
	train := pmfProblem(11, nUsers, nItems, 12)
	m, err := models.TrainPMF(nUsers, nItems, train, smallPMFOptions(true, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + strconv.Itoa(i)
		}
		return out
	}
	users, items := ids("u", nUsers), ids("i", nItems)
	if _, err := m.OnlineSnapshot(users[1:], items); err == nil {
		t.Error("too few user ids accepted")
	}
	p, err := models.TrainPMF(nUsers, nItems, train, smallPMFOptions(false, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.OnlineSnapshot(users, items); err == nil {
		t.Error("PMF without biases exported to the online mf")
	}
	snap, err := m.OnlineSnapshot(users, items)
	if err != nil {
		t.Fatal(err)
	}
	snap, err = models.ReadSnapshot(bytes.NewReader(encode(t, snap)))
	if err != nil {
		t.Fatal(err)
	}
	o := models.DefaultMFOptions()
	o.Factors = m.Factors()
	upd, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), models.NewMF(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := upd.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for u := range int32(nUsers) {
		got, ok, err := upd.ScoreAll("mf", users[u], nil)
		if err != nil || !ok {
			t.Fatalf("user %s: ok %v, %v", users[u], ok, err)
		}
		for i := range int32(nItems) {
			j, ok := upd.ItemIndex(items[i])
			if !ok {
				t.Fatalf("item %s not in the catalogue", items[i])
			}
			if want := m.Predict(u, i); math.Abs(float64(got[j])-want) > 1e-5*(1+math.Abs(want)) {
				t.Fatalf("user %d item %d: online %v, batch %v", u, i, got[j], want)
			}
		}
	}
}

// TestMFALSWarmStartsOnlineMF: batch MF (mf-als) trained on the first 80% of MovieLens in
// time order, then the online MF (models.MF.Step, K=10, the defaults otherwise) started
// from it replays the last 20% test-then-train: each rating is predicted before it is
// learnt. The warm start must beat both the batch model frozen (it keeps learning) and the
// online MF started from nothing (it does not reset). New users get InitUser rows and new
// items zero rows, as in the updater (which takes the same rows: TestPMFOnlineSnapshotRestores).
//
// Measured (go test ./models -run TestMFALSWarmStartsOnlineMF -v): prequential RMSE warm
// 0.8392, frozen batch 1.0096 (most users of the last 20% are new to it), cold online
// 0.8872.
func TestMFALSWarmStartsOnlineMF(t *testing.T) {
	ds := loadML(t) // sorted by time
	cut := len(ds.Interactions) * 8 / 10
	bo := models.DefaultBiasedMFOptions()
	bo.Workers = 2
	batch, err := models.TrainPMF(len(ds.Users), len(ds.Items), ds.Interactions[:cut], bo, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := batch.OnlineSnapshot(ds.Users, ds.Items)
	if err != nil {
		t.Fatal(err)
	}
	mo := models.DefaultMFOptions()
	mo.Factors = bo.Factors
	replay := func(warm, learn bool) float64 {
		m := models.NewMF(mo)
		rng := rand.New(rand.NewPCG(1, 2))
		users, items := map[int32][]float32{}, map[int32][]float32{}
		global := make([]float32, 1)
		if warm {
			for _, tab := range snap.Tables {
				for r := range tab.Rows {
					row := slices.Clone(tab.Data[r*tab.Cols : (r+1)*tab.Cols])
					switch tab.Name {
					case "users":
						users[int32(r)] = row
					case "items":
						items[int32(r)] = row
					case "global":
						global = row
					}
				}
			}
		}
		var se float64
		ex := &models.Example{Global: global, Weight: 1}
		for _, x := range ds.Interactions[cut:] {
			u, ok := users[x.User]
			if !ok {
				u = make([]float32, m.UserDim())
				m.InitUser(u, rng)
				users[x.User] = u
			}
			i, ok := items[x.Item]
			if !ok {
				i = make([]float32, m.ItemDim())
				items[x.Item] = i
			}
			e := float64(m.Score(u, i, global)) - float64(x.Value)
			se += e * e
			if learn {
				ex.User, ex.Item, ex.Value = u, i, x.Value
				m.Step(ex)
			}
		}
		return math.Sqrt(se / float64(len(ds.Interactions)-cut))
	}
	warm, frozen, cold := replay(true, true), replay(true, false), replay(false, true)
	t.Logf("prequential RMSE over the last 20%%: online MF from the mf-als snapshot %.4f, the snapshot frozen %.4f, online MF from nothing %.4f",
		warm, frozen, cold)
	if warm > frozen-0.1 || warm > cold-0.03 {
		t.Errorf("warm start %.4f, want below the frozen batch model (%.4f) by 0.1 and a cold start (%.4f) by 0.03", warm, frozen, cold)
	}
}

// FuzzPMFFromSnapshot: any bytes either fail to load (with a codec or ErrSnapshotInvalid
// error) or give a model whose scores are finite and whose own snapshot loads back to the
// same bytes.
func FuzzPMFFromSnapshot(f *testing.F) {
	train := pmfProblem(4, 6, 5, 3)
	for _, biases := range []bool{false, true} {
		o := smallPMFOptions(biases, true)
		o.Factors = 2
		m, err := models.TrainPMF(6, 5, train, o, nil)
		if err != nil {
			f.Fatal(err)
		}
		b := encode(f, m.Snapshot())
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := models.ReadSnapshot(bytes.NewReader(in))
		if err != nil {
			return
		}
		m, err := models.PMFFromSnapshot(s)
		if err != nil {
			if !errors.Is(err, models.ErrSnapshotInvalid) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		for u := int32(-1); u <= int32(min(m.NumUsers(), 3)); u++ {
			for _, v := range m.ScoreAll(u, nil) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("score %v", v)
				}
			}
		}
		first := encode(t, m.Snapshot())
		roundTrip(t, m.Snapshot(), models.PMFFromSnapshot)
		if m2, err := models.PMFFromSnapshot(m.Snapshot()); err != nil || !bytes.Equal(encode(t, m2.Snapshot()), first) {
			t.Fatalf("reload: %v", err)
		}
	})
}
