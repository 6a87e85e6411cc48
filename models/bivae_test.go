package models_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/models"
)

// smallBiVAE returns options small enough for unit tests.
func smallBiVAE() models.BiVAEOptions {
	o := models.DefaultBiVAEOptions()
	o.Hidden, o.Latent, o.Epochs, o.BatchSize, o.Workers = 16, 8, 3, 7, 2
	return o
}

func TestBiVAESnapshotRoundTrip(t *testing.T) {
	const nUsers, nItems = 30, 40
	m, err := models.TrainBiVAE(nUsers, nItems, randomInteractions(3, nUsers, nItems, 300), smallBiVAE(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := roundTrip(t, m.Snapshot(), models.BiVAEFromSnapshot)
	var a, b []float32
	for u := int32(-1); u <= nUsers; u++ {
		a, b = m.ScoreAll(u, a), m2.ScoreAll(u, b)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("user %d item %d: %v vs %v", u, i, a[i], b[i])
			}
			if u >= 0 && u < nUsers && math.Float32bits(a[i]) != math.Float32bits(m.Score(u, int32(i))) {
				t.Fatalf("user %d item %d: ScoreAll %v, Score %v", u, i, a[i], m.Score(u, int32(i)))
			}
		}
	}
	bad := m.Snapshot()
	bad.Tables = bad.Tables[:1]
	if _, err := models.BiVAEFromSnapshot(bad); err == nil {
		t.Error("snapshot without item_mu accepted")
	}
	bad = m.Snapshot()
	bad.Model = "multvae"
	if _, err := models.BiVAEFromSnapshot(bad); err == nil {
		t.Error("snapshot of another model accepted")
	}
}

func TestBiVAEDeterministic(t *testing.T) {
	const nUsers, nItems = 25, 50
	xs := randomInteractions(5, nUsers, nItems, 250)
	train := func(workers int, seed uint64) []float32 {
		o := smallBiVAE()
		o.Workers, o.Seed = workers, seed
		epochs := 0
		m, err := models.TrainBiVAE(nUsers, nItems, xs, o, func(e int) { epochs = e })
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
	a, b := train(1, 1), train(1, 1)
	for k := range a {
		if math.Float32bits(a[k]) != math.Float32bits(b[k]) {
			t.Fatalf("value %d: %v vs %v", k, a[k], b[k])
		}
		if math.IsNaN(float64(a[k])) || math.IsInf(float64(a[k]), 0) {
			t.Fatalf("value %d is %v", k, a[k])
		}
	}
	if slices.Equal(a, train(1, 2)) {
		t.Error("seed 2 gives the same model as seed 1")
	}
	if _, err := models.TrainBiVAE(nUsers, nItems, []datasets.Interaction{{User: 0, Item: nItems}}, smallBiVAE(), nil); err == nil {
		t.Error("item out of range accepted")
	}
	o := smallBiVAE()
	o.LR = 0
	if _, err := models.TrainBiVAE(nUsers, nItems, xs, o, nil); err == nil {
		t.Error("LR 0 accepted")
	}
}

// TestBiVAEMovieLens trains a small BiVAE on the seeded random 80/20 split of
// ml-latest-small used by TestWMFMovieLens and ranks all items per test user.
//
// Measured (go test ./models -run TestBiVAEMovieLens -v; amd64, 2 cores, 5 epochs of
// 128/32, LR 5e-3, ~6-8 s): AUC 0.9061, Recall@20 0.1597, NDCG@20 0.2238,
// against popularity's 0.8957 / 0.1103. 15 epochs at LR 3e-3 gave AUC 0.9222, Recall@20
// 0.2006, NDCG@20 0.2676 (about 3× the time). The AUC margin over popularity is only
// 0.010, below the ±0.015 tolerance: the strict beat is checked separately. Training is
// deterministic; the tolerance is for other platforms' rounding.
func TestBiVAEMovieLens(t *testing.T) {
	o := biVAEMovieLensOptions()
	r, pop := evalRandomSplit(t, fmt.Sprintf("BiVAE %+v", o), func(users, items int, data []datasets.Interaction) (eval.Scorer, error) {
		return models.TrainBiVAE(users, items, data, o, nil)
	})
	at, pat := r.AtK[0], pop.AtK[0]
	if r.AUC <= pop.AUC || at.Recall <= pat.Recall {
		t.Errorf("BiVAE AUC %.4f, Recall@20 %.4f do not beat popularity's %.4f, %.4f", r.AUC, at.Recall, pop.AUC, pat.Recall)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"AUC", r.AUC, biVAEWantAUC}, {"Recall@20", at.Recall, biVAEWantRecall}} {
		if math.Abs(f.got-f.want) > 0.015 {
			t.Errorf("%s %.4f, measured %.4f ± 0.015", f.name, f.got, f.want)
		}
	}
}

const (
	biVAEWantAUC    = 0.9061
	biVAEWantRecall = 0.1597
)

func biVAEMovieLensOptions() models.BiVAEOptions {
	o := models.DefaultBiVAEOptions()
	o.Epochs, o.LR, o.Workers = 5, 5e-3, 2
	return o
}
