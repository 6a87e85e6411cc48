package ranking_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/updater"
)

// matchesStore tells whether the index ranks like the brute force over the store now.
func matchesStore(t *testing.T, x *ranking.Index, store featurestore.Store, ms []models.Servable, users []string) error {
	ctx := context.Background()
	for _, m := range ms {
		for _, u := range users {
			got, err := x.Recommend(ctx, m.Name(), u, 10, ranking.RecOptions{})
			if err != nil {
				return err
			}
			if err := sameRanking(got, brute(t, store, m, u, nil, nil), 10); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestSyncPicksUpUpdates writes bursts of events (changed item rows, new items, a changed
// global row for MF) through the updater while the index runs, and requires the index to
// rank like the store within a bounded time after each flush.
func TestSyncPicksUpUpdates(t *testing.T) {
	forEachStore(t, func(t *testing.T, store featurestore.Store) {
		ms := testModels()
		f := newFeeder(t, store, ms)
		f.apply(t, stream(2000, 30, 200, 3))
		opts := ranking.Options{SyncInterval: 10 * time.Millisecond, GlobalRefresh: 100 * time.Millisecond}
		x := start(t, store, ms, opts)
		users := []string{"u1", "u2", "u29"}
		if err := matchesStore(t, x, store, ms, users); err != nil {
			t.Fatalf("after the first load: %v", err)
		}
		const bound = 3 * time.Second // the documented lag is GlobalRefresh + SyncInterval; slack for a loaded machine
		for burst := range 3 {
			// events over more items than before: new items join the catalog
			f.apply(t, stream(1000, 30, 220+20*burst, uint64(10+burst)))
			flushed := time.Now()
			var err error
			for {
				if err = matchesStore(t, x, store, ms, users); err == nil {
					break
				}
				if time.Since(flushed) > bound {
					t.Fatalf("burst %d: index not in sync %v after the flush: %v", burst, bound, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cat, _ := store.Catalog(context.Background(), updater.CatalogItems)
			if x.Len() != len(cat) {
				t.Fatalf("burst %d: index has %d items, catalog %d", burst, x.Len(), len(cat))
			}
			t.Logf("burst %d: in sync %v after the flush", burst, time.Since(flushed).Round(time.Millisecond))
		}
	})
}

// TestNewItemImmediately: an item that arrives with an embedding and a dominating row is
// ranked first within a few sync intervals, long before GlobalRefresh.
func TestNewItemImmediately(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	f := newFeeder(t, store, ms)
	f.apply(t, stream(1000, 10, 100, 4))
	x := start(t, store, ms, ranking.Options{SyncInterval: 10 * time.Millisecond, GlobalRefresh: time.Hour})
	v0 := x.Version()
	tx := store.Begin()
	tx.AppendCatalog(updater.CatalogItems, "hot")
	d := make([]float64, 9)
	d[0] = 1e6 // BPR item bias: beats every other item for every user
	tx.AddVector("bpr:items", "hot", d)
	if _, err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		got, err := x.Recommend(context.Background(), "bpr", "u3", 1, ranking.RecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Item == "hot" {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("new item not ranked first after 2s: %v", got)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if x.Version() <= v0 {
		t.Fatal("version did not advance")
	}
	t.Logf("new item ranked after %v", time.Since(start).Round(time.Millisecond))
}

func cosine(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return d / math.Sqrt(na*nb)
}

// TestSimilar compares both similarities with cosines computed here from the stored rows.
func TestSimilar(t *testing.T) {
	forEachStore(t, func(t *testing.T, store featurestore.Store) {
		ms := testModels()
		f := newFeeder(t, store, ms)
		rng := rand.New(rand.NewPCG(5, 5))
		embs := map[string][]float32{}
		for i := range 40 { // every other of the first 80 items has an embedding
			id := "i" + strconv.Itoa(2*i)
			e := make([]float32, 16)
			for k := range e {
				e[k] = float32(rng.NormFloat64())
			}
			embs[id] = e
			f.item(t, id, e)
		}
		f.apply(t, stream(3000, 30, 150, 6))
		x := start(t, store, ms, ranking.Options{Workers: 2})
		ctx := context.Background()
		cat, _ := store.Catalog(ctx, updater.CatalogItems)
		for _, m := range ms {
			rows, err := store.Vectors(ctx, m.Name()+":items", cat)
			if err != nil {
				t.Fatal(err)
			}
			var g []float32
			if m.GlobalDim() > 0 {
				gr, _ := store.Vectors(ctx, m.Name()+":global", []string{"g"})
				g = gr[0]
			}
			vec := func(i int) []float32 {
				v := make([]float32, m.ServeDim())
				r := rows[i]
				if r == nil {
					r = make([]float32, m.ItemDim())
				}
				m.ItemVector(v, r, g, embs[cat[i]])
				return v
			}
			for _, q := range []int{0, 7, 120} {
				var want []ranking.Scored
				for i := range cat {
					if i != q {
						want = append(want, ranking.Scored{Item: cat[i], Score: float32(cosine(vec(q), vec(i)))})
					}
				}
				slices.SortStableFunc(want, func(a, b ranking.Scored) int { return -cmpF(a.Score, b.Score) })
				got, err := x.Similar(ctx, m.Name(), cat[q], 10, ranking.ByCF)
				if err != nil {
					t.Fatal(err)
				}
				if err := sameRanking(got, want, 10); err != nil {
					t.Fatalf("%s similar to %s: %v", m.Name(), cat[q], err)
				}
			}
		}
		var want []ranking.Scored
		for _, id := range cat {
			if e, ok := embs[id]; ok && id != "i4" {
				want = append(want, ranking.Scored{Item: id, Score: float32(cosine(embs["i4"], e))})
			}
		}
		slices.SortStableFunc(want, func(a, b ranking.Scored) int { return -cmpF(a.Score, b.Score) })
		got, err := x.Similar(ctx, "", "i4", 50, ranking.ByImage)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 39 {
			t.Fatalf("image similar: %d items, want the 39 others with an embedding", len(got))
		}
		if err := sameRanking(got, want, 50); err != nil {
			t.Fatalf("image similar: %v", err)
		}
		if info, ok := x.Item("i4"); !ok || !info.HasEmbedding {
			t.Fatalf("Item(i4) = %+v", info)
		}
		if info, _ := x.Item("i5"); info.HasEmbedding {
			t.Fatalf("Item(i5) = %+v", info)
		}
	})
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestPopular checks the documented blend against counts read from the store.
func TestPopular(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	f := newFeeder(t, store, ms)
	f.apply(t, stream(3000, 30, 300, 8))
	x := start(t, store, ms, ranking.Options{FreshItems: 50})
	ctx := context.Background()
	cat, _ := store.Catalog(ctx, updater.CatalogItems)
	ev, _ := store.Counters(ctx, updater.CounterItemEvents, cat)
	var mx int64
	for _, e := range ev {
		mx = max(mx, e)
	}
	var want []ranking.Scored
	for i, id := range cat {
		s := 0.7 * math.Log1p(float64(ev[i])) / math.Log1p(float64(mx))
		if age := len(cat) - 1 - i; age < 50 {
			s += 0.3 * (1 - float64(age)/50)
		}
		want = append(want, ranking.Scored{Item: id, Score: float32(s)})
	}
	slices.SortStableFunc(want, func(a, b ranking.Scored) int { return -cmpF(a.Score, b.Score) })
	got := x.Popular(20, nil)
	if err := sameRanking(got, want, 20); err != nil {
		t.Fatal(err)
	}
	ex := map[string]bool{want[0].Item: true, want[3].Item: true}
	got = x.Popular(5, ex)
	w := slices.DeleteFunc(slices.Clone(want), func(s ranking.Scored) bool { return ex[s.Item] })
	if err := sameRanking(got, w, 5); err != nil {
		t.Fatalf("with exclusions: %v", err)
	}
	info, _ := x.Item(cat[10])
	if info.Events != ev[10] {
		t.Fatalf("Item events %d, want %d", info.Events, ev[10])
	}
}

// TestStartsEmpty: an index over an empty store is ready, answers with nothing, and serves
// what the updater writes later (first blocks, first embedding).
func TestStartsEmpty(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	x := start(t, store, ms, ranking.Options{SyncInterval: 5 * time.Millisecond, GlobalRefresh: 20 * time.Millisecond})
	ctx := context.Background()
	if got := x.Popular(5, nil); len(got) != 0 {
		t.Fatalf("Popular of an empty catalog: %v", got)
	}
	if _, err := x.Recommend(ctx, "bpr", "u1", 5, ranking.RecOptions{}); err == nil {
		t.Fatal("a user without a row was ranked")
	}
	f := newFeeder(t, store, ms)
	f.item(t, "i0", []float32{1, 0, 0})
	f.apply(t, stream(800, 10, 1500, 12)) // more than one block of items
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := matchesStore(t, x, store, ms, []string{"u1", "u2"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not in sync 3s after the first writes: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if info, ok := x.Item("i0"); !ok || !info.HasEmbedding {
		t.Fatalf("Item(i0) = %+v, %v", info, ok)
	}
	if got, err := x.Similar(ctx, "", "i0", 3, ranking.ByImage); err != nil || len(got) != 0 {
		t.Fatalf("image neighbours of the only item with an embedding: %v, %v", got, err)
	}
}

// TestItemChangesWithGlobal: when a new global row is applied together with new items, the
// change log says Global and still lists the new items (so that a follower can score them
// at once), and the item vectors recomputed in parallel over several blocks rank like the
// store.
func TestItemChangesWithGlobal(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	f := newFeeder(t, store, ms)
	f.apply(t, stream(6000, 20, 3000, 5)) // about 2,700 items: 3 blocks
	x := start(t, store, ms, ranking.Options{SyncInterval: 5 * time.Millisecond, GlobalRefresh: 10 * time.Millisecond, Workers: 3})
	v0 := x.Version()
	// ratings move MF's μ (its global row); items 3000-3009 are new
	var evs []events.Interaction
	for i := range 10 {
		evs = append(evs, events.Interaction{Type: events.Rating, User: "u1", Item: "i" + strconv.Itoa(3000+i),
			Value: 5, HasValue: true, Timestamp: 2})
	}
	f.apply(t, evs)
	deadline := time.Now().Add(3 * time.Second)
	var cs ranking.ItemChangeSet
	for {
		var err error
		if cs, err = x.ItemChanges("mf", v0); err != nil {
			t.Fatal(err)
		}
		if cs.Global && len(cs.IDs) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no global change with the new items within 3s: %+v", cs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if cs.Reload {
		t.Fatal("Reload set for an ordinary change")
	}
	for i := range 10 {
		if id := "i" + strconv.Itoa(3000+i); !slices.Contains(cs.IDs, id) {
			t.Fatalf("new item %s not in the change set %v", id, cs.IDs)
		}
	}
	if err := matchesStore(t, x, store, ms, []string{"u1", "u2", "u19"}); err != nil {
		t.Fatalf("after the global recompute: %v", err)
	}
	if cs, _ := x.ItemChanges("mf", cs.Now); cs.Reload {
		t.Fatalf("an up-to-date follower told to reload: %+v", cs)
	}
}

// TestNewItemsBetweenPolls: with full polls an hour apart, a new item is still served within
// milliseconds (the catalog look every NewItemsInterval), scored like the brute force over
// the store, and logged for followers; a changed row of an old item waits for the full poll.
func TestNewItemsBetweenPolls(t *testing.T) {
	forEachStore(t, func(t *testing.T, store featurestore.Store) {
		ms := testModels()
		f := newFeeder(t, store, ms)
		f.apply(t, stream(1000, 10, 100, 5))
		x := start(t, store, ms, ranking.Options{SyncInterval: time.Hour, NewItemsInterval: 2 * time.Millisecond, GlobalRefresh: time.Hour})
		cs, err := x.ItemChanges("bpr", math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		v0 := cs.Now
		old := x.Len()

		// One commit: a new item with a dominating bias, and an old item's row changed.
		tx := store.Begin()
		tx.AppendCatalog(updater.CatalogItems, "hot")
		d := make([]float64, 9)
		d[0] = 1e6
		tx.AddVector("bpr:items", "hot", d)
		cat, err := store.Catalog(context.Background(), updater.CatalogItems)
		if err != nil {
			t.Fatal(err)
		}
		tx.AddVector("bpr:items", cat[0], d)
		if _, err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		for x.Len() == old {
			if time.Since(began) > 2*time.Second {
				t.Fatal("new item not served within 2s while full polls are an hour apart")
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("new item served after %v", time.Since(began).Round(100*time.Microsecond))
		got, err := x.Recommend(context.Background(), "bpr", "u3", 2, ranking.RecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The brute force over the store ranks the changed old item first (ties by catalog
		// order) and "hot" second; the index has not re-read the old item yet.
		if got[0].Item != "hot" {
			t.Fatalf("index ranks %v first, want the new item (the old item's change waits for the full poll)", got)
		}
		want := brute(t, store, ms[0], "u3", nil, []string{"hot"})
		if got[0].Score != want[0].Score {
			t.Fatalf("new item scored %v, brute force over the store %v", got[0].Score, want[0].Score)
		}
		if cs, err = x.ItemChanges("bpr", v0); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cs.IDs, []string{"hot"}) || cs.Global || cs.Reload {
			t.Fatalf("ItemChanges after the new item = %+v, want just hot", cs)
		}
	})
}

// gatedStore blocks the reads of item rows that include gate while armed, as a Redis busy
// with a long commit would.
type gatedStore struct {
	featurestore.Store
	gate    string
	armed   atomic.Bool
	blocked chan struct{} // receives once per blocked read
	release chan struct{}
}

func (g *gatedStore) Vectors(ctx context.Context, table string, ids []string) ([][]float32, error) {
	if g.armed.Load() && strings.HasSuffix(table, ":items") && slices.Contains(ids, g.gate) {
		g.blocked <- struct{}{}
		<-g.release
	}
	return g.Store.Vectors(ctx, table, ids)
}

// TestNewItemsWhileFullPollBlocked: a full poll whose reads are stuck (a changed row behind
// a slow store) does not hold new items back: they are served meanwhile, and when the
// full poll lands, also with an item both served, the index equals the brute force over
// the store, each item once.
func TestNewItemsWhileFullPollBlocked(t *testing.T) {
	mem := featurestore.NewMemory()
	store := &gatedStore{Store: mem, gate: "i0", blocked: make(chan struct{}, 16), release: make(chan struct{})}
	ms := testModels()
	f := newFeeder(t, mem, ms)
	f.apply(t, stream(1000, 10, 100, 6))
	x := start(t, store, ms, ranking.Options{SyncInterval: 5 * time.Millisecond, NewItemsInterval: 2 * time.Millisecond})
	ctx := context.Background()
	commit := func(newItem string) {
		t.Helper()
		tx := mem.Begin()
		d := make([]float64, 9)
		d[0] = 1e6
		if newItem != "" {
			tx.AppendCatalog(updater.CatalogItems, newItem)
			tx.AddVector("bpr:items", newItem, d)
		}
		tx.AddVector("bpr:items", "i0", []float64{1, 0, 0, 0, 0, 0, 0, 0, 0})
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	served := func(id string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			if _, ok := x.Item(id); ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served within 2s while a full poll was blocked", id)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, both := range []bool{false, true} {
		store.armed.Store(true)
		id := "hot-late"
		if both { // the new item is in the blocked poll's catalog read too
			id = "hot-both"
			commit(id)
		} else {
			commit("")
		}
		select {
		case <-store.blocked:
		case <-time.After(5 * time.Second):
			t.Fatal("no full poll read the changed row")
		}
		if !both {
			commit(id)
		}
		served(id)
		store.armed.Store(false)
		store.release <- struct{}{}
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := matchesStore(t, x, mem, ms, []string{"u1", "u7"})
			cat, _ := mem.Catalog(ctx, updater.CatalogItems)
			if err == nil && x.Len() == len(cat) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the blocked poll landed: index has %d items, catalog %d; %v", x.Len(), len(cat), err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
