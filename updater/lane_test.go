package updater_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/updater"
)

// newLaneUpdater is an updater of the visual models without item metadata (VBPR, VMF), with
// the item lane on when lane is set.
func newLaneUpdater(t *testing.T, store featurestore.Store, lane bool) *updater.Updater {
	t.Helper()
	u, err := updater.New(store, updater.DefaultOptions(), visualModels()[:2]...)
	if err != nil {
		t.Fatal(err)
	}
	if lane && !u.SeparateItemFlushes(itemsTopic) {
		t.Fatal("SeparateItemFlushes refused models without item metadata")
	}
	if err := u.Load(context.Background(), topic, itemsTopic); err != nil {
		t.Fatal(err)
	}
	return u
}

// laneState is what a store holds besides model rows: catalog order, offsets and counters.
func laneState(t *testing.T, s featurestore.Store) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	cat, err := s.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	out["catalog"] = cat
	for _, tp := range []string{topic, itemsTopic} {
		offs, err := s.Offsets(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		out["offsets "+tp] = offs
	}
	counts, err := s.Counters(ctx, updater.CounterItemEvents, cat)
	if err != nil {
		t.Fatal(err)
	}
	out["item event counts"] = counts
	return out
}

// TestItemLane: with an item lane, item flushes and flushes of interactions in flight
// together, committed in either order, leave the store bit-identical to an updater without
// the lane (rows, embeddings, catalog order, offsets, counters); an item flush carries the
// catalog, the embeddings and the items topic's offsets and nothing of the interactions;
// and after a crash that loses a flush of interactions, a reload replays exactly the lost
// interactions (effectively once). DeepStyle keeps categories in item rows, so it refuses
// the lane.
func TestItemLane(t *testing.T) {
	ctx := context.Background()
	ds, err := updater.New(featurestore.NewMemory(), updater.DefaultOptions(), visualModels()...)
	if err != nil {
		t.Fatal(err)
	}
	if ds.SeparateItemFlushes(itemsTopic) {
		t.Fatal("SeparateItemFlushes accepted DeepStyle, whose item rows hold metadata")
	}

	log := visualLog(6000, 7)
	ref := featurestore.NewMemory()
	u := newLaneUpdater(t, ref, false)
	applyLog(t, u, log, 0, len(log))
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	store := featurestore.NewMemory()
	u = newLaneUpdater(t, store, true)
	rng := rand.New(rand.NewPCG(3, 3))
	commitBoth := func(main, items *updater.PendingFlush) {
		t.Helper()
		fs := []*updater.PendingFlush{main, items}
		if rng.IntN(2) == 0 {
			fs[0], fs[1] = fs[1], fs[0]
		}
		for _, f := range fs {
			if f != nil {
				if err := u.FinishFlush(f, f.Commit(ctx)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for pos := 0; pos < len(log); {
		// A flush of interactions starts, events go on, an item flush starts while the
		// first is in flight; they land in random order.
		next := min(len(log), pos+1+rng.IntN(800))
		applyLog(t, u, log, pos, next)
		main := u.StartFlush()
		pos, next = next, min(len(log), next+rng.IntN(200))
		applyLog(t, u, log, pos, next)
		commitBoth(main, u.StartItemFlush())
		pos = next
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameState(t, storeState(t, ref), storeState(t, store))
	if want, got := laneState(t, ref), laneState(t, store); !reflect.DeepEqual(want, got) {
		t.Fatalf("with the item lane the store holds\n%v\nwant\n%v", got, want)
	}

	// An item flush alone: catalog, embeddings and the items topic's offsets; no row of a
	// model, no offset or counter of the interactions.
	store = featurestore.NewMemory()
	u = newLaneUpdater(t, store, true)
	applyLog(t, u, log, 0, 2000)
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := storeState(t, store)
	beforeLane := laneState(t, store)
	var items, interactions int
	for _, e := range log[2000:3000] {
		if e.item != nil {
			items++
		} else {
			interactions++
		}
	}
	applyLog(t, u, log, 2000, 3000)
	f := u.StartItemFlush()
	if f == nil || f.Events() != items {
		t.Fatalf("item flush of %v covering %d events, want %d item events", f != nil, f.Events(), items)
	}
	if err := u.FinishFlush(f, f.Commit(ctx)); err != nil {
		t.Fatal(err)
	}
	after, afterLane := storeState(t, store), laneState(t, store)
	for _, tb := range []string{"vbpr:users", "vbpr:items", "vbpr:global", "vmf:users", "vmf:items", "vmf:global"} {
		if !reflect.DeepEqual(before[tb], after[tb]) {
			t.Fatalf("the item flush wrote rows of %s", tb)
		}
	}
	if !reflect.DeepEqual(beforeLane["offsets "+topic], afterLane["offsets "+topic]) {
		t.Fatal("the item flush moved the interactions' offsets")
	}
	if got := afterLane["offsets "+itemsTopic].(map[int]int64)[0]; got != u.Offset(itemsTopic, 0) {
		t.Fatalf("items offset %d stored, updater is at %d", got, u.Offset(itemsTopic, 0))
	}
	if len(after[updater.TableEmbeddings]) <= len(before[updater.TableEmbeddings]) {
		t.Fatal("the item flush stored no new embedding")
	}

	// Crash: the flush of the interactions applied meanwhile is lost. A reload resumes the
	// interactions where the last flush of theirs left off and the items after the item
	// flush; replaying the rest applies every interaction once.
	u = newLaneUpdater(t, store, true)
	resumed := 0
	for _, e := range log {
		if e.pos.Offset >= u.Offset(e.pos.Topic, 0) {
			var err error
			if e.item != nil {
				err = u.ApplyItem(e.item, e.pos)
			} else {
				err = u.Apply(ctx, e.ev, e.pos)
				resumed++
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if want := len(log[2000:]) - countItems(log[2000:]); resumed != want {
		t.Fatalf("replayed %d interactions, want the %d after the last flush of interactions", resumed, want)
	}
	final := laneState(t, store)
	wantLane := laneState(t, ref)
	for _, k := range []string{"offsets " + topic, "offsets " + itemsTopic} {
		if !reflect.DeepEqual(final[k], wantLane[k]) {
			t.Fatalf("%s after the replay = %v, want %v", k, final[k], wantLane[k])
		}
	}
	// Every interaction counted once: per-item counts equal the reference's, whatever the
	// catalog order.
	count := func(s map[string]any) map[string]int64 {
		out := map[string]int64{}
		for i, id := range s["catalog"].([]string) {
			out[id] = s["item event counts"].([]int64)[i]
		}
		return out
	}
	if got, want := count(final), count(wantLane); !reflect.DeepEqual(got, want) {
		t.Fatalf("per-item interaction counts after the replay differ from one pass: %v vs %v", got, want)
	}
	if n, err := store.Counters(ctx, "applied:"+topic, []string{strconv.Itoa(0)}); err != nil || n[0] != int64(len(log)-countItems(log)) {
		t.Fatalf("applied interactions = %v (%v), want %d", n, err, len(log)-countItems(log))
	}
}

func countItems(log []entry) int {
	n := 0
	for _, e := range log {
		if e.item != nil {
			n++
		}
	}
	return n
}
