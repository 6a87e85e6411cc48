package toplists_test

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
	"github.com/visrec/visrec/toplists"
	"github.com/visrec/visrec/updater"
)

const topic = "events"

type env struct {
	store  *featurestore.Redis
	client *redis.Client
	ns     string
	ms     []models.Servable
	u      *updater.Updater
	off    int64
	index  *ranking.Index
	mat    *toplists.Materializer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	addr := testenv.RedisAddr(t)
	e := &env{ns: testenv.Unique("toplists"), client: redis.NewClient(&redis.Options{Addr: addr})}
	var err error
	e.store, err = featurestore.NewRedis(redis.NewClient(&redis.Options{Addr: addr}), featurestore.RedisOptions{Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.store.Close()
		ctx := context.Background()
		keys, err := e.client.Keys(ctx, "{"+e.ns+"}:*").Result()
		if err == nil && len(keys) > 0 {
			err = e.client.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("cleanup of %s: %v", e.ns, err)
		}
		_ = e.client.Close()
	})
	bo := models.DefaultBPROptions()
	bo.Factors = 8
	mo := models.DefaultMFOptions()
	mo.Factors = 8
	e.ms = []models.Servable{models.NewBPR(bo), models.NewMF(mo)}
	e.u, err = updater.New(e.store, updater.DefaultOptions(), e.ms[0], e.ms[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.u.Load(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	return e
}

// apply feeds a seeded burst of events through the updater and flushes it.
func (e *env) apply(t *testing.T, n, users, items int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	ctx := context.Background()
	for range n {
		ev := events.Interaction{Type: events.Type(1 + rng.IntN(4)), User: "u" + strconv.Itoa(rng.IntN(users)),
			Item: "i" + strconv.Itoa(rng.IntN(items)), Timestamp: e.off + 1}
		if ev.Type == events.Rating {
			ev.Value, ev.HasValue = float32(1+rng.IntN(5)), true
		}
		if err := e.u.Apply(ctx, &ev, updater.Position{Topic: topic, Offset: e.off}); err != nil {
			t.Fatal(err)
		}
		e.off++
	}
	if err := e.u.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// run starts the index and the materializer until the test ends.
func (e *env) run(t *testing.T, o toplists.Options) {
	t.Helper()
	var err error
	e.index, err = ranking.New(e.store, e.ms, ranking.Options{SyncInterval: 10 * time.Millisecond, GlobalRefresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o.Namespace = e.ns
	e.mat, err = toplists.New(e.client, e.store, e.index, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- e.index.Run(ctx) }()
	go func() { done <- e.mat.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}
	})
}

type scored struct {
	item  string
	score float64
}

// exact computes the top k of user for model from the stored parameters with the model's
// own Score, leaving out the items the user has seen: independent of ranking and toplists.
func (e *env) exact(t *testing.T, m models.Servable, user string, k int) []scored {
	t.Helper()
	ctx := context.Background()
	ids, _ := e.store.Catalog(ctx, updater.CatalogItems)
	urow, _ := e.store.Vectors(ctx, m.Name()+":users", []string{user})
	rows, _ := e.store.Vectors(ctx, m.Name()+":items", ids)
	var g []float32
	if m.GlobalDim() > 0 {
		gr, _ := e.store.Vectors(ctx, m.Name()+":global", []string{"g"})
		g = gr[0]
	}
	seen, _ := e.store.SetMembers(ctx, "seen", user)
	var out []scored
	for i, id := range ids {
		if slices.Contains(seen, id) {
			continue
		}
		r := rows[i]
		if r == nil {
			r = make([]float32, m.ItemDim())
		}
		out = append(out, scored{id, float64(m.Score(urow[0], r, g))})
	}
	slices.SortStableFunc(out, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
	return out[:min(k, len(out))]
}

// read returns the list as a client reads it.
func (e *env) read(t *testing.T, model, user string) []scored {
	t.Helper()
	l, err := toplists.ReadList(context.Background(), e.client, toplists.ListKey(e.ns, model, user))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]scored, len(l.Items))
	for i, x := range l.Items {
		out[i] = scored{x.Item, float64(x.Score)}
	}
	return out
}

// listed tells whether the list at key holds item.
func listed(ctx context.Context, c redis.UniversalClient, key, item string) (bool, error) {
	l, err := toplists.ReadList(ctx, c, key)
	return slices.ContainsFunc(l.Items, func(e toplists.Entry) bool { return e.Item == item }), err
}

// equal compares a list with the exact one: same length, the same score at every rank,
// and each listed item with its exact score (items may swap only within rounding of a tie).
func equal(got, want []scored) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d items, want %d", len(got), len(want))
	}
	ws := map[string]float64{}
	for _, w := range want {
		ws[w.item] = w.score
	}
	const tol = 1e-4
	for i := range got {
		if math.Abs(got[i].score-want[i].score) > tol*max(1, math.Abs(want[i].score)) {
			return fmt.Errorf("rank %d: %v, want %v", i, got[i], want[i])
		}
		s, ok := ws[got[i].item]
		if !ok && i < len(want)-1 || ok && math.Abs(s-got[i].score) > tol*max(1, math.Abs(s)) {
			return fmt.Errorf("rank %d: %v, exact top: %v", i, got[i], want)
		}
	}
	return nil
}

func (e *env) allExact(t *testing.T, users []string, k int) error {
	for _, m := range e.ms {
		for _, u := range users {
			if err := equal(e.read(t, m.Name(), u), e.exact(t, m, u, k)); err != nil {
				return fmt.Errorf("%s %s: %w", m.Name(), u, err)
			}
		}
	}
	return nil
}

func eventually(t *testing.T, within time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s not within %v: %v", what, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "u" + strconv.Itoa(i)
	}
	return out
}

// TestListsExactAfterBurst: after bursts of updates are flushed, every list read from Redis
// equals the exact top-K computed from the parameters.
func TestListsExactAfterBurst(t *testing.T) {
	e := newEnv(t)
	e.apply(t, 3000, 40, 200, 1)
	const k = 10
	// MF's μ changes with every burst: a sweep of 20 ms brings every list to the new global
	// row within the test's patience (the default, a minute, would not).
	e.run(t, toplists.Options{K: k, Debounce: 30 * time.Millisecond, PollInterval: 10 * time.Millisecond, RefreshesPerSecond: 10_000,
		GlobalSweep: 20 * time.Millisecond})
	us := users(40)
	d := eventually(t, 10*time.Second, "backfilled lists exact", func() error { return e.allExact(t, us, k) })
	t.Logf("backfill exact after %v", d)
	for b := range 3 {
		e.apply(t, 1500, 40, 230+10*b, uint64(2+b))
		d := eventually(t, 10*time.Second, "lists exact after a burst", func() error { return e.allExact(t, us, k) })
		t.Logf("burst %d: exact %v after the flush", b, d)
	}
	l, err := toplists.ReadList(context.Background(), e.client, toplists.ListKey(e.ns, "bpr", "u3"))
	if err != nil || time.Since(l.Written) > time.Minute {
		t.Fatalf("write time of u3's list: %v, %v", l.Written, err)
	}
}

// TestNewItemEntersAffectedLists: a new item whose vector dominates for some users enters
// exactly the lists whose K-th score it beats, by scoring it alone, with no full refresh.
func TestNewItemEntersAffectedLists(t *testing.T) {
	e := newEnv(t)
	e.apply(t, 2000, 30, 150, 5)
	const k = 8
	e.run(t, toplists.Options{K: k, Debounce: 30 * time.Millisecond, PollInterval: 10 * time.Millisecond, RefreshesPerSecond: 10_000})
	us := users(30)
	eventually(t, 10*time.Second, "backfilled lists exact", func() error { return e.allExact(t, us, k) })
	ctx := context.Background()
	before := e.mat.Stats(ctx)
	// hot's BPR row: q = c·p_u0, bias 0; its score for user u is c·p_u·p_u0.
	rows, _ := e.store.Vectors(ctx, "bpr:users", []string{"u0"})
	row := hotRow(rows[0])
	tx := e.store.Begin()
	tx.AppendCatalog(updater.CatalogItems, "hot")
	tx.AddVector("bpr:items", "hot", row)
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var in, out []string
	for _, u := range us {
		if slices.ContainsFunc(e.exact(t, e.ms[0], u, k), func(s scored) bool { return s.item == "hot" }) {
			in = append(in, u)
		} else {
			out = append(out, u)
		}
	}
	if len(in) == 0 || len(out) == 0 {
		t.Fatalf("the test item should enter some lists and not others: in %v, out %v", in, out)
	}
	d := eventually(t, 5*time.Second, "lists exact after the new item", func() error { return e.allExact(t, us, k) })
	for _, u := range out {
		if slices.ContainsFunc(e.read(t, "bpr", u), func(s scored) bool { return s.item == "hot" }) {
			t.Fatalf("hot entered %s's list", u)
		}
	}
	after := e.mat.Stats(ctx)
	if after.Refreshes != before.Refreshes {
		t.Fatalf("full refreshes went from %d to %d; the new item should be scored alone", before.Refreshes, after.Refreshes)
	}
	if got := after.Incremental - before.Incremental; got < int64(len(in)) {
		t.Fatalf("%d incremental list changes, want at least the %d affected users", got, len(in))
	}
	t.Logf("hot entered %d of %d lists after %v (incremental changes %d)", len(in), len(us), d, after.Incremental-before.Incremental)
}

// TestRefreshBudget: full refreshes never outrun the budget (the bucket starts empty and
// fills at RefreshesPerSecond), and every user is listed in the end.
func TestRefreshBudget(t *testing.T) {
	e := newEnv(t)
	e.apply(t, 1500, 60, 100, 21)
	const rate = 40
	start := time.Now()
	e.run(t, toplists.Options{K: 5, PollInterval: 10 * time.Millisecond, RefreshesPerSecond: rate, Models: []string{"bpr"}})
	ctx := context.Background()
	for {
		s := e.mat.Stats(ctx)
		el := time.Since(start).Seconds()
		if limit := int64(rate*el) + 1; s.Refreshes > limit {
			t.Fatalf("%d full refreshes after %.2fs: more than the budget allows (%d)", s.Refreshes, el, limit)
		}
		if s.Users == 60 && s.Queued == 0 {
			if el < 1 {
				t.Fatalf("60 users listed in %.2fs at %d refreshes/s", el, rate)
			}
			break
		}
		if el > 20 {
			t.Fatalf("not every user listed after 20s: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := e.client.Exists(ctx, toplists.ListKey(e.ns, "mf", "u1")).Result(); err != nil || n != 0 {
		t.Fatalf("a list of a model not asked for: %d, %v", n, err)
	}
}

// TestNewItemWrittenBeforeQueuedRefreshes: with every user queued for a full refresh and a
// budget that takes seconds to drain the queue, a new item that dominates for some users
// enters their lists in Redis at once, not after the queue: while refreshes are still
// queued, every list read from Redis is the exact top-K (the new item in exactly the lists
// whose K-th it beats; those lists are changed in place, ZADD and ZREM of one member).
func TestNewItemWrittenBeforeQueuedRefreshes(t *testing.T) {
	e := newEnv(t)
	const nUsers, k, rate = 10, 8, 4
	e.apply(t, 2000, nUsers, 150, 7)
	e.run(t, toplists.Options{K: k, Debounce: 30 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		RefreshesPerSecond: rate, Models: []string{"bpr"}})
	us := users(nUsers)
	bpr := e.ms[0]
	exact := func() error {
		for _, u := range us {
			if err := equal(e.read(t, "bpr", u), e.exact(t, bpr, u, k)); err != nil {
				return fmt.Errorf("%s: %w", u, err)
			}
		}
		return nil
	}
	ctx := context.Background()
	eventually(t, 20*time.Second, "backfilled lists exact", exact)
	eventually(t, 10*time.Second, "the backfill's queue drained", func() error {
		if s := e.mat.Stats(ctx); s.Queued > 0 {
			return fmt.Errorf("%d queued", s.Queued)
		}
		return nil
	})
	// Every user's row written again, unchanged: each user is queued for a full refresh
	// (nUsers/rate seconds of budget), and its list stays exact.
	rows, err := e.store.Vectors(ctx, "bpr:users", us)
	if err != nil {
		t.Fatal(err)
	}
	tx := e.store.Begin()
	for i, u := range us {
		tx.SetVector("bpr:users", u, rows[i])
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "users queued", func() error {
		if s := e.mat.Stats(ctx); s.Queued < nUsers/2 {
			return fmt.Errorf("%d queued", s.Queued)
		}
		return nil
	})
	// hot's BPR row: q = c·p_u0, bias 0; its score for user u is c·p_u·p_u0.
	row := hotRow(rows[0])
	tx = e.store.Begin()
	tx.AppendCatalog(updater.CatalogItems, "hot")
	tx.AddVector("bpr:items", "hot", row)
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, u := range us {
		if slices.ContainsFunc(e.exact(t, bpr, u, k), func(s scored) bool { return s.item == "hot" }) {
			in = append(in, u)
		}
	}
	if len(in) == 0 || len(in) == nUsers {
		t.Fatalf("the test item should enter some lists and not others: in %v", in)
	}
	d := eventually(t, 5*time.Second, "lists exact with the new item", exact)
	if s := e.mat.Stats(ctx); s.Queued == 0 {
		t.Fatalf("the refresh queue drained (%+v) before the new item was listed: the test proves nothing", s)
	}
	t.Logf("hot entered %d of %d lists after %v, with full refreshes still queued", len(in), nUsers, d)
}

// hotRow is a BPR item row (K=8) q = 20·p/|p|², bias 0: its score for a user u is
// 20·p_u·p/|p|², 20 for the user whose row is p.
func hotRow(p []float32) []float64 {
	var n2 float64
	for _, x := range p {
		n2 += float64(x) * float64(x)
	}
	row := make([]float64, 9)
	for j := range 8 {
		row[1+j] = 20 * float64(p[j]) / n2
	}
	return row
}
