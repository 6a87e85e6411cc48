package updater_test

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

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

const (
	itemsTopic = "items"
	featDim    = 6
)

// visualModels are small online VBPR, VMF and DeepStyle models over featDim features.
func visualModels() []models.Online {
	vb := models.DefaultOnlineVBPROptions()
	vb.Factors, vb.VisualFactors, vb.FeatureDim, vb.FeatureScale = 4, 3, featDim, 0.5
	vm := models.DefaultVMFOptions()
	vm.Factors, vm.VisualFactors, vm.FeatureDim, vm.FeatureScale = 4, 2, featDim, 0.5
	ds := models.DefaultDeepStyleOptions()
	ds.Factors, ds.FeatureDim, ds.FeatureScale, ds.Categories = 4, featDim, 0.5, 3
	return []models.Online{models.NewOnlineVBPR(vb), models.NewVMF(vm), models.NewDeepStyle(ds)}
}

func newVisualUpdater(t *testing.T, store featurestore.Store, opts updater.Options) *updater.Updater {
	t.Helper()
	u, err := updater.New(store, opts, visualModels()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background(), topic, itemsTopic); err != nil {
		t.Fatal(err)
	}
	return u
}

// entry is one message of a two-topic log: an interaction or an item event.
type entry struct {
	ev   *events.Interaction
	item *events.Item
	pos  updater.Position
}

// visualLog interleaves stream(n) with item events (features, a category) for most of its
// items: some arrive before the item's first interaction, some after.
func visualLog(n int, seed uint64) []entry {
	rng := rand.New(rand.NewPCG(seed, 2))
	evs := stream(n, seed)
	var out []entry
	var ev, it int64
	cats := []string{"", "Drama", "Comedy", "Horror"}
	for i := range evs {
		if rng.IntN(20) == 0 {
			id := "i" + strconv.Itoa(rng.IntN(220)) // some items never interact
			emb := make([]float32, featDim)
			for k := range emb {
				emb[k] = float32(rng.ExpFloat64())
			}
			out = append(out, entry{item: &events.Item{Item: id, Timestamp: 1, Model: "test", Embedding: emb,
				Metadata: map[string]string{models.CategoryKey: cats[rng.IntN(len(cats))]}},
				pos: updater.Position{Topic: itemsTopic, Offset: it}})
			it++
		}
		out = append(out, entry{ev: &evs[i], pos: updater.Position{Topic: topic, Offset: ev}})
		ev++
	}
	return out
}

func applyLog(t *testing.T, u *updater.Updater, log []entry, from, to int) {
	t.Helper()
	for _, e := range log[from:to] {
		var err error
		if e.item != nil {
			err = u.ApplyItem(e.item, e.pos)
		} else {
			err = u.Apply(context.Background(), e.ev, e.pos)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// storeState reads every row the visual models and the embeddings have in the store.
func storeState(t *testing.T, s featurestore.Store) map[string]map[string][]float32 {
	t.Helper()
	out := make(map[string]map[string][]float32)
	for _, m := range []string{"vbpr", "vmf", "deepstyle"} {
		for _, tb := range []string{":users", ":items", ":global"} {
			out[m+tb] = scan(t, s, m+tb)
		}
	}
	out[updater.TableEmbeddings] = scan(t, s, updater.TableEmbeddings)
	return out
}

func scan(t *testing.T, s featurestore.Store, table string) map[string][]float32 {
	t.Helper()
	rows := make(map[string][]float32)
	if err := s.ScanVectors(context.Background(), table, func(id string, v []float32) error {
		rows[id] = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

func sameState(t *testing.T, want, got map[string]map[string][]float32) {
	t.Helper()
	for name, rows := range want {
		if len(rows) != len(got[name]) {
			t.Fatalf("%s: %d rows, want %d", name, len(got[name]), len(rows))
		}
		for id, w := range rows {
			g := got[name][id]
			if len(g) != len(w) {
				t.Fatalf("%s %s: %d values, want %d", name, id, len(g), len(w))
			}
			for k := range w {
				if math.Float32bits(g[k]) != math.Float32bits(w[k]) {
					t.Fatalf("%s %s[%d] = %v, want %v", name, id, k, g[k], w[k])
				}
			}
		}
	}
}

// TestVisualRestartsAreInvisible: the visual models, fed interactions and item events on
// two topics, end with bit-identical stored parameters whether the updater runs through or
// is replaced after random flushes, losing its unflushed work (effectively once, and the
// exact per-step update of the shared projection: no state outside the store).
func TestVisualRestartsAreInvisible(t *testing.T) {
	log := visualLog(6000, 4)
	ctx := context.Background()
	opts := updater.DefaultOptions()

	ref := featurestore.NewMemory()
	u := newVisualUpdater(t, ref, opts)
	applyLog(t, u, log, 0, len(log))
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := storeState(t, ref)
	if len(want["vbpr:global"]) != 1 || len(want[updater.TableEmbeddings]) == 0 {
		t.Fatalf("reference run stored %d global rows and %d embeddings", len(want["vbpr:global"]), len(want[updater.TableEmbeddings]))
	}

	store := featurestore.NewMemory()
	rng := rand.New(rand.NewPCG(9, 9))
	u = newVisualUpdater(t, store, opts)
	pos := 0
	for pos < len(log) {
		flushAt := min(len(log), pos+1+rng.IntN(1500))
		applyLog(t, u, log, pos, flushAt)
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		applyLog(t, u, log, flushAt, min(len(log), flushAt+rng.IntN(300))) // lost
		u = newVisualUpdater(t, store, opts)
		// Resume after the last entry of either topic that the flush covered.
		pos = 0
		for pos < len(log) && u.Offset(log[pos].pos.Topic, 0) > log[pos].pos.Offset {
			pos++
		}
		if pos != flushAt {
			t.Fatalf("resumed at %d, last flush covered %d", pos, flushAt)
		}
	}
	sameState(t, want, storeState(t, store))
}

// TestItemEventIsScoredAtOnce: an item event makes the item a candidate whose score is its
// visual score (zero latent row: ScoreFeatures of its features), before any interaction
// and before any flush; a flush is due ItemFlushInterval after it; the features and the
// category survive a reload from the store.
func TestItemEventIsScoredAtOnce(t *testing.T) {
	ctx := context.Background()
	opts := updater.DefaultOptions()
	opts.ItemFlushInterval = 10 * time.Millisecond
	store := featurestore.NewMemory()
	u := newVisualUpdater(t, store, opts)
	log := visualLog(3000, 5)
	applyLog(t, u, log, 0, len(log))
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if u.FlushDue(time.Now()) {
		t.Fatal("flush due with nothing to flush")
	}
	emb := []float32{3, 0, 1, 2, 0.5, 4}
	it := &events.Item{Item: "brand-new", Timestamp: 2, Model: "test", Embedding: emb,
		Metadata: map[string]string{models.CategoryKey: "Drama"}}
	t0 := time.Now()
	if err := u.ApplyItem(it, updater.Position{Topic: itemsTopic, Offset: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if u.FlushDue(t0) || !u.FlushDue(t0.Add(opts.ItemFlushInterval+time.Millisecond)) {
		t.Error("a flush is not due ItemFlushInterval after an item event")
	}
	idx, ok := u.ItemIndex("brand-new")
	if !ok {
		t.Fatal("the new item is not in the catalog")
	}
	for _, m := range visualModels() {
		users, items, global, err := u.Rows(m.Name())
		if err != nil {
			t.Fatal(err)
		}
		v := m.(models.Visual)
		for _, user := range []string{"u1", "u7", "u42"} {
			scores, ok, err := u.ScoreAll(m.Name(), user, nil)
			if err != nil || !ok {
				t.Fatalf("%s: ScoreAll(%s): ok %v, %v", m.Name(), user, ok, err)
			}
			want := v.ScoreFeatures(users[user], items["brand-new"], global, emb)
			if got := scores[idx]; math.Abs(float64(got-want)) > 1e-5*(1+math.Abs(float64(want))) {
				t.Errorf("%s: new item scores %v for %s, want ScoreFeatures %v", m.Name(), got, user, want)
			}
			if noFeat := v.Score(users[user], items["brand-new"], global); noFeat == want {
				t.Errorf("%s: the features do not change the new item's score (%v)", m.Name(), want)
			}
		}
		if m.Name() == "deepstyle" {
			if c := items["brand-new"][0]; c != float32(m.(*models.DeepStyle).Category("Drama")) {
				t.Errorf("deepstyle: category slot %v, want Drama's %d", c, m.(*models.DeepStyle).Category("Drama"))
			}
		}
	}
	before, _, err := u.ScoreAll("vbpr", "u7", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	u2 := newVisualUpdater(t, store, opts)
	if err := u2.Prefetch(ctx, []events.Interaction{{User: "u7"}}); err != nil {
		t.Fatal(err)
	}
	after, ok, err := u2.ScoreAll("vbpr", "u7", nil)
	if err != nil || !ok || !slices.Equal(before, after) {
		t.Errorf("scores after a reload differ (ok %v, %v)", ok, err)
	}
}

// TestBadEmbeddingChangesNothing: an embedding of the wrong dimension or with a NaN or an
// infinity is refused with its dead-letter reason, and no row, feature or catalog entry
// changes, in the cache or (after a flush) in the store.
func TestBadEmbeddingChangesNothing(t *testing.T) {
	ctx := context.Background()
	store := featurestore.NewMemory()
	u := newVisualUpdater(t, store, updater.DefaultOptions())
	log := visualLog(2000, 6)
	applyLog(t, u, log, 0, len(log))
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stored := storeState(t, store)
	cat := slices.Clone(u.Catalog())
	scores, _, _ := u.ScoreAll("vbpr", "u3", nil)
	scores = slices.Clone(scores)
	existing := log[0].ev.Item
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	for n, c := range []struct {
		id     string
		emb    []float32
		reason string
	}{
		{"fresh", []float32{1, 2, 3}, events.ReasonDimension},
		{existing, make([]float32, featDim+1), events.ReasonDimension},
		{"fresh", []float32{1, 2, nan, 4, 5, 6}, events.ReasonNonFinite},
		{existing, []float32{1, 2, 3, 4, 5, inf}, events.ReasonNonFinite},
	} {
		err := u.ApplyItem(&events.Item{Item: c.id, Timestamp: 1, Model: "test", Embedding: c.emb,
			Metadata: map[string]string{models.CategoryKey: "Horror"}}, updater.Position{Topic: itemsTopic, Offset: int64(1000 + n)})
		var de *events.DecodeError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Fatalf("case %d: error %v, want reason %s", n, err, c.reason)
		}
		u.Skip(updater.Position{Topic: itemsTopic, Offset: int64(1000 + n)}) // as the consumer does
	}
	if !slices.Equal(cat, u.Catalog()) {
		t.Error("the catalog changed")
	}
	if got, _, _ := u.ScoreAll("vbpr", "u3", nil); !slices.Equal(scores, got) {
		t.Error("scores changed")
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameState(t, stored, storeState(t, store))
	if got := u.Offset(itemsTopic, 0); got != 1004 {
		t.Errorf("items offset %d, want 1004 (past the refused events)", got)
	}
}

// TestVisualModelsDisagree: visual models with different feature dimensions, or an
// EmbeddingDim that is not theirs, are refused.
func TestVisualModelsDisagree(t *testing.T) {
	a := models.DefaultOnlineVBPROptions()
	a.FeatureDim = 8
	b := models.DefaultVMFOptions()
	b.FeatureDim = 9
	if _, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), models.NewOnlineVBPR(a), models.NewVMF(b)); err == nil {
		t.Error("feature dimensions 8 and 9 accepted")
	}
	opts := updater.DefaultOptions()
	opts.EmbeddingDim = 9
	if _, err := updater.New(featurestore.NewMemory(), opts, models.NewOnlineVBPR(a)); err == nil {
		t.Error("EmbeddingDim 9 accepted for a model of 8 features")
	}
}

// TestVisualSnapshotRoundTrip: each visual model's state (the shared [E; β'], L and the
// category slots included) written as a snapshot, read back and restored into a fresh
// updater over another store gives bit-identical rows there, also after a flush and reload.
func TestVisualSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	u := newVisualUpdater(t, featurestore.NewMemory(), updater.DefaultOptions())
	log := visualLog(3000, 8)
	applyLog(t, u, log, 0, len(log))
	other := featurestore.NewMemory()
	v := newVisualUpdater(t, other, updater.DefaultOptions())
	for _, model := range u.Models() {
		snap, err := u.Snapshot(model)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := models.WriteSnapshot(&buf, snap); err != nil {
			t.Fatal(err)
		}
		back, err := models.ReadSnapshot(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Restore(back); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w := newVisualUpdater(t, other, updater.DefaultOptions()) // reads what the flush wrote
	for _, model := range u.Models() {
		wu, wi, wg, err := u.Rows(model)
		if err != nil {
			t.Fatal(err)
		}
		if len(wg) == 0 || len(wu) == 0 || len(wi) == 0 {
			t.Fatalf("%s: empty state", model)
		}
		want := map[string]map[string][]float32{"users": wu, "items": wi, "global": {"g": wg}}
		_, gi, gg, err := w.Rows(model)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string][]float32{"users": scan(t, other, model+":users"), "items": gi, "global": {"g": gg}}
		sameState(t, want, got)
	}
}
