package eval_test

import (
	"context"
	"testing"

	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

func run(t *testing.T, evs []events.Interaction, k, every int) *eval.Prequential {
	t.Helper()
	o := models.DefaultBPROptions()
	o.Factors = 8
	u, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), models.NewBPR(o))
	if err != nil {
		t.Fatal(err)
	}
	p := eval.NewPrequential(u.Models(), k, every, 100)
	u.SetObserver(p)
	for i := range evs {
		if err := u.Apply(context.Background(), &evs[i], updater.Position{Topic: "t", Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestPrequentialByHand follows the popularity ranker at K=1 through a stream whose ranks
// are known: unknown items miss, seen items are excluded, repeats are not evaluated.
func TestPrequentialByHand(t *testing.T) {
	click := func(u, i string) events.Interaction {
		return events.Interaction{Type: events.Click, User: u, Item: i, Timestamp: 1}
	}
	evs := []events.Interaction{
		click("u1", "i1"), // i1 unknown: miss
		click("u2", "i1"), // catalogue {i1}: rank 0, hit
		click("u2", "i2"), // i2 unknown: miss
		click("u3", "i2"), // counts i1=2 > i2=1: rank 1, miss at K=1
		click("u3", "i1"), // i2 seen by u3 and excluded: rank 0, hit
		click("u3", "i1"), // a repeat: not evaluated
	}
	p := run(t, evs, 1, 1)
	pop := p.Total()[len(p.Rankers())-1]
	// Cold slice at the default threshold 5: every evaluation here; see below for 2.
	if cold := p.Cold()[len(p.Rankers())-1]; cold != pop {
		t.Fatalf("cold slice %+v, want all of %+v", cold, pop)
	}
	if p.Rankers()[len(p.Rankers())-1] != eval.Popularity {
		t.Fatalf("rankers %v: popularity should come last", p.Rankers())
	}
	if pop.N != 5 || pop.Hits != 2 || pop.NDCG() != 0.4 || pop.Recall() != 0.4 {
		t.Fatalf("popularity: %+v (recall %v, ndcg %v), want 5 evaluations, 2 hits at rank 0", pop, pop.Recall(), pop.NDCG())
	}
	// With threshold 2 the last evaluation (i1 after 2 interactions) is warm: 4 cold
	// evaluations, of which the hit of the second event.
	p2 := eval.NewPrequential(nil, 1, 1, 100)
	p2.ColdThreshold = 2
	u2, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), models.NewBPR(models.DefaultBPROptions()))
	if err != nil {
		t.Fatal(err)
	}
	u2.SetObserver(p2)
	for i := range evs {
		if err := u2.Apply(context.Background(), &evs[i], updater.Position{Topic: "t", Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if cold := p2.Cold()[0]; cold.N != 4 || cold.Hits != 1 {
		t.Fatalf("cold slice at threshold 2: %+v, want 4 evaluations and 1 hit", cold)
	}
	bpr := p.Total()[0]
	if bpr.N != 5 || bpr.Hits < 1 {
		t.Fatalf("bpr: %+v, want 5 evaluations and the single-item hit", bpr)
	}
}

// TestPrequentialDeterministic: the same stream twice gives identical figures and curves.
func TestPrequentialDeterministic(t *testing.T) {
	cfg := producers.DefaultSyntheticConfig()
	cfg.Users, cfg.Items, cfg.Events = 300, 200, 20_000
	cfg.Affinity, cfg.Candidates = 4, 32 // strong planted tastes: there is something to learn
	stream := func() []events.Interaction {
		g, err := producers.NewSynthetic(cfg)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := producers.Collect(g, 0)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	a, b := run(t, stream(), 10, 3), run(t, stream(), 10, 3)
	ta, tb := a.Total(), b.Total()
	for r := range ta {
		if ta[r] != tb[r] {
			t.Fatalf("%s: %+v then %+v", a.Rankers()[r], ta[r], tb[r])
		}
	}
	if ta[0].N < 1000 || len(a.Curve()) != len(b.Curve()) || len(a.Curve()) < 10 {
		t.Fatalf("%d evaluations, %d and %d curve points", ta[0].N, len(a.Curve()), len(b.Curve()))
	}
	// Learning shows: BPR beats popularity on the planted stream.
	t.Logf("Recall@10: bpr %.4f, popularity %.4f", ta[0].Recall(), ta[1].Recall())
	if ta[0].Recall() <= ta[1].Recall() {
		t.Errorf("BPR Recall@10 %.4f does not beat popularity %.4f", ta[0].Recall(), ta[1].Recall())
	}
}
