package serving

import (
	"context"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/toplists"
)

// TestServeRealLists runs the list fast path against the real index and Redis: lists are
// written in the documented format (docs/lists.md, toplists.AppendList: a Redis string
// holding one JSON document of the items and their write time), with items and scores that
// exact ranking would not give, so that the source of every answer shows in its items as
// well as in its "source".
func TestServeRealLists(t *testing.T) {
	w := newWorld(t, Options{})
	ns := w.store.(*featurestore.Redis).Namespace()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { client.Close() })
	const maxAge = 2 * time.Second
	s, err := New(w.idx, Options{Lists: NewRedisLists(client, ns), ListMaxAge: maxAge}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	ctx := context.Background()
	write := func(model, user string, l []scoredItem, at time.Time) {
		t.Helper()
		entries := make([]toplists.Entry, len(l))
		for i, it := range l {
			entries[i] = toplists.Entry{Item: it.Item, Score: it.Score}
		}
		if err := client.Set(ctx, toplists.ListKey(ns, model, user), toplists.AppendList(nil, at, entries), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) (answer, []scoredItem) {
		t.Helper()
		a := do(t, "GET", ts.URL+path, "", "", "")
		if a.status != 200 {
			t.Fatalf("GET %s: %d %s", path, a.status, a.raw)
		}
		return a, listOf(t, a)
	}
	// What the exact ranking answers (the plain server of the same index).
	ranked := func(path string) []scoredItem {
		t.Helper()
		a := w.get(t, path)
		if a.body["source"] != "ranked" {
			t.Fatalf("plain server GET %s: source %v, want ranked", path, a.body["source"])
		}
		return listOf(t, a)
	}
	list := []scoredItem{{"i140", 9.5}, {"i141", 8.25}, {"i142", 7}, {"i143", 6}, {"i144", 5.125}}
	write("bpr", "u1", list, time.Now())

	// Fresh and long enough: the list's first k items, its scores, its age.
	for _, k := range []int{1, 3, 5} {
		path := "/v1/users/u1/recommendations?k=" + strconv.Itoa(k)
		a, got := get(path)
		if a.body["source"] != "list" || !slices.Equal(got, list[:k]) {
			t.Fatalf("k=%d of a fresh list: source %v, items %v; want list, %v", k, a.body["source"], got, list[:k])
		}
		if age, ok := a.body["list_age_ms"].(float64); !ok || age < 0 || age > float64(maxAge.Milliseconds()) {
			t.Fatalf("k=%d: list_age_ms %v, want 0..%d", k, a.body["list_age_ms"], maxAge.Milliseconds())
		}
	}
	// The POST form with the defaults spelled out is the same request.
	a := do(t, "POST", ts.URL+"/v1/users/u1/recommendations", "", "application/json", `{"k": 2, "exclude_seen": true}`)
	if got := listOf(t, a); a.body["source"] != "list" || !slices.Equal(got, list[:2]) {
		t.Fatalf("POST k=2: source %v, items %v", a.body["source"], got)
	}

	// Everything else is ranked exactly, as the plain server ranks it.
	for _, path := range []string{
		"/v1/users/u1/recommendations?k=6",                          // longer than the list
		"/v1/users/u1/recommendations?k=3&candidates=i140,i1,i2,i3", // candidates never use lists
		"/v1/users/u1/recommendations?k=3&candidates=i140,i141,i142",
		"/v1/users/u1/recommendations?k=3&exclude_seen=false", // the list excludes seen items
		"/v1/users/u1/recommendations?k=3&model=mf",           // no list for mf
		"/v1/users/u2/recommendations?k=3",                    // no list for u2
	} {
		a, got := get(path)
		if want := ranked(path); a.body["source"] != "ranked" || !slices.Equal(got, want) {
			t.Fatalf("GET %s: source %v, items %v; want ranked %v", path, a.body["source"], got, want)
		}
	}
	// A stale list is ranked; rewritten now, it is served again.
	write("bpr", "u1", list, time.Now().Add(-2*maxAge))
	path := "/v1/users/u1/recommendations?k=3"
	if a, got := get(path); a.body["source"] != "ranked" || !slices.Equal(got, ranked(path)) {
		t.Fatalf("stale list: source %v, items %v", a.body["source"], got)
	}
	write("bpr", "u1", list[:3], time.Now())
	if a, got := get(path); a.body["source"] != "list" || !slices.Equal(got, list[:3]) {
		t.Fatalf("rewritten list: source %v, items %v", a.body["source"], got)
	}
	// A list without its write time cannot be judged fresh, nor can one that is not a list
	// document: ranked, and the read's error names the user.
	for _, doc := range []string{`{"items":[{"item":"i140","score":9.5},{"item":"i141","score":8.25},{"item":"i142","score":7}]}`, "not json"} {
		if err := client.Set(ctx, toplists.ListKey(ns, "bpr", "u1"), doc, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if a, got := get(path); a.body["source"] != "ranked" || !slices.Equal(got, ranked(path)) {
			t.Fatalf("list document %s: source %v, items %v", doc, a.body["source"], got)
		}
		if _, _, ok, err := NewRedisLists(client, ns).TopList(ctx, "bpr", "u1", 3); ok || err == nil || !strings.Contains(err.Error(), `"u1"`) {
			t.Fatalf("TopList of list document %s: ok %v, err %v; want an error naming u1", doc, ok, err)
		}
	}
	// A missing list is no error.
	if _, _, ok, err := NewRedisLists(client, ns).TopList(ctx, "bpr", "u2", 3); ok || err != nil {
		t.Fatalf("TopList of a missing list: ok %v, err %v", ok, err)
	}
	// An unknown user without a list gets the fallback, marked as such.
	if a, _ := get("/v1/users/nobody/recommendations?k=3"); a.body["source"] != "popular" || a.body["fallback"] != "popular" {
		t.Fatalf("unknown user: source %v, fallback %v", a.body["source"], a.body["fallback"])
	}
}
