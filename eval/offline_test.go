package eval_test

import (
	"context"
	"os"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// TestOnlineModelsOfflineOnMovieLens trains online BPR offline (epochs through the updater)
// on a random 80/20 split of the MovieLens ratings and requires it to beat popularity on AUC
// and Recall@20, within a tolerance of the figures measured when this test was written (AUC
// 0.928, Recall@20 0.156; popularity 0.896 and 0.110). On a global temporal split most test
// users are new, so a factor model cannot personalise for them: that is the cold-user case.
func TestOnlineModelsOfflineOnMovieLens(t *testing.T) {
	ds, err := datasets.LoadMovieLens("../../shared/data/movielens-posters/ratings.csv")
	if err != nil {
		if os.Getenv("CI") == "" && os.IsNotExist(err) {
			t.Skip("MovieLens data missing:", err)
		}
		t.Fatal(err)
	}
	sp, err := eval.RandomSplit(ds, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	opts := eval.TrainOptions{Epochs: 5, Seed: 1, Updater: updater.DefaultOptions()}
	on, err := eval.TrainOnline(context.Background(), ds, sp.Train, opts, models.NewBPR(models.DefaultBPROptions()))
	if err != nil {
		t.Fatal(err)
	}
	bpr, err := on.Scorer("bpr")
	if err != nil {
		t.Fatal(err)
	}
	eo := eval.DefaultEvalOptions()
	eo.Workers = 2
	ks := []int{10, 20}
	rb := eval.Evaluate(bpr, len(ds.Items), sp.Train, sp.Test, ks, eo)
	rp := eval.Evaluate(eval.NewPopularityScorer(len(ds.Items), sp.Train), len(ds.Items), sp.Train, sp.Test, ks, eo)
	b20, _ := rb.At(20)
	p20, _ := rp.At(20)
	t.Logf("random 80/20, %d users: BPR AUC %.4f Recall@20 %.4f; popularity AUC %.4f Recall@20 %.4f",
		rb.Users, rb.AUC, b20.Recall, rp.AUC, p20.Recall)
	if rb.AUC < 0.91 || b20.Recall < 0.14 {
		t.Errorf("BPR below the measured AUC 0.928 / Recall@20 0.156 (tolerance 0.02)")
	}
	if rb.AUC <= rp.AUC || b20.Recall <= p20.Recall {
		t.Errorf("BPR does not beat popularity")
	}
}

// TestWarmStartKeepsLearning: online BPR started from a batch-trained snapshot of the first
// 80% of the MovieLens log (in time order) goes on learning from the last 20% prequentially,
// and does better there than the same online model started from nothing.
func TestWarmStartKeepsLearning(t *testing.T) {
	ds, err := datasets.LoadMovieLens("../../shared/data/movielens-posters/ratings.csv")
	if err != nil {
		if os.Getenv("CI") == "" && os.IsNotExist(err) {
			t.Skip("MovieLens data missing:", err)
		}
		t.Fatal(err)
	}
	cut := len(ds.Interactions) * 8 / 10
	opts := eval.TrainOptions{Epochs: 5, Seed: 1, Updater: updater.DefaultOptions()}
	batch, err := eval.TrainOnline(context.Background(), ds, ds.Interactions[:cut], opts, models.NewBPR(models.DefaultBPROptions()))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := batch.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}
	recall := func(warm bool) float64 {
		u, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), models.NewBPR(models.DefaultBPROptions()))
		if err != nil {
			t.Fatal(err)
		}
		if warm {
			if err := u.Restore(snap); err != nil {
				t.Fatal(err)
			}
		}
		p := eval.NewPrequential(u.Models(), 10, 3, 1000)
		u.SetObserver(p)
		for i := cut; i < len(ds.Interactions); i++ {
			ev := ds.Event(i)
			if err := u.Apply(context.Background(), &ev, updater.Position{Topic: "log", Offset: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		return p.Total()[0].Recall()
	}
	cold, warm := recall(false), recall(true)
	t.Logf("prequential Recall@10 over the last 20%%: from nothing %.4f, from the batch snapshot %.4f", cold, warm)
	if warm <= cold*1.1 {
		t.Errorf("the warm start (%.4f) is not clearly better than a cold one (%.4f)", warm, cold)
	}
}
