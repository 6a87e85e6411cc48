package updater_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

const topic = "events"

// stream is a seeded log of implicit and rating events over few users and items.
func stream(n int, seed uint64) []events.Interaction {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]events.Interaction, n)
	for i := range out {
		e := events.Interaction{
			Type:      events.Type(1 + rng.IntN(4)),
			User:      "u" + strconv.Itoa(rng.IntN(50)),
			Item:      "i" + strconv.Itoa(rng.IntN(200)),
			Timestamp: int64(1 + i),
		}
		if e.Type == events.Rating {
			e.Value, e.HasValue = float32(1+rng.IntN(5)), true
		}
		out[i] = e
	}
	return out
}

func newUpdater(t *testing.T, store featurestore.Store) *updater.Updater {
	t.Helper()
	mf := models.DefaultMFOptions()
	mf.Factors = 8
	bpr := models.DefaultBPROptions()
	bpr.Factors = 8
	u, err := updater.New(store, updater.DefaultOptions(), models.NewBPR(bpr), models.NewMF(mf))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	return u
}

// apply feeds evs[from:to] as offsets from..to-1 of partition 0.
func apply(t *testing.T, u *updater.Updater, evs []events.Interaction, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := u.Apply(context.Background(), &evs[i], updater.Position{Topic: topic, Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func tables(t *testing.T, s featurestore.Store) map[string]map[string][]float32 {
	t.Helper()
	out := make(map[string]map[string][]float32)
	for _, name := range []string{"bpr:users", "bpr:items", "mf:users", "mf:items", "mf:global"} {
		rows := make(map[string][]float32)
		if err := s.ScanVectors(context.Background(), name, func(id string, v []float32) error {
			rows[id] = v
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		out[name] = rows
	}
	return out
}

// TestRestartsAreInvisible: an updater that flushes at random points and is replaced by a
// fresh one (losing its unflushed work, as after SIGKILL) that resumes from the stored
// offset ends with exactly the parameters of one uninterrupted run.
func TestRestartsAreInvisible(t *testing.T) {
	evs := stream(20_000, 3)
	ctx := context.Background()

	ref := featurestore.NewMemory()
	u := newUpdater(t, ref)
	apply(t, u, evs, 0, len(evs))
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	store := featurestore.NewMemory()
	rng := rand.New(rand.NewPCG(9, 9))
	u = newUpdater(t, store)
	pos := 0
	for restarts := 0; pos < len(evs); restarts++ {
		flushAt := min(len(evs), pos+1+rng.IntN(3000))
		apply(t, u, evs, pos, flushAt)
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		lost := min(len(evs), flushAt+rng.IntN(500))
		apply(t, u, evs, flushAt, lost) // applied, never flushed: lost in the "crash"
		u = newUpdater(t, store)
		pos = int(u.Offset(topic, 0))
		if pos != flushAt {
			t.Fatalf("resumed at %d, last flush covered %d", pos, flushAt)
		}
	}
	want, got := tables(t, ref), tables(t, store)
	for name, rows := range want {
		if len(rows) == 0 || len(rows) != len(got[name]) {
			t.Fatalf("%s: %d rows, uninterrupted run has %d", name, len(got[name]), len(rows))
		}
		for id, w := range rows {
			g := got[name][id]
			for k := range w {
				if g[k] != w[k] {
					t.Fatalf("%s %s[%d] = %v, uninterrupted run has %v", name, id, k, g[k], w[k])
				}
			}
		}
	}
}

// TestTwoWritersAndFencing: two updaters on one store, each owning a partition, merge their
// item deltas without losing any (the per-item counters add up), and a stale writer of a
// partition is fenced out without writing anything.
func TestTwoWritersAndFencing(t *testing.T) {
	ctx := context.Background()
	store := featurestore.NewMemory()
	a, b := newUpdater(t, store), newUpdater(t, store)
	evs := stream(4000, 5)
	counts := map[string]int64{}
	for i := range evs {
		counts[evs[i].Item]++
		u := a
		if i%2 == 1 {
			u = b
		}
		if err := u.Apply(ctx, &evs[i], updater.Position{Topic: topic, Partition: i % 2, Offset: int64(i / 2)}); err != nil {
			t.Fatal(err)
		}
		if i%700 == 0 {
			if err := u.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range []*updater.Updater{a, b} {
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	got, err := store.Counters(ctx, updater.CounterItemEvents, ids)
	if err != nil {
		t.Fatal(err)
	}
	for k, id := range ids {
		if got[k] != counts[id] {
			t.Errorf("item %s: %d events counted, %d applied", id, got[k], counts[id])
		}
	}

	// A stale owner of partition 0 (loaded before a's next flush) is fenced.
	stale := newUpdater(t, store)
	e := events.Interaction{Type: events.Click, User: "u1", Item: "i1", Timestamp: 1}
	if err := a.Apply(ctx, &e, updater.Position{Topic: topic, Offset: 2000}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := tables(t, store)
	if err := stale.Apply(ctx, &e, updater.Position{Topic: topic, Offset: 2000}); err != nil {
		t.Fatal(err)
	}
	if err := stale.Flush(ctx); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("stale flush: %v, want ErrFenced", err)
	}
	after := tables(t, store)
	for name := range before {
		for id, v := range before[name] {
			for k := range v {
				if after[name][id][k] != v[k] {
					t.Fatalf("fenced flush changed %s %s", name, id)
				}
			}
		}
	}
}

// TestFlushPolicy: a flush is due after FlushEvents events or FlushInterval after the first.
func TestFlushPolicy(t *testing.T) {
	opts := updater.DefaultOptions()
	opts.FlushEvents, opts.FlushInterval = 3, time.Hour
	u, err := updater.New(featurestore.NewMemory(), opts, models.NewBPR(models.DefaultBPROptions()))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < 3; i++ {
		if u.FlushDue(now) {
			t.Fatalf("due after %d events", i)
		}
		u.Skip(updater.Position{Topic: topic, Offset: int64(i)})
	}
	if !u.FlushDue(now) {
		t.Fatal("not due after FlushEvents events")
	}
	if err := u.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	u.Skip(updater.Position{Topic: topic, Offset: 3})
	if u.FlushDue(time.Now()) || !u.FlushDue(time.Now().Add(2*time.Hour)) {
		t.Fatal("the interval rule does not hold")
	}
}

// TestSnapshotRoundTrip: an updater's state written as a snapshot reads back bit-exactly,
// with every row under its id and the offsets it covers.
func TestSnapshotRoundTrip(t *testing.T) {
	u := newUpdater(t, featurestore.NewMemory())
	evs := stream(3000, 11)
	apply(t, u, evs, 0, len(evs))
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
		users, items, global, err := u.Rows(model)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string][]float32{"users": users, "items": items}
		if global != nil {
			want["global"] = map[string][]float32{"g": global}
		}
		if len(back.Tables) != len(want) || back.Meta["offset:events:0"] != strconv.Itoa(len(evs)) {
			t.Fatalf("%s: %d tables, meta %v", model, len(back.Tables), back.Meta)
		}
		for _, tb := range back.Tables {
			rows := want[tb.Name]
			if len(rows) != tb.Rows || len(rows) == 0 {
				t.Fatalf("%s %s: %d rows, updater has %d", model, tb.Name, tb.Rows, len(rows))
			}
			for r, id := range tb.IDs {
				for c, x := range rows[id] {
					if math.Float32bits(tb.Data[r*tb.Cols+c]) != math.Float32bits(x) {
						t.Fatalf("%s %s %s[%d] differs", model, tb.Name, id, c)
					}
				}
			}
		}
	}
}

// TestSeenItems: after a flush, the store's "seen" set of each user holds exactly the items
// of that user's interactions; unflushed interactions are not there yet.
func TestSeenItems(t *testing.T) {
	ctx := context.Background()
	store := featurestore.NewMemory()
	u := newUpdater(t, store)
	evs := stream(3000, 11)
	apply(t, u, evs, 0, 2000)
	if err := u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, u, evs, 2000, 3000) // not flushed
	want := map[string]map[string]bool{}
	for _, e := range evs[:2000] {
		if want[e.User] == nil {
			want[e.User] = map[string]bool{}
		}
		want[e.User][e.Item] = true
	}
	for user, items := range want {
		got, err := store.SetMembers(ctx, updater.SetSeen, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(items) {
			t.Fatalf("%s saw %d items, store has %d", user, len(items), len(got))
		}
		for _, it := range got {
			if !items[it] {
				t.Fatalf("%s: store lists %s, which the user never interacted with before the flush", user, it)
			}
		}
	}
}
