package serving

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
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

// The tests in this file run the whole serving path: a Redis feature store filled by the
// production updater, a ranking.Index synced from it, and the HTTP server over the index.
// Answers are compared with brute force computed from the stored rows with each model's own
// Score (not the serving vectors the index ranks with).

const itopic = "events"

func redisStore(t *testing.T) *featurestore.Redis {
	t.Helper()
	addr := testenv.RedisAddr(t)
	ns := testenv.Unique("servingtest")
	s, err := featurestore.NewRedis(redis.NewClient(&redis.Options{Addr: addr}), featurestore.RedisOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		admin := redis.NewClient(&redis.Options{Addr: addr})
		defer admin.Close()
		ctx := context.Background()
		if keys, err := admin.Keys(ctx, "{"+ns+"}:*").Result(); err == nil && len(keys) > 0 {
			admin.Del(ctx, keys...)
		}
	})
	return s
}

// world is a store filled through the updater, an index over it and a server over the index.
type world struct {
	store featurestore.Store
	ms    []models.Servable
	upd   *updater.Updater
	off   int64
	idx   *ranking.Index
	url   string
	token string
}

func servableModels() []models.Servable {
	bo := models.DefaultBPROptions()
	bo.Factors = 8
	mo := models.DefaultMFOptions()
	mo.Factors = 8
	return []models.Servable{models.NewBPR(bo), models.NewMF(mo)}
}

func interactions(n, users, items int, seed uint64) []events.Interaction {
	rng := rand.New(rand.NewPCG(seed, 11))
	out := make([]events.Interaction, n)
	for i := range out {
		e := events.Interaction{
			Type:      events.Type(1 + rng.IntN(4)),
			User:      "u" + strconv.Itoa(rng.IntN(users)),
			Item:      "i" + strconv.Itoa(int(float64(items)*math.Pow(rng.Float64(), 2))), // skewed popularity
			Timestamp: int64(1 + i),
		}
		if e.Type == events.Rating {
			e.Value, e.HasValue = float32(1+rng.IntN(5)), true
		}
		out[i] = e
	}
	return out
}

func newWorld(t *testing.T, opts Options) *world {
	t.Helper()
	w := &world{store: redisStore(t), ms: servableModels(), token: opts.Token}
	var on []models.Online
	for _, m := range w.ms {
		on = append(on, m)
	}
	u, err := updater.New(w.store, updater.DefaultOptions(), on...)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Load(context.Background(), itopic); err != nil {
		t.Fatal(err)
	}
	w.upd = u
	// Embeddings for the even items among the first 60; then 3,000 interactions over 40
	// users and 150 items.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 60; i += 2 {
		emb := make([]float32, 16)
		for j := range emb {
			emb[j] = float32(rng.NormFloat64())
		}
		if err := u.ApplyItem(&events.Item{Item: "i" + strconv.Itoa(i), Timestamp: 1, Model: "test", Embedding: emb},
			updater.Position{Topic: itopic, Offset: w.off}); err != nil {
			t.Fatal(err)
		}
		w.off++
	}
	w.apply(t, interactions(3000, 40, 150, 1))

	w.idx, err = ranking.New(w.store, w.ms, ranking.Options{SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.idx.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); !w.idx.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("index not ready after 10s")
		}
	}
	s, err := New(w.idx, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	w.url = ts.URL
	return w
}

func (w *world) apply(t *testing.T, evs []events.Interaction) {
	t.Helper()
	ctx := context.Background()
	for i := range evs {
		if err := w.upd.Apply(ctx, &evs[i], updater.Position{Topic: itopic, Offset: w.off}); err != nil {
			t.Fatal(err)
		}
		w.off++
	}
	if err := w.upd.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (w *world) get(t *testing.T, path string) answer {
	t.Helper()
	return do(t, "GET", w.url+path, w.token, "", "")
}

// bruteScores is model's Score of user for every catalog item, from the stored rows.
func (w *world) bruteScores(t *testing.T, m models.Servable, user string) (catalog []string, scores []float32) {
	t.Helper()
	ctx := context.Background()
	catalog, err := w.store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	urow := w.rows(t, m.Name()+":users", []string{user}, m.UserDim())[0]
	items := w.rows(t, m.Name()+":items", catalog, m.ItemDim())
	var global []float32
	if m.GlobalDim() > 0 {
		global = w.rows(t, m.Name()+":global", []string{"g"}, m.GlobalDim())[0]
	}
	for _, row := range items {
		scores = append(scores, m.Score(urow, row, global))
	}
	return catalog, scores
}

// rows reads rows, a missing one as zeros (as the updater starts item rows).
func (w *world) rows(t *testing.T, table string, ids []string, dim int) [][]float32 {
	t.Helper()
	rows, err := w.store.Vectors(context.Background(), table, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i] == nil {
			rows[i] = make([]float32, dim)
		}
	}
	return rows
}

type scoredItem struct {
	Item  string  `json:"item"`
	Score float32 `json:"score"`
}

func listOf(t *testing.T, a answer) []scoredItem {
	t.Helper()
	var out struct {
		Items []scoredItem `json:"items"`
	}
	if err := json.Unmarshal([]byte(a.raw), &out); err != nil {
		t.Fatalf("%v: %s", err, a.raw)
	}
	return out.Items
}

const tol = 1e-4

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= tol*(1+math.Abs(float64(b))) }

// checkTopK asserts that got is the top k of want (id → brute-force score) up to float
// rounding: each score is the brute-force one, scores do not increase, ids are distinct and
// allowed, and no allowed item beats the last one returned (or is missing when fewer than k
// came back).
func checkTopK(t *testing.T, what string, got []scoredItem, want map[string]float32, k int) {
	t.Helper()
	if len(got) != min(k, len(want)) {
		t.Fatalf("%s: %d items, want %d", what, len(got), min(k, len(want)))
	}
	in := map[string]bool{}
	for i, g := range got {
		ws, ok := want[g.Item]
		if !ok || in[g.Item] {
			t.Fatalf("%s: item %q at %d is not an allowed candidate, or repeated", what, g.Item, i)
		}
		in[g.Item] = true
		if !near(g.Score, ws) {
			t.Fatalf("%s: %q scored %v, brute force %v", what, g.Item, g.Score, ws)
		}
		if i > 0 && g.Score > got[i-1].Score {
			t.Fatalf("%s: scores increase at %d: %v", what, i, got)
		}
	}
	if len(got) == 0 {
		return
	}
	last := got[len(got)-1].Score
	for id, s := range want {
		if !in[id] && s > last && !near(s, last) {
			t.Fatalf("%s: %q (brute force %v) beats the last returned score %v but is missing", what, id, s, last)
		}
	}
}

func TestServeRealIndex(t *testing.T) {
	w := newWorld(t, Options{Token: "tok", MaxK: 100})
	ctx := context.Background()
	users := []string{"u0", "u7", "u19", "u33"}
	for _, m := range w.ms {
		for _, user := range users {
			catalog, scores := w.bruteScores(t, m, user)
			seen, err := w.store.SetMembers(ctx, "seen", user)
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) == 0 {
				t.Fatalf("user %s has no seen items; the fixture is wrong", user)
			}
			all, unseen := map[string]float32{}, map[string]float32{}
			for i, id := range catalog {
				all[id] = scores[i]
				if !slices.Contains(seen, id) {
					unseen[id] = scores[i]
				}
			}
			name := m.Name() + "/" + user
			a := w.get(t, "/v1/users/"+user+"/recommendations?k=10&model="+m.Name())
			if a.status != 200 || a.body["fallback"] != nil {
				t.Fatalf("%s: %d %s", name, a.status, a.raw)
			}
			checkTopK(t, name+" exclude seen", listOf(t, a), unseen, 10)
			a = w.get(t, "/v1/users/"+user+"/recommendations?k=25&exclude_seen=false&model="+m.Name())
			checkTopK(t, name+" with seen", listOf(t, a), all, 25)

			// Candidates: the first 30 catalog items, by POST.
			cands := catalog[:30]
			body, _ := json.Marshal(map[string]any{"k": 5, "model": m.Name(), "exclude_seen": false, "candidates": cands})
			a = do(t, "POST", w.url+"/v1/users/"+user+"/recommendations", w.token, "application/json", string(body))
			sub := map[string]float32{}
			for _, c := range cands {
				sub[c] = all[c]
			}
			checkTopK(t, name+" candidates", listOf(t, a), sub, 5)

			// Scores of pairs.
			var pairs []map[string]string
			for _, id := range catalog[:12] {
				pairs = append(pairs, map[string]string{"user": user, "item": id})
			}
			body, _ = json.Marshal(map[string]any{"model": m.Name(), "pairs": pairs})
			a = do(t, "POST", w.url+"/v1/scores", w.token, "application/json", string(body))
			var sr struct {
				Scores []struct {
					User, Item string
					Score      float32
				}
			}
			if err := json.Unmarshal([]byte(a.raw), &sr); err != nil || a.status != 200 || len(sr.Scores) != 12 {
				t.Fatalf("%s scores: %d %s", name, a.status, a.raw)
			}
			for i, s := range sr.Scores {
				if s.Item != catalog[i] || s.User != user || !near(s.Score, all[s.Item]) {
					t.Fatalf("%s scores[%d] = %+v, brute force %v for %s", name, i, s, all[catalog[i]], catalog[i])
				}
			}
		}
	}
	w.checkSimilar(t)
	w.checkItems(t)
	w.checkFallback(t)
	w.checkErrors(t)
	w.checkFreshness(t)
}

func cosine(a, b []float32) float32 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(d / math.Sqrt(na*nb))
}

// checkSimilar: by cf, cosine of the serving item vectors; by image, cosine of embeddings.
func (w *world) checkSimilar(t *testing.T) {
	ctx := context.Background()
	catalog, err := w.store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	embs, err := w.store.Vectors(ctx, updater.TableEmbeddings, catalog)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range w.ms {
		items := w.rows(t, m.Name()+":items", catalog, m.ItemDim())
		var global []float32
		if m.GlobalDim() > 0 {
			global = w.rows(t, m.Name()+":global", []string{"g"}, m.GlobalDim())[0]
		}
		vecs := make([][]float32, len(catalog))
		for i := range catalog {
			vecs[i] = make([]float32, m.ServeDim())
			m.ItemVector(vecs[i], items[i], global, embs[i])
		}
		for _, q := range []int{0, 3, 40} {
			want := map[string]float32{}
			for i, id := range catalog {
				if i != q {
					want[id] = cosine(vecs[q], vecs[i])
				}
			}
			a := w.get(t, "/v1/items/"+catalog[q]+"/similar?k=8&model="+m.Name())
			if a.status != 200 || a.body["by"] != "cf" {
				t.Fatalf("similar cf: %d %s", a.status, a.raw)
			}
			checkTopK(t, m.Name()+" similar cf "+catalog[q], listOf(t, a), want, 8)
		}
	}
	q := slices.Index(catalog, "i2")
	want := map[string]float32{}
	for i, id := range catalog {
		if i != q && embs[i] != nil {
			want[id] = cosine(embs[q], embs[i])
		}
	}
	a := w.get(t, "/v1/items/i2/similar?by=image&k=7")
	checkTopK(t, "similar image", listOf(t, a), want, 7)
	if a := w.get(t, "/v1/items/i1/similar?by=image"); a.status != 404 || a.code() != CodeNoEmbedding {
		t.Errorf("similar by image of an item without embedding: %d %s", a.status, a.raw)
	}
}

func (w *world) checkItems(t *testing.T) {
	ctx := context.Background()
	catalog, _ := w.store.Catalog(ctx, updater.CatalogItems)
	counts, err := w.store.Counters(ctx, updater.CounterItemEvents, catalog)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 17, len(catalog) - 1} {
		a := w.get(t, "/v1/items/"+catalog[i])
		emb, _ := w.store.Vectors(ctx, updater.TableEmbeddings, []string{catalog[i]})
		want := map[string]any{"id": catalog[i], "position": float64(i), "events": float64(counts[i]), "has_embedding": emb[0] != nil}
		if a.status != 200 || fmt.Sprint(a.body) != fmt.Sprint(want) {
			t.Errorf("item %s: %d %v, want %v", catalog[i], a.status, a.body, want)
		}
	}
}

// checkFallback: an unknown user gets the documented popularity blend, computed here from
// the stored counters and the catalog order.
func (w *world) checkFallback(t *testing.T) {
	ctx := context.Background()
	catalog, _ := w.store.Catalog(ctx, updater.CatalogItems)
	counts, _ := w.store.Counters(ctx, updater.CounterItemEvents, catalog)
	var maxEv int64
	for _, c := range counts {
		maxEv = max(maxEv, c)
	}
	fresh := ranking.DefaultOptions().FreshItems
	want := map[string]float32{}
	for i, id := range catalog {
		s := 0.7 * math.Log1p(float64(counts[i])) / math.Log1p(float64(maxEv))
		if age := len(catalog) - 1 - i; age < fresh {
			s += 0.3 * (1 - float64(age)/float64(fresh))
		}
		want[id] = float32(s)
	}
	a := w.get(t, "/v1/users/newcomer/recommendations?k=10")
	if a.status != 200 || a.body["fallback"] != "popular" {
		t.Fatalf("unknown user: %d %s", a.status, a.raw)
	}
	checkTopK(t, "fallback", listOf(t, a), want, 10)
	a = w.get(t, "/v1/users/newcomer/recommendations?k=3&candidates=i5,i100,i149,i60")
	sub := map[string]float32{"i5": want["i5"], "i100": want["i100"], "i149": want["i149"], "i60": want["i60"]}
	checkTopK(t, "fallback candidates", listOf(t, a), sub, 3)
}

// checkErrors runs the error paths against the real index.
func (w *world) checkErrors(t *testing.T) {
	big := `{"candidates":["` + strings.Repeat("i1\",\"", 300_000) + `i2"]}`
	for _, c := range []struct {
		method, path, token, body string
		status                    int
		code                      string
	}{
		{"GET", "/v1/users/u0/recommendations", "", "", 401, CodeUnauthorized},
		{"GET", "/v1/users/u0/recommendations", "wrong", "", 401, CodeUnauthorized},
		{"GET", "/v1/users/u0/recommendations?k=0", w.token, "", 400, CodeBadParameter},
		{"GET", "/v1/users/u0/recommendations?k=101", w.token, "", 400, CodeBadParameter},
		{"GET", "/v1/users/u0/recommendations?k=x", w.token, "", 400, CodeBadParameter},
		{"GET", "/v1/users/u0/recommendations?model=vbpr", w.token, "", 404, CodeUnknownModel},
		{"GET", "/v1/users/u0/recommendations?candidates=i1,nope", w.token, "", 404, CodeUnknownItem},
		{"POST", "/v1/users/u0/recommendations", w.token, `{"k":5,}`, 400, CodeBadJSON},
		{"POST", "/v1/users/u0/recommendations", w.token, big, 413, CodeBodyTooLarge},
		{"POST", "/v1/scores", w.token, `{"pairs":[{"user":"nobody","item":"i1"}]}`, 404, CodeUnknownUser},
		{"POST", "/v1/scores", w.token, `{"pairs":[{"user":"u0","item":"nope"}]}`, 404, CodeUnknownItem},
		{"GET", "/v1/items/nope", w.token, "", 404, CodeUnknownItem},
		{"GET", "/v1/items/nope/similar", w.token, "", 404, CodeUnknownItem},
		{"GET", "/v1/items/i1/similar?model=nope", w.token, "", 404, CodeUnknownModel},
	} {
		a := do(t, c.method, w.url+c.path, c.token, "", c.body)
		if a.status != c.status || a.code() != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, a.status, clip(a.raw), c.status, c.code)
		}
	}
}

// checkFreshness: a user who is new to the store gets the fallback, then, once the updater
// has flushed their events, their exact model ranking, without restarting anything.
func (w *world) checkFreshness(t *testing.T) {
	path := "/v1/users/late/recommendations?k=10&model=bpr"
	if a := w.get(t, path); a.body["fallback"] != "popular" {
		t.Fatalf("before any event: %s", a.raw)
	}
	evs := interactions(40, 1, 150, 9)
	for i := range evs {
		evs[i].User = "late"
	}
	w.apply(t, evs)
	a := w.get(t, path) // user rows are read per request: no sync wait
	if a.status != 200 || a.body["fallback"] != nil {
		t.Fatalf("after the flush: %d %s", a.status, a.raw)
	}
	// Item rows changed too; wait for the index to pick them up, then compare.
	m := w.ms[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		catalog, scores := w.bruteScores(t, m, "late")
		seen, _ := w.store.SetMembers(context.Background(), "seen", "late")
		want := map[string]float32{}
		for i, id := range catalog {
			if !slices.Contains(seen, id) {
				want[id] = scores[i]
			}
		}
		got := listOf(t, w.get(t, path))
		ok := len(got) == 10
		for _, g := range got {
			ok = ok && near(g.Score, want[g.Item])
		}
		if ok {
			checkTopK(t, "after the flush", got, want, 10)
			return
		}
		if time.Now().After(deadline) {
			checkTopK(t, "after the flush (5s)", got, want, 10)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeRealNotReadyAndTimeout: an index that has not loaded answers 503; a request that
// runs past the timeout answers 504.
func TestServeRealNotReadyAndTimeout(t *testing.T) {
	store := redisStore(t)
	idx, err := ranking.New(store, servableModels(), ranking.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(idx, Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, p := range []string{"/readyz", "/v1/users/u0/recommendations", "/v1/items/i1"} {
		if a := do(t, "GET", ts.URL+p, "", "", ""); a.status != 503 || a.code() != CodeNotReady {
			t.Errorf("%s before the first load: %d %s", p, a.status, a.raw)
		}
	}

	w := newWorld(t, Options{Timeout: time.Nanosecond})
	if a := w.get(t, "/v1/users/u0/recommendations"); a.status != 504 || a.code() != CodeTimeout {
		t.Errorf("past the timeout: %d %s", a.status, a.raw)
	}
}
