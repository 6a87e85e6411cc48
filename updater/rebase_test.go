package updater_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// commit runs fn on a fresh Tx of store and commits it.
func commit(t *testing.T, store featurestore.Store, fn func(tx featurestore.Tx)) {
	t.Helper()
	tx := store.Begin()
	fn(tx)
	if _, err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sameRows fails unless got and want hold the same ids with bit-identical rows; a row
// missing from got counts as zeros (a shared row that no delta reached is not stored).
func sameRows(t *testing.T, what string, got, want map[string][]float32) {
	t.Helper()
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Fatalf("%s: unexpected row %q", what, id)
		}
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			g = make([]float32, len(w))
		}
		if len(g) != len(w) {
			t.Fatalf("%s: row %q missing or of another width", what, id)
		}
		for k := range w {
			if math.Float32bits(g[k]) != math.Float32bits(w[k]) {
				t.Fatalf("%s: row %q[%d] = %v, want %v", what, id, k, g[k], w[k])
			}
		}
	}
}

// TestRebaseOntoSnapshot walks an installation by hand (what snapshots.Install does): the
// epoch goes odd (bpr frozen, mf goes on), bpr's rows become a snapshot's covering offsets
// [0, 1000), the epoch goes even with bpr's own offset at 1000. The updater is fenced twice,
// reloads, replays [1000, C) for bpr only, and ends with bpr rows bit-identical to the
// snapshot's run continued over every later event once, mf rows identical to a run that
// saw no installation, and every item counter counted once.
func TestRebaseOntoSnapshot(t *testing.T) {
	ctx := context.Background()
	evs := stream(3000, 11)
	for k := 0; k < 200; k++ { // every item is in the catalog before the snapshot's offsets
		evs[k].Item = "i" + strconv.Itoa(k)
	}
	store := featurestore.NewMemory()
	a := newUpdater(t, store)
	apply(t, a, evs, 0, 1600)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// The snapshot: an independent run over [0, 1000), continued later as the reference.
	ref := newUpdater(t, featurestore.NewMemory())
	apply(t, ref, evs, 0, 1000)
	snap, err := ref.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Meta["offset:events:0"] != "1000" {
		t.Fatalf("snapshot offsets %v", snap.Meta)
	}

	// 1. The installation starts: epoch 0 -> 1. a's next flush is fenced.
	commit(t, store, func(tx featurestore.Tx) { tx.SetOffset(updater.EpochTopic("bpr"), 0, 0, 1) })
	apply(t, a, evs, 1600, 1800)
	if err := a.Flush(ctx); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("flush during installation: %v, want ErrFenced", err)
	}
	if err := a.Load(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if got := a.Offset(topic, 0); got != 1600 {
		t.Fatalf("offset after reload %d, want 1600", got)
	}
	bprBefore := tables(t, store)
	apply(t, a, evs, 1600, 2000) // bpr frozen: only mf and the bookkeeping
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := tables(t, store)
	for _, name := range []string{"bpr:users", "bpr:items"} {
		sameRows(t, name+" while frozen", after[name], bprBefore[name])
	}

	// 2. The rows, then the last commit: epoch 1 -> 2, bpr's own offset 1000.
	commit(t, store, func(tx featurestore.Tx) {
		for _, tb := range snap.Tables {
			for r, id := range tb.IDs {
				tx.SetVector("bpr:"+tb.Name, id, tb.Data[r*tb.Cols:(r+1)*tb.Cols])
			}
		}
	})
	commit(t, store, func(tx featurestore.Tx) {
		tx.SetOffset(updater.EpochTopic("bpr"), 0, 1, 2)
		tx.SetOffset(updater.ModelTopic(topic, "bpr"), 0, featurestore.NoOffset, 1000)
	})
	apply(t, a, evs, 2000, 2200)
	if err := a.Flush(ctx); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("flush after installation: %v, want ErrFenced", err)
	}
	if err := a.Load(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if got := a.Offset(topic, 0); got != 1000 {
		t.Fatalf("offset after the installation %d, want bpr's 1000", got)
	}
	// Replay with a flush (and a restart) in the middle of the lag.
	apply(t, a, evs, 1000, 1500)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a = newUpdater(t, store)
	if got := a.Offset(topic, 0); got != 1500 {
		t.Fatalf("offset after a restart during the replay %d, want 1500", got)
	}
	apply(t, a, evs, 1500, 3000)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	apply(t, ref, evs, 1000, 3000)
	plain := newUpdater(t, featurestore.NewMemory()) // no installation: mf's reference
	apply(t, plain, evs, 0, 3000)
	got := tables(t, store)
	users, items, _, err := ref.Rows("bpr")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "bpr:users", got["bpr:users"], users)
	sameRows(t, "bpr:items", got["bpr:items"], items)
	users, items, global, err := plain.Rows("mf")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "mf:users", got["mf:users"], users)
	sameRows(t, "mf:items", got["mf:items"], items)
	sameRows(t, "mf:global", got["mf:global"], map[string][]float32{"g": global})

	counts := map[string]int64{}
	ids := []string{}
	for i := range evs {
		if counts[evs[i].Item] == 0 {
			ids = append(ids, evs[i].Item)
		}
		counts[evs[i].Item]++
	}
	stored, err := store.Counters(ctx, updater.CounterItemEvents, ids)
	if err != nil {
		t.Fatal(err)
	}
	for k, id := range ids {
		if stored[k] != counts[id] {
			t.Errorf("item %s counted %d times, %d events", id, stored[k], counts[id])
		}
	}
	offs, err := store.Offsets(ctx, updater.ModelTopic(topic, "bpr"))
	if err != nil || offs[0] != 3000 {
		t.Fatalf("bpr's own offset %v (%v), want 3000", offs, err)
	}
}

// TestItemEventsFollowModelOffsets: an item event below a model's own offset changes none of
// its rows, one at or past it sets the model's item metadata (deepstyle's category) even
// when the base has it already, and the base bookkeeping (the stored embedding, the base
// offset) only moves for events past the base.
func TestItemEventsFollowModelOffsets(t *testing.T) {
	ctx := context.Background()
	store := featurestore.NewMemory()
	u := newVisualUpdater(t, store, updater.DefaultOptions())
	ds := visualModels()[2].(*models.DeepStyle)
	cats := []string{"Drama", "", ""} // "": category 0; names: 1 or 2 here
	for _, c := range []string{"Horror", "Comedy", "Western", "Noir", "Musical", "Sci-Fi"} {
		if ds.Category(c) != ds.Category(cats[0]) {
			cats[1] = c
			break
		}
	}
	if cats[1] == "" {
		t.Fatal("no two named categories apart")
	}
	item := func(cat string, emb float32) *events.Item {
		return &events.Item{Item: "x", Timestamp: 1, Model: "test", Embedding: []float32{emb, 0, 0, 0, 0, 0},
			Metadata: map[string]string{models.CategoryKey: cat}}
	}
	at := func(o int64) updater.Position { return updater.Position{Topic: itemsTopic, Offset: o} }
	for o := int64(0); o < 2; o++ {
		if err := u.ApplyItem(item(cats[0], 1), at(o)); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	commit(t, store, func(tx featurestore.Tx) {
		tx.SetOffset(updater.ModelTopic(itemsTopic, "deepstyle"), 0, featurestore.NoOffset, 1)
	})
	u = newVisualUpdater(t, store, updater.DefaultOptions())
	if got := u.Offset(itemsTopic, 0); got != 1 {
		t.Fatalf("resume offset %d, want deepstyle's 1", got)
	}
	for o, cat := range []string{cats[2], cats[1]} { // offset 0: below deepstyle's; 1: replayed
		if err := u.ApplyItem(item(cat, 9), at(int64(o))); err != nil {
			t.Fatal(err)
		}
		if o == 0 {
			_, items, _, err := u.Rows("deepstyle")
			if err != nil {
				t.Fatal(err)
			}
			if items["x"][0] != float32(ds.Category(cats[0])) {
				t.Fatalf("an event below deepstyle's offset set its category slot to %v", items["x"][0])
			}
		}
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := store.Vectors(ctx, "deepstyle:items", []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != float32(ds.Category(cats[1])) {
		t.Fatalf("deepstyle's category slot %v, want the replayed event's %d", rows[0][0], ds.Category(cats[1]))
	}
	emb, err := store.Vectors(ctx, updater.TableEmbeddings, []string{"x"})
	if err != nil || emb[0][0] != 1 {
		t.Fatalf("stored embedding %v (%v): rewritten by an event the base had", emb, err)
	}
	base, _ := store.Offsets(ctx, itemsTopic)
	own, _ := store.Offsets(ctx, updater.ModelTopic(itemsTopic, "deepstyle"))
	if base[0] != 2 || own[0] != 2 {
		t.Fatalf("base offset %v, deepstyle's %v; want 2 and 2", base, own)
	}
}
