package snapshots_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/snapshots"
	"github.com/visrec/visrec/updater"
)

const topic = "events"

// stream is a seeded log over 50 users and 200 items, every item seen in the first 200
// events (so that a snapshot of any longer prefix knows the whole catalog), and user "late"
// first seen at 1200.
func stream(n int, seed uint64) []events.Interaction {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]events.Interaction, n)
	for i := range out {
		e := events.Interaction{Type: events.Type(1 + rng.IntN(4)), User: "u" + strconv.Itoa(rng.IntN(50)),
			Item: "i" + strconv.Itoa(rng.IntN(200)), Timestamp: int64(1 + i)}
		if i < 200 {
			e.Item = "i" + strconv.Itoa(i)
		}
		if e.Type == events.Rating {
			e.Value, e.HasValue = float32(1+rng.IntN(5)), true
		}
		out[i] = e
	}
	out[1200].User, out[1200].Type = "late", events.Click
	return out
}

func newUpdater(t *testing.T, store featurestore.Store) *updater.Updater {
	t.Helper()
	mf, bpr := models.DefaultMFOptions(), models.DefaultBPROptions()
	mf.Factors, bpr.Factors = 8, 8
	u, err := updater.New(store, updater.DefaultOptions(), models.NewBPR(bpr), models.NewMF(mf))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	return u
}

func apply(t *testing.T, u *updater.Updater, evs []events.Interaction, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := u.Apply(context.Background(), &evs[i], updater.Position{Topic: topic, Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func scan(t *testing.T, s featurestore.Store, table string) map[string][]float32 {
	t.Helper()
	rows := map[string][]float32{}
	if err := s.ScanVectors(context.Background(), table, func(id string, v []float32) error {
		rows[id] = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// sameRows fails unless the stored rows are bit-identical to want, a missing (or, when
// zeroOK, all-zero) stored row standing for a zero row.
func sameRows(t *testing.T, what string, got, want map[string][]float32, zeroOK bool) {
	t.Helper()
	for id, g := range got {
		if _, ok := want[id]; !ok && !(zeroOK && allZero(g)) {
			t.Fatalf("%s: unexpected row %q", what, id)
		}
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			g = make([]float32, len(w))
		}
		if len(g) != len(w) {
			t.Fatalf("%s: row %q has width %d, want %d", what, id, len(g), len(w))
		}
		for k := range w {
			if math.Float32bits(g[k]) != math.Float32bits(w[k]) {
				t.Fatalf("%s: row %q[%d] = %v, want %v", what, id, k, g[k], w[k])
			}
		}
	}
}

func allZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// TestInstallRebases installs a snapshot of bpr covering [0, 1000) in small commits while an
// updater of bpr and mf, at 1600, keeps flushing between them: the updater is fenced, goes
// on with mf alone while bpr is frozen, is fenced again at the end, replays [1000, ...) for
// bpr only, and ends with bpr's rows bit-identical to the snapshot's run continued over
// every later event once (user "late", stored before but not in the snapshot, deleted and
// started afresh), mf's rows identical to a run without installation, every counter once.
func TestInstallRebases(t *testing.T) {
	ctx := context.Background()
	evs := stream(3000, 3)
	store := featurestore.NewMemory()
	a := newUpdater(t, store)
	apply(t, a, evs, 0, 1600)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := scan(t, store, "bpr:users"); rows["late"] == nil {
		t.Fatal("user late not stored before the installation")
	}
	ref := newUpdater(t, featurestore.NewMemory())
	apply(t, ref, evs, 0, 1000)
	snap, err := ref.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}

	at := 1600
	res, err := snapshots.Install(ctx, store, snap, snapshots.InstallOptions{Topics: []string{topic}, Chunk: 7,
		AfterCommit: func(c int) {
			switch c {
			case 2:
				apply(t, a, evs, at, at+200)
				if err := a.Flush(ctx); !errors.Is(err, featurestore.ErrFenced) {
					t.Errorf("flush during the installation: %v, want ErrFenced", err)
				}
				if err := a.Load(ctx, topic); err != nil {
					t.Error(err)
				}
				fallthrough
			case 5, 30:
				apply(t, a, evs, at, at+200)
				if err := a.Flush(ctx); err != nil {
					t.Errorf("flush of a frozen bpr at commit %d: %v", c, err)
				}
				at += 200
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if res.Epoch != 2 || res.Covered[topic][0] != 1000 || res.Deleted != 1 || len(res.Assumed) != 0 || res.Commits < 30 {
		t.Fatalf("install result %+v", res)
	}
	apply(t, a, evs, at, at+100)
	if err := a.Flush(ctx); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("flush after the installation: %v, want ErrFenced", err)
	}
	if err := a.Load(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if got := a.Offset(topic, 0); got != 1000 {
		t.Fatalf("resume offset %d, want the snapshot's 1000", got)
	}
	apply(t, a, evs, 1000, 3000)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	apply(t, ref, evs, 1000, 3000)
	plain := newUpdater(t, featurestore.NewMemory())
	apply(t, plain, evs, 0, 3000)
	users, items, _, err := ref.Rows("bpr")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "bpr:users", scan(t, store, "bpr:users"), users, false)
	sameRows(t, "bpr:items", scan(t, store, "bpr:items"), items, false)
	users, items, global, err := plain.Rows("mf")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "mf:users", scan(t, store, "mf:users"), users, false)
	sameRows(t, "mf:items", scan(t, store, "mf:items"), items, false)
	sameRows(t, "mf:global", scan(t, store, "mf:global"), map[string][]float32{"g": global}, false)

	counts, ids := map[string]int64{}, []string{}
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
}

// TestInstallWithoutOffsets: a snapshot that records no offsets (trained on a file) covers
// the base offsets at the installation: nothing is replayed, and a second installation
// (a rollback) moves the epoch on.
func TestInstallWithoutOffsets(t *testing.T) {
	ctx := context.Background()
	evs := stream(1500, 4)
	store := featurestore.NewMemory()
	a := newUpdater(t, store)
	apply(t, a, evs, 0, 1400)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ref := newUpdater(t, featurestore.NewMemory())
	apply(t, ref, evs, 0, 500)
	snap, err := ref.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}
	snap.Meta = nil
	for want := int64(2); want <= 4; want += 2 {
		res, err := snapshots.Install(ctx, store, snap, snapshots.InstallOptions{Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Epoch != want || res.Covered[topic][0] != 1400 || len(res.Assumed) != 1 {
			t.Fatalf("install result %+v", res)
		}
	}
	if err := a.Load(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if got := a.Offset(topic, 0); got != 1400 {
		t.Fatalf("resume offset %d, want the base 1400", got)
	}
	users, _, _, err := ref.Rows("bpr")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "bpr:users", scan(t, store, "bpr:users"), users, false)
}

// TestConcurrentInstallations: an installation that starts while another is writing rows
// fences it out (the other fails at its next commit), and its own rows are what remains.
func TestConcurrentInstallations(t *testing.T) {
	ctx := context.Background()
	evs := stream(1500, 5)
	store := featurestore.NewMemory()
	a := newUpdater(t, store)
	apply(t, a, evs, 0, 1400)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snapAt := func(n int) *updater.Updater {
		u := newUpdater(t, featurestore.NewMemory())
		apply(t, u, evs, 0, n)
		return u
	}
	first, second := snapAt(400), snapAt(900)
	s1, err := first.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := second.Snapshot("bpr")
	if err != nil {
		t.Fatal(err)
	}
	var inner error
	_, err = snapshots.Install(ctx, store, s1, snapshots.InstallOptions{Topics: []string{topic}, Chunk: 10,
		AfterCommit: func(c int) {
			if c == 2 {
				_, inner = snapshots.Install(ctx, store, s2, snapshots.InstallOptions{Topics: []string{topic}, Chunk: 10})
			}
		}})
	if inner != nil {
		t.Fatal(inner)
	}
	if !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("the overtaken installation: %v, want ErrFenced", err)
	}
	users, items, _, err := second.Rows("bpr")
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "bpr:users", scan(t, store, "bpr:users"), users, false)
	sameRows(t, "bpr:items", scan(t, store, "bpr:items"), items, false)
	if own, _ := store.Offsets(ctx, updater.ModelTopic(topic, "bpr")); own[0] != 900 {
		t.Fatalf("bpr's own offset %v, want the second snapshot's 900", own)
	}
	if ep, _ := store.Offsets(ctx, updater.EpochTopic("bpr")); ep[0] != 4 {
		t.Fatalf("bpr's epoch %v, want 4 (0 → 1 by the first, 3 → 4 by the second)", ep)
	}
}
