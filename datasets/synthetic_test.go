package datasets

import (
	"testing"

	"github.com/visrec/visrec/producers"
)

func smallSyntheticConfig() producers.SyntheticConfig {
	cfg := producers.DefaultSyntheticConfig()
	cfg.Users, cfg.Items, cfg.Events, cfg.VisualDim, cfg.Seed = 200, 100, 20_000, 8, 7
	return cfg
}

func TestSynthetic(t *testing.T) {
	cfg := smallSyntheticConfig()
	ds, truth, err := SyntheticWithTruth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Interactions) != 20_000 || len(ds.Users) != 200 || len(ds.Items) != 100 {
		t.Fatalf("%d interactions, %d users, %d items", len(ds.Interactions), len(ds.Users), len(ds.Items))
	}
	if ds.FeatureDim != 8 || len(ds.Features) != 100 {
		t.Fatalf("features: dim %d, %d rows", ds.FeatureDim, len(ds.Features))
	}
	for j := range ds.Items {
		if ds.Items[j] != truth.ItemIDs[j] {
			t.Fatalf("dense item %d is %s, planted %s", j, ds.Items[j], truth.ItemIDs[j])
		}
		if v := truth.Visual(j); ds.Features[j][3] != v[3] || cap(ds.Features[j]) != 8 {
			t.Fatalf("item %d features differ from the planted ones (or share capacity)", j)
		}
	}
	// Materialised event for event as the stream.
	g, _ := producers.NewSynthetic(cfg)
	evs, err := producers.Collect(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		x := ds.Interactions[i]
		if ds.Users[x.User] != e.User || ds.Items[x.Item] != e.Item || x.TS != e.Timestamp || x.Type != e.Type {
			t.Fatalf("interaction %d = %+v, stream has %+v", i, x, e)
		}
	}
	again, _ := Synthetic(cfg)
	for i := range ds.Interactions {
		if again.Interactions[i] != ds.Interactions[i] {
			t.Fatalf("same seed, different interaction %d", i)
		}
	}
}

func TestSyntheticRejects(t *testing.T) {
	cfg := smallSyntheticConfig()
	for _, n := range []int64{0, MaxSyntheticEvents + 1} {
		cfg.Events = n
		if _, err := Synthetic(cfg); err == nil {
			t.Errorf("Events %d accepted", n)
		}
	}
	cfg = smallSyntheticConfig()
	cfg.Users = 0
	if _, err := Synthetic(cfg); err == nil {
		t.Error("Users 0 accepted")
	}
}

// TestSyntheticStreamsTenMillion checks the note in Synthetic's doc: scale tests stream
// producers.NewSynthetic directly; 10 million events go through without materialising.
func TestSyntheticStreamsTenMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 10M events")
	}
	cfg := producers.DefaultSyntheticConfig()
	cfg.Events = 10_000_000
	g, err := producers.NewSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	prev := int64(0)
	for e := range producers.All(g) {
		if e.Timestamp < prev {
			t.Fatalf("event %d goes back in time", n)
		}
		prev = e.Timestamp
		n++
	}
	if n != cfg.Events || g.Err() != nil {
		t.Fatalf("streamed %d events, err %v", n, g.Err())
	}
}
