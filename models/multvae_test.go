package models_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/models"
)

// smallMultVAE returns options small enough for unit tests.
func smallMultVAE() models.MultVAEOptions {
	o := models.DefaultMultVAEOptions()
	o.Hidden, o.Latent, o.Epochs, o.BatchSize, o.AnnealSteps, o.Workers = 16, 8, 3, 7, 10, 2
	return o
}

// randomInteractions draws n interactions of nUsers×nItems, leaving the last user empty.
func randomInteractions(seed uint64, nUsers, nItems, n int) []datasets.Interaction {
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([]datasets.Interaction, n)
	for k := range xs {
		xs[k] = datasets.Interaction{User: int32(rng.IntN(nUsers - 1)), Item: int32(rng.IntN(nItems)), Value: 1}
	}
	return xs
}

func TestMultVAESnapshotRoundTrip(t *testing.T) {
	const nUsers, nItems = 30, 40
	m, err := models.TrainMultVAE(nUsers, nItems, randomInteractions(3, nUsers, nItems, 300), smallMultVAE(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := roundTrip(t, m.Snapshot(), models.MultVAEFromSnapshot)
	var a, b []float32
	for u := int32(-1); u <= nUsers; u++ {
		a, b = m.ScoreAll(u, a), m2.ScoreAll(u, b)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("user %d item %d: %v vs %v", u, i, a[i], b[i])
			}
		}
		if !slices.Equal(m.UserItems(u), m2.UserItems(u)) {
			t.Fatalf("user %d: items differ", u)
		}
	}
	bad := m.Snapshot()
	bad.Tables = bad.Tables[:len(bad.Tables)-1]
	if _, err := models.MultVAEFromSnapshot(bad); err == nil {
		t.Error("snapshot without user_items accepted")
	}
}

func TestMultVAEDeterministic(t *testing.T) {
	const nUsers, nItems = 25, 50
	xs := randomInteractions(5, nUsers, nItems, 250)
	train := func(workers int) []float32 {
		o := smallMultVAE()
		o.Workers = workers
		epochs := 0
		m, err := models.TrainMultVAE(nUsers, nItems, xs, o, func(e int) { epochs = e })
		if err != nil {
			t.Fatal(err)
		}
		if epochs != o.Epochs {
			t.Fatalf("progress reported %d epochs, want %d", epochs, o.Epochs)
		}
		var out []float32
		for _, tab := range m.Snapshot().Tables {
			out = append(out, tab.Data...)
		}
		return out
	}
	a, b, c := train(1), train(1), train(2)
	for k := range a {
		if math.Float32bits(a[k]) != math.Float32bits(b[k]) || math.Float32bits(a[k]) != math.Float32bits(c[k]) {
			t.Fatalf("value %d: %v, %v, %v", k, a[k], b[k], c[k])
		}
		if math.IsNaN(float64(a[k])) || math.IsInf(float64(a[k]), 0) {
			t.Fatalf("value %d is %v", k, a[k])
		}
	}
	o := smallMultVAE()
	o.Seed = 2
	m, err := models.TrainMultVAE(nUsers, nItems, xs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.ScoreAll(0, nil); slices.Equal(s, mustScore(t, nUsers, nItems, xs)) {
		t.Error("seed 2 gives the same scores as seed 1")
	}
	if _, err := models.TrainMultVAE(nUsers, nItems, []datasets.Interaction{{User: 0, Item: nItems}}, smallMultVAE(), nil); err == nil {
		t.Error("item out of range accepted")
	}
}

func mustScore(t *testing.T, nUsers, nItems int, xs []datasets.Interaction) []float32 {
	m, err := models.TrainMultVAE(nUsers, nItems, xs, smallMultVAE(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.ScoreAll(0, nil)
}

// TestMultVAEMovieLens trains a reduced Mult-VAE (128/32, 20 epochs of 200 users, LR 3e-3,
// β reaching 0.2 after 8 of the 80 steps, for test time) on the seeded random 80/20 split
// of ml-latest-small used by TestWMFMovieLens and ranks all items per test user.
//
// Measured (go test ./models -run TestMultVAEMovieLens -v; amd64, 2 cores, ~10 s): AUC
// 0.9160, Recall@20 0.1558, NDCG@20 0.2151, against popularity's 0.8957 / 0.1103. The
// paper's 600/200 and more epochs should do better (a 256/64, 30-epoch run gave AUC 0.9216,
// Recall@20 0.1756 in 27 s), still short of WMF's 0.241. Training is deterministic; the
// ±0.01 tolerance is for other platforms' rounding.
func TestMultVAEMovieLens(t *testing.T) {
	o := multVAEMovieLensOptions()
	r, pop := evalRandomSplit(t, fmt.Sprintf("Mult-VAE %+v", o), func(users, items int, data []datasets.Interaction) (eval.Scorer, error) {
		return models.TrainMultVAE(users, items, data, o, nil)
	})
	at, pat := r.AtK[0], pop.AtK[0]
	if at.Recall <= pat.Recall {
		t.Errorf("Mult-VAE Recall@20 %.4f does not beat popularity's %.4f", at.Recall, pat.Recall)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"AUC", r.AUC, multVAEWantAUC}, {"Recall@20", at.Recall, multVAEWantRecall}} {
		if math.Abs(f.got-f.want) > 0.01 {
			t.Errorf("%s %.4f, measured %.4f ± 0.01", f.name, f.got, f.want)
		}
	}
}

const (
	multVAEWantAUC    = 0.9160
	multVAEWantRecall = 0.1558
)

func multVAEMovieLensOptions() models.MultVAEOptions {
	o := models.DefaultMultVAEOptions()
	o.Hidden, o.Latent, o.Epochs, o.BatchSize, o.AnnealSteps, o.LR, o.Workers = 128, 32, 20, 200, 40, 3e-3, 2
	return o
}
