package eval_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

const postersDir = "../../shared/data/movielens-posters"

// loadPosters reads the MovieLens posters data set with its MobileNetV2 features. A missing
// folder fails the test when CI is set and skips it otherwise.
func loadPosters(t testing.TB) *datasets.Dataset {
	t.Helper()
	ds, err := datasets.LoadMovieLensPosters(postersDir)
	if errors.Is(err, fs.ErrNotExist) {
		if os.Getenv("CI") != "" {
			t.Fatalf("MovieLens posters missing under CI: %v", err)
		}
		t.Skipf("MovieLens posters missing: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if ds.FeatureDim != 1280 {
		t.Fatalf("posters features have dimension %d, want 1280", ds.FeatureDim)
	}
	return ds
}

// TestOnlineVBPRColdStartMovieLens trains online VBPR, DeepStyle and BPR through the updater on
// the 20% cold-start item split of the MovieLens posters (no interaction of a held-out item
// is trained on; their embeddings arrive as item events after training) and ranks the
// held-out items for each user. BPR knows nothing of them and ties every one (AUC ½);
// VBPR scores them by their posters.
//
// Measured (3 epochs, 1 negative per positive, K=64, K'=20, seed 1; 8 s on a loaded
// 2-core machine; DeepStyle adds about 20 s): VBPR AUC 0.7344, Recall@20 0.0721; DeepStyle
// (32 hashed categories, the first genre) 0.7348 and 0.0663; BPR 0.5000 and 0. Training and
// evaluation are seeded and deterministic, so the bound 0.70 (the project's goal is 0.65)
// only leaves room for deliberate changes of rounding or sampling; the batch VBPR reaches
// 0.738 on this split.
func TestOnlineVBPRColdStartMovieLens(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on MovieLens for about 40 s")
	}
	ds := loadPosters(t)
	sp, err := eval.ColdStartItemSplit(ds, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	uopts := updater.DefaultOptions()
	uopts.Negatives = 1
	opts := eval.TrainOptions{Epochs: 3, Seed: 1, Updater: uopts}
	eo := eval.DefaultEvalOptions()
	eo.Candidates = sp.ColdItems
	ks := []int{20}
	auc := map[string]float64{}
	recall := map[string]float64{}
	for _, m := range []models.Online{models.NewBPR(models.DefaultBPROptions()), models.NewOnlineVBPR(models.DefaultOnlineVBPROptions()),
		models.NewDeepStyle(models.DefaultDeepStyleOptions())} {
		o, err := eval.TrainOnline(context.Background(), ds, sp.Train, opts, m)
		if err != nil {
			t.Fatal(err)
		}
		s, err := o.Scorer(m.Name())
		if err != nil {
			t.Fatal(err)
		}
		r := eval.Evaluate(s, len(ds.Items), sp.Train, sp.Test, ks, eo)
		at, _ := r.At(20)
		auc[m.Name()], recall[m.Name()] = r.AUC, at.Recall
		t.Logf("%s: cold-start AUC %.4f, Recall@20 %.4f (%d users)", m.Name(), r.AUC, at.Recall, r.Users)
	}
	if a := auc["bpr"]; a < 0.48 || a > 0.52 {
		t.Errorf("BPR cold-start AUC %.4f, want about 0.5: it cannot tell unseen items apart", a)
	}
	if a := auc["vbpr"]; a < 0.70 {
		t.Errorf("online VBPR cold-start AUC %.4f, want ≥ 0.70 (measured 0.7344)", a)
	}
	if auc["vbpr"]-auc["bpr"] < 0.1 || recall["vbpr"] <= recall["bpr"] {
		t.Errorf("online VBPR (AUC %.4f, Recall@20 %.4f) does not clearly beat BPR (%.4f, %.4f)",
			auc["vbpr"], recall["vbpr"], auc["bpr"], recall["bpr"])
	}
	if a := auc["deepstyle"]; a < 0.70 || recall["deepstyle"] <= recall["bpr"] {
		t.Errorf("online DeepStyle cold-start AUC %.4f, Recall@20 %.4f; want AUC ≥ 0.70 and Recall above BPR's",
			a, recall["deepstyle"])
	}
}
