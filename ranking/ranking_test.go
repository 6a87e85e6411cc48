package ranking_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/updater"
)

const topic = "events"

// forEachStore runs f against the memory store and a Redis store on a namespace of its own.
func forEachStore(t *testing.T, f func(t *testing.T, store featurestore.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, featurestore.NewMemory()) })
	t.Run("redis", func(t *testing.T) { f(t, newRedisStore(t)) })
}

func newRedisStore(t *testing.T) featurestore.Store {
	t.Helper()
	addr := testenv.RedisAddr(t)
	ns := testenv.Unique("rankingtest")
	s, err := featurestore.NewRedis(redis.NewClient(&redis.Options{Addr: addr}), featurestore.RedisOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		admin := redis.NewClient(&redis.Options{Addr: addr})
		defer admin.Close()
		ctx := context.Background()
		keys, err := admin.Keys(ctx, "{"+ns+"}:*").Result()
		if err == nil && len(keys) > 0 {
			err = admin.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("cleanup of %s: %v", ns, err)
		}
	})
	return s
}

func testModels() []models.Servable {
	bo := models.DefaultBPROptions()
	bo.Factors = 8
	mo := models.DefaultMFOptions()
	mo.Factors = 8
	return []models.Servable{models.NewBPR(bo), models.NewMF(mo)}
}

// stream is a seeded log of implicit and rating events over users u0..u(users-1) and items
// i0..i(items-1).
func stream(n, users, items int, seed uint64) []events.Interaction {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]events.Interaction, n)
	for i := range out {
		e := events.Interaction{
			Type:      events.Type(1 + rng.IntN(4)),
			User:      "u" + strconv.Itoa(rng.IntN(users)),
			Item:      "i" + strconv.Itoa(rng.IntN(items)),
			Timestamp: int64(1 + i),
		}
		if e.Type == events.Rating {
			e.Value, e.HasValue = float32(1+rng.IntN(5)), true
		}
		out[i] = e
	}
	return out
}

// feeder applies events through the production update code.
type feeder struct {
	u   *updater.Updater
	off int64
}

func newFeeder(t *testing.T, store featurestore.Store, ms []models.Servable) *feeder {
	t.Helper()
	var on []models.Online
	for _, m := range ms {
		on = append(on, m)
	}
	u, err := updater.New(store, updater.DefaultOptions(), on...)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	return &feeder{u: u}
}

func (f *feeder) apply(t *testing.T, evs []events.Interaction) {
	t.Helper()
	ctx := context.Background()
	for i := range evs {
		if err := f.u.Apply(ctx, &evs[i], updater.Position{Topic: topic, Offset: f.off}); err != nil {
			t.Fatal(err)
		}
		f.off++
	}
	if err := f.u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (f *feeder) item(t *testing.T, id string, emb []float32) {
	t.Helper()
	if err := f.u.ApplyItem(&events.Item{Item: id, Timestamp: 1, Model: "test", Embedding: emb}, updater.Position{Topic: topic, Offset: f.off}); err != nil {
		t.Fatal(err)
	}
	f.off++
}

// start runs an index until the test ends and waits for its first load.
func start(t *testing.T, store featurestore.Store, ms []models.Servable, opts ranking.Options) *ranking.Index {
	t.Helper()
	x, err := ranking.New(store, ms, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !x.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("index not ready after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return x
}

// brute ranks every catalog item for user by the model's own Score over the rows read from
// the store, independently of the index: the reference rankings are compared with.
func brute(t *testing.T, store featurestore.Store, m models.Servable, user string, exclude map[string]bool, candidates []string) []ranking.Scored {
	t.Helper()
	ctx := context.Background()
	ids, err := store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	if candidates != nil {
		ids = candidates
	}
	urow, err := store.Vectors(ctx, m.Name()+":users", []string{user})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := store.Vectors(ctx, m.Name()+":items", ids)
	if err != nil {
		t.Fatal(err)
	}
	var global []float32
	if m.GlobalDim() > 0 {
		g, err := store.Vectors(ctx, m.Name()+":global", []string{"g"})
		if err != nil {
			t.Fatal(err)
		}
		global = g[0]
		if global == nil {
			global = make([]float32, m.GlobalDim())
		}
	}
	var out []ranking.Scored
	for i, id := range ids {
		if exclude[id] {
			continue
		}
		row := rows[i]
		if row == nil {
			row = make([]float32, m.ItemDim())
		}
		out = append(out, ranking.Scored{Item: id, Score: m.Score(urow[0], row, global)})
	}
	slices.SortStableFunc(out, func(a, b ranking.Scored) int { return cmp.Compare(b.Score, a.Score) })
	return out
}

const tol = 1e-4

// sameRanking checks got against the first k of want: the score at every rank agrees, and
// every item got has the score want gives it (so items may only swap within float32
// rounding of a tie).
func sameRanking(got, want []ranking.Scored, k int) error {
	if len(want) > k {
		want = want[:k]
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d items, want %d", len(got), len(want))
	}
	score := make(map[string]float32)
	for _, w := range want {
		score[w.Item] = w.Score
	}
	for i := range got {
		if d := math.Abs(float64(got[i].Score - want[i].Score)); d > tol*max(1, math.Abs(float64(want[i].Score))) {
			return fmt.Errorf("rank %d: got %v, want %v", i, got[i], want[i])
		}
		ws, ok := score[got[i].Item]
		if !ok && i < len(want)-1 {
			return fmt.Errorf("rank %d: %v is not in the reference top %d: %v", i, got[i], k, want)
		}
		if ok && math.Abs(float64(ws-got[i].Score)) > tol*max(1, math.Abs(float64(ws))) {
			return fmt.Errorf("rank %d: %v, reference score %v", i, got[i], ws)
		}
	}
	return nil
}

func TestRecommendMatchesBruteForce(t *testing.T) {
	forEachStore(t, func(t *testing.T, store featurestore.Store) {
		ms := testModels()
		f := newFeeder(t, store, ms)
		f.apply(t, stream(4000, 40, 300, 1))
		x := start(t, store, ms, ranking.Options{Workers: 3})
		ctx := context.Background()
		for _, m := range ms {
			for _, user := range []string{"u0", "u7", "u39"} {
				for _, k := range []int{1, 10, 64, 1000} {
					got, err := x.Recommend(ctx, m.Name(), user, k, ranking.RecOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if err := sameRanking(got, brute(t, store, m, user, nil, nil), k); err != nil {
						t.Fatalf("%s %s k=%d: %v", m.Name(), user, k, err)
					}
					// Recommend and Scores compute the same sum: equal bit for bit.
					ids := make([]string, len(got))
					for i, g := range got {
						ids[i] = g.Item
					}
					sc, err := x.Scores(ctx, m.Name(), user, ids)
					if err != nil {
						t.Fatal(err)
					}
					for i := range got {
						if sc[i] != got[i].Score {
							t.Fatalf("%s %s: Scores(%s) = %v, Recommend gave %v", m.Name(), user, ids[i], sc[i], got[i].Score)
						}
					}
				}
				seen, err := store.SetMembers(ctx, "seen", user)
				if err != nil {
					t.Fatal(err)
				}
				if len(seen) == 0 {
					t.Fatalf("user %s has seen nothing", user)
				}
				ex := make(map[string]bool)
				for _, id := range seen {
					ex[id] = true
				}
				got, err := x.Recommend(ctx, m.Name(), user, 20, ranking.RecOptions{ExcludeSeen: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := sameRanking(got, brute(t, store, m, user, ex, nil), 20); err != nil {
					t.Fatalf("%s %s exclude seen: %v", m.Name(), user, err)
				}
				cands := []string{"i5", "i17", "i5", "i250", "i3"}
				got, err = x.Recommend(ctx, m.Name(), user, 3, ranking.RecOptions{Candidates: cands})
				if err != nil {
					t.Fatal(err)
				}
				if err := sameRanking(got, brute(t, store, m, user, nil, []string{"i5", "i17", "i250", "i3"}), 3); err != nil {
					t.Fatalf("%s %s candidates: %v", m.Name(), user, err)
				}
				items := []string{"i1", "i2", "i299"}
				sc, err := x.Scores(ctx, m.Name(), user, items)
				if err != nil {
					t.Fatal(err)
				}
				ref := brute(t, store, m, user, nil, items)
				for _, r := range ref {
					i := slices.Index(items, r.Item)
					if math.Abs(float64(sc[i]-r.Score)) > tol {
						t.Fatalf("%s %s score of %s: %v, want %v", m.Name(), user, r.Item, sc[i], r.Score)
					}
				}
			}
		}
	})
}

// TestRankingTiesAndBlocks ranks more items than one block with many exact ties: the
// result must be in catalog order among equal scores, whatever the split over workers.
func TestRankingTiesAndBlocks(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()[:1] // BPR: score = b_i + p_u·q_i
	ctx := context.Background()
	tx := store.Begin()
	const n = 5000
	for i := range n {
		id := "i" + strconv.Itoa(i)
		tx.AppendCatalog(updater.CatalogItems, id)
		d := make([]float64, 9)
		d[0] = float64(i % 7) // bias only: seven distinct scores, ~714 items each
		tx.AddVector("bpr:items", id, d)
	}
	tx.SetVector("bpr:users", "u", make([]float32, 8))
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{1, 2, 3, 8} {
		x := start(t, store, ms, ranking.Options{Workers: w})
		got, err := x.Recommend(ctx, "bpr", "u", 800, ranking.RecOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// 714 items have bias 6 (i ≡ 6 mod 7), then the ones with bias 5.
		want := []string{}
		for b := 6; b >= 0 && len(want) < 800; b-- {
			for i := range n {
				if i%7 == b && len(want) < 800 {
					want = append(want, "i"+strconv.Itoa(i))
				}
			}
		}
		for i := range got {
			if got[i].Item != want[i] {
				t.Fatalf("workers %d: rank %d is %v, want %s", w, i, got[i], want[i])
			}
		}
	}
}

func TestErrors(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	f := newFeeder(t, store, ms)
	f.apply(t, stream(500, 5, 50, 2))
	x, err := ranking.New(store, ms, ranking.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := x.Recommend(ctx, "bpr", "u0", 10, ranking.RecOptions{}); !errors.Is(err, ranking.ErrNotReady) {
		t.Fatalf("before Run: %v, want ErrNotReady", err)
	}
	if x.Ready() {
		t.Fatal("ready before Run")
	}
	x = start(t, store, ms, ranking.Options{})
	cases := []struct {
		name string
		err  error
		call func() error
	}{
		{"unknown model", ranking.ErrUnknownModel, func() error {
			_, err := x.Recommend(ctx, "nope", "u0", 10, ranking.RecOptions{})
			return err
		}},
		{"unknown user", ranking.ErrUnknownUser, func() error {
			_, err := x.Recommend(ctx, "bpr", "nobody", 10, ranking.RecOptions{})
			return err
		}},
		{"unknown candidate", ranking.ErrUnknownItem, func() error {
			_, err := x.Recommend(ctx, "bpr", "u0", 10, ranking.RecOptions{Candidates: []string{"i1", "zzz"}})
			return err
		}},
		{"k zero", ranking.ErrInvalidArgument, func() error {
			_, err := x.Recommend(ctx, "bpr", "u0", 0, ranking.RecOptions{})
			return err
		}},
		{"scores unknown item", ranking.ErrUnknownItem, func() error {
			_, err := x.Scores(ctx, "mf", "u0", []string{"zzz"})
			return err
		}},
		{"scores unknown user", ranking.ErrUnknownUser, func() error {
			_, err := x.Scores(ctx, "mf", "nobody", []string{"i1"})
			return err
		}},
		{"scores unknown model", ranking.ErrUnknownModel, func() error {
			_, err := x.Scores(ctx, "nope", "u0", []string{"i1"})
			return err
		}},
		{"similar unknown item", ranking.ErrUnknownItem, func() error {
			_, err := x.Similar(ctx, "bpr", "zzz", 5, ranking.ByCF)
			return err
		}},
		{"similar unknown by", ranking.ErrInvalidArgument, func() error {
			_, err := x.Similar(ctx, "bpr", "i1", 5, "sound")
			return err
		}},
		{"similar no embedding", ranking.ErrNoEmbedding, func() error {
			_, err := x.Similar(ctx, "bpr", "i1", 5, ranking.ByImage)
			return err
		}},
		{"similar unknown model", ranking.ErrUnknownModel, func() error {
			_, err := x.Similar(ctx, "nope", "i1", 5, ranking.ByCF)
			return err
		}},
	}
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	if _, ok := x.Item("zzz"); ok {
		t.Error("Item(zzz) found")
	}
	if info, ok := x.Item("i3"); !ok || info.ID != "i3" {
		t.Errorf("Item(i3) = %+v, %v", info, ok)
	}
	if _, err := ranking.New(store, append(ms, ms[0]), ranking.Options{}); err == nil {
		t.Error("New with a model twice succeeded")
	}
}

// TestConcurrentRankingsBatched: rankings running at once are batched together; each must
// still be exactly its sequential result.
func TestConcurrentRankingsBatched(t *testing.T) {
	store := featurestore.NewMemory()
	ms := testModels()
	f := newFeeder(t, store, ms)
	f.apply(t, stream(6000, 40, 3000, 11)) // 3000 items: three blocks
	x := start(t, store, ms, ranking.Options{Workers: 2})
	ctx := context.Background()
	type call struct {
		model, user string
		k           int
		o           ranking.RecOptions
	}
	var calls []call
	for i := range 40 {
		calls = append(calls, call{ms[i%2].Name(), "u" + strconv.Itoa(i), 1 + i%23, ranking.RecOptions{ExcludeSeen: i%3 == 0}})
	}
	want := make([][]ranking.Scored, len(calls))
	for i, c := range calls {
		var err error
		if want[i], err = x.Recommend(ctx, c.model, c.user, c.k, c.o); err != nil {
			t.Fatal(err)
		}
	}
	wantSim, err := x.Similar(ctx, "bpr", "i7", 5, ranking.ByCF)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for r := range 30 {
				i := (g*7 + r) % len(calls)
				c := calls[i]
				got, err := x.Recommend(ctx, c.model, c.user, c.k, c.o)
				if err == nil && !slices.Equal(got, want[i]) {
					err = fmt.Errorf("call %d: concurrent %v, sequential %v", i, got, want[i])
				}
				if err == nil && r%5 == 0 {
					var sim []ranking.Scored
					if sim, err = x.Similar(ctx, "bpr", "i7", 5, ranking.ByCF); err == nil && !slices.Equal(sim, wantSim) {
						err = fmt.Errorf("similar: concurrent %v, sequential %v", sim, wantSim)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
