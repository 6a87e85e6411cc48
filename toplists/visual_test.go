package toplists_test

import (
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

// TestNewItemEntersWhileGlobalChanges: online VBPR's global row (E, β') changes at every
// flush of the real updater, so the index applies a new global row every GlobalRefresh.
// A new item whose embedding is crafted to score far above the exact top-K of some users
// (computed from the stored parameters, again at every check: the model moves the new item
// too) must still be in those lists within a second (by scoring it alone), not wait for a
// refresh of every user: the budget here (10 full refreshes/s for 30 users) would take 3 s,
// and Debounce and GlobalSweep are far away.
func TestNewItemEntersWhileGlobalChanges(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ns := testenv.Unique("toplists-vbpr")
	client := redis.NewClient(&redis.Options{Addr: addr})
	store, err := featurestore.NewRedis(redis.NewClient(&redis.Options{Addr: addr}), featurestore.RedisOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = store.Close()
		ctx := context.Background()
		if keys, err := client.Keys(ctx, "{"+ns+"}:*").Result(); err == nil && len(keys) > 0 {
			_ = client.Del(ctx, keys...).Err()
		}
		_ = client.Close()
	})
	const nUsers, nItems, dim, k = 30, 1000, 16, 8
	vo := models.DefaultOnlineVBPROptions()
	vo.Factors, vo.VisualFactors, vo.FeatureDim, vo.FeatureScale = 8, 4, dim, 0.25
	m := models.NewOnlineVBPR(vo)
	u, err := updater.New(store, updater.DefaultOptions(), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := u.Load(ctx, topic); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var off int64
	emb := func() []float32 {
		f := make([]float32, dim)
		for j := range f {
			f[j] = float32(rng.NormFloat64())
		}
		return f
	}
	applyItem := func(id string, f []float32) {
		if err := u.ApplyItem(&events.Item{Item: id, Timestamp: 1, Model: "test", Embedding: f}, updater.Position{Topic: topic, Offset: off}); err != nil {
			t.Error(err)
		}
		off++
	}
	burst := func(n int) error {
		for range n {
			ev := events.Interaction{Type: events.Click, User: "u" + strconv.Itoa(rng.IntN(nUsers)),
				Item: "i" + strconv.Itoa(rng.IntN(nItems)), Timestamp: off + 1}
			if err := u.Apply(ctx, &ev, updater.Position{Topic: topic, Offset: off}); err != nil {
				return err
			}
			off++
		}
		return u.Flush(ctx)
	}
	for i := range nItems {
		applyItem("i"+strconv.Itoa(i), emb())
	}
	if err := burst(1500); err != nil {
		t.Fatal(err)
	}

	index, err := ranking.New(store, []models.Servable{m}, ranking.Options{SyncInterval: 10 * time.Millisecond, GlobalRefresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mat, err := toplists.New(client, store, index, toplists.Options{Namespace: ns, K: k, Debounce: time.Hour,
		PollInterval: 10 * time.Millisecond, RefreshesPerSecond: 10})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 3)
	go func() { done <- index.Run(rctx) }()
	go func() { done <- mat.Run(rctx) }()
	// The stream: a burst and a flush every 20 ms, each moving the global row; the new item
	// goes through the same goroutine (the updater is single-threaded).
	newItem := make(chan []float32)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rctx.Done():
				done <- nil
				return
			case f := <-newItem:
				applyItem("new", f)
			case <-tick.C:
			}
			if err := burst(20); err != nil && !errors.Is(err, context.Canceled) {
				done <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		}
	})
	eventually(t, 20*time.Second, "every user listed", func() error {
		for i := range nUsers {
			if l, err := toplists.ReadList(ctx, client, toplists.ListKey(ns, "vbpr", "u"+strconv.Itoa(i))); err != nil || len(l.Items) < k {
				return errors.New("backfill not done")
			}
		}
		return nil
	})
	globalRow := func() []float32 {
		g, err := store.Vectors(ctx, "vbpr:global", []string{"g"})
		if err != nil {
			t.Fatal(err)
		}
		return g[0]
	}
	g0 := globalRow()
	time.Sleep(200 * time.Millisecond) // the global row keeps moving
	g := globalRow()
	if slices.Equal(g, g0) {
		t.Fatal("the global row did not change: the test would prove nothing")
	}

	// Craft the item for u0: a new item's score is Score(user, zero row, g) + v_u·f, so
	// f along v_u0 with a large norm puts it far above u0's list, and above or below the
	// lists of the others depending on their v_u.
	ids := make([]string, nUsers)
	for i := range ids {
		ids[i] = "u" + strconv.Itoa(i)
	}
	zero := make([]float32, m.ItemDim())
	rows, err := store.Vectors(ctx, "vbpr:users", ids)
	if err != nil {
		t.Fatal(err)
	}
	// d: u0's own part of the feature weights (v_u0 less the users' mean, which β' and
	// the shared E dominate), so that the item is far above some lists and below others.
	vs := make([][]float32, nUsers)
	mean := make([]float64, dim)
	for i := range vs {
		vs[i] = make([]float32, dim)
		m.FeatureWeights(vs[i], rows[i], g)
		for j, x := range vs[i] {
			mean[j] += float64(x) / nUsers
		}
	}
	var n2 float64
	d := make([]float64, dim)
	for j := range d {
		d[j] = float64(vs[0][j]) - mean[j]
		n2 += d[j] * d[j]
	}
	f := make([]float32, dim)
	for j := range f {
		f[j] = float32(50 * d[j] / math.Sqrt(n2))
	}
	// classify judges every user from the stored parameters as they are now (the model's
	// own ScoreFeatures, seen items left out), independent of ranking and toplists: in when
	// the new item scores far above the user's best other item, out when far below its
	// K-th. Before the item is applied its row is zeros and its features f; after, both are
	// read from the store: the model moves the new item at once (it is drawn as a negative,
	// and its large features amplify every step of E), so a judgement made before it
	// arrives may be stale by the time the index serves it.
	classify := func() (in, out []string) {
		g := globalRow()
		rows, err := store.Vectors(ctx, "vbpr:users", ids)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := store.Catalog(ctx, updater.CatalogItems)
		if err != nil {
			t.Fatal(err)
		}
		irows, err := store.Vectors(ctx, "vbpr:items", cat)
		if err != nil {
			t.Fatal(err)
		}
		embs, err := store.Vectors(ctx, updater.TableEmbeddings, cat)
		if err != nil {
			t.Fatal(err)
		}
		nrow, nf := zero, f
		for c, it := range cat {
			if it == "new" && irows[c] != nil {
				nrow = irows[c]
			}
			if it == "new" && embs[c] != nil {
				nf = embs[c]
			}
		}
		for i, id := range ids {
			seen, err := store.SetMembers(ctx, "seen", id)
			if err != nil {
				t.Fatal(err)
			}
			var scores []float64
			for c, it := range cat {
				if it == "new" || slices.Contains(seen, it) || embs[c] == nil {
					continue
				}
				r := irows[c]
				if r == nil {
					r = zero
				}
				scores = append(scores, float64(m.ScoreFeatures(rows[i], r, g, embs[c])))
			}
			slices.Sort(scores)
			slices.Reverse(scores)
			s := float64(m.ScoreFeatures(rows[i], nrow, g, nf))
			// The margin: 2, plus a fifth of the features' part of the score, since the
			// index serves a global row up to GlobalRefresh old and E's drift moves that part.
			margin := 2 + 0.2*math.Abs(s-float64(m.ScoreFeatures(rows[i], nrow, g, nil)))
			switch {
			case s > scores[0]+margin: // far above its best: must enter whatever drift follows
				in = append(in, id)
			case s < scores[k-1]-margin:
				out = append(out, id)
			}
		}
		return in, out
	}
	if in, _ := classify(); len(in) == 0 {
		t.Fatal("the crafted item is far above no list: the test would prove nothing")
	}
	before := mat.Stats(ctx)
	newItem <- f
	var in, out []string
	took := eventually(t, time.Second, "the new item in every list it is far above", func() error {
		in, out = classify()
		if len(in) == 0 {
			return errors.New("the new item is far above no list now")
		}
		for _, id := range in {
			if ok, err := listed(ctx, client, toplists.ListKey(ns, "vbpr", id), "new"); !ok || err != nil {
				return fmt.Errorf("%s: not listed (%v)", id, err)
			}
		}
		return nil
	})
	// Users whose full refresh is pending (their rows change at every flush here) have
	// the best known list: K real items with current scores, whose K-th is at most the
	// exact K-th. So an item of the exact top-K always enters, but one below it may too
	// until the refresh: the far-below users are counted, not required to stay out.
	extra := 0
	for _, id := range out {
		if ok, _ := listed(ctx, client, toplists.ListKey(ns, "vbpr", id), "new"); ok {
			extra++
		}
	}
	after := mat.Stats(ctx)
	if after.Sweeps != before.Sweeps {
		t.Errorf("a sweep ran (%d -> %d) with GlobalSweep at its default", before.Sweeps, after.Sweeps)
	}
	t.Logf("the new item entered the %d lists it beats %v after it was applied (and %d of the %d it scores far below, awaiting their refresh); full refreshes meanwhile %d",
		len(in), took.Round(time.Millisecond), extra, len(out), after.Refreshes-before.Refreshes)
}
