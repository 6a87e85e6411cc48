package main

// End-to-end tests of `visrec update` as a process against the real Kafka and Redis: the
// effectively-once contract under SIGKILL, and two updaters sharing one consumer group.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

var visrecBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "visrec-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	visrecBin = filepath.Join(dir, "visrec")
	if out, err := exec.Command("go", "build", "-o", visrecBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build visrec: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// e2e is one test's topics, namespace and services.
type e2e struct {
	t                   *testing.T
	brokers             []string
	redisAddr           string
	events, items, dead string
}

func newE2E(t *testing.T, partitions int) *e2e {
	e := &e2e{t: t, brokers: testenv.KafkaBrokers(t), redisAddr: testenv.RedisAddr(t)}
	run := testenv.Unique("e2e")
	e.events, e.items, e.dead = run+".events", run+".items", run+".dead"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{e.events, e.items, e.dead} {
		if err := producers.EnsureTopic(ctx, e.brokers, topic, partitions); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// synthetic is the test stream: seeded, with power-law popularity and new items arriving.
func synthetic(t *testing.T, n int64, seed uint64) *producers.Synthetic {
	cfg := producers.DefaultSyntheticConfig()
	cfg.Users, cfg.Items, cfg.Events, cfg.Seed = 4000, 3000, n, seed
	g, err := producers.NewSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// produce replays the test stream into the events topic, at rate events/s (0: at once).
func (e *e2e) produce(n int64, seed uint64, rate float64) error {
	sink := producers.NewKafkaSink(e.brokers, e.events, 2000)
	defer sink.Close()
	opts := producers.DefaultReplayOptions()
	opts.Rate = rate
	r, err := producers.NewReplayer(sink, opts)
	if err != nil {
		return err
	}
	_, err = r.Run(context.Background(), synthetic(e.t, n, seed))
	return err
}

// itemCounts counts each item's interactions in the test stream.
func itemCounts(t *testing.T, n int64, seed uint64) map[string]int64 {
	counts := make(map[string]int64)
	g := synthetic(t, n, seed)
	for ev, ok := g.Next(); ok; ev, ok = g.Next() {
		counts[ev.Item]++
	}
	return counts
}

// wantItemCounts checks every item's merged interaction counter against counts, its
// number of interactions in the log (each event counted once).
func wantItemCounts(t *testing.T, store featurestore.Store, counts map[string]int64) {
	t.Helper()
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	got, err := store.Counters(context.Background(), updater.CounterItemEvents, ids)
	if err != nil {
		t.Fatal(err)
	}
	for k, id := range ids {
		if got[k] != counts[id] {
			t.Errorf("item %s: %d interactions merged, %d produced", id, got[k], counts[id])
		}
	}
}

// proc is one running `visrec update`.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func (e *e2e) start(ns, group string, extra ...string) *proc {
	e.t.Helper()
	args := append([]string{"update", "--brokers", e.brokers[0], "--redis", e.redisAddr, "--namespace", ns,
		"--group", group, "--events-topic", e.events, "--items-topic", e.items, "--deadletter-topic", e.dead,
		"--session-timeout", "2s", "--models", "bpr,mf-implicit"}, extra...)
	p := &proc{cmd: exec.Command(visrecBin, args...), stderr: new(bytes.Buffer), done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
}

// killWhileWorking SIGKILLs p once it has committed something (committed reports it), a
// random 0.1-2 s later.
func (p *proc) killWhileWorking(t *testing.T, rng *rand.Rand, committed func() bool) {
	t.Helper()
	for !committed() {
		select {
		case err := <-p.done:
			t.Fatalf("visrec update exited (%v):\n%s", err, p.stderr)
		case <-time.After(2 * time.Millisecond):
		}
	}
	time.Sleep(100*time.Millisecond + time.Duration(rng.IntN(1900))*time.Millisecond)
	p.kill(t, syscall.SIGKILL)
}

func (p *proc) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("visrec update did not exit on %v:\n%s", sig, p.stderr)
	}
}

func (e *e2e) store(ns string) *featurestore.Redis {
	e.t.Helper()
	client := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	opts := featurestore.DefaultRedisOptions()
	opts.Namespace = ns
	s, err := featurestore.NewRedis(client, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := client.Keys(ctx, "{"+ns+"}:*").Result()
		if len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		s.Close()
	})
	return s
}

// redoParts counts the parts of commits that are waiting in namespace ns's redo hash.
func (e *e2e) redoParts(ns string) int64 {
	client := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer client.Close()
	ctx := context.Background()
	ids, err := client.SMembers(ctx, "{"+ns+"}:redo:pending").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	for _, id := range ids {
		n += client.HLen(ctx, "{"+ns+"}:redo:"+id).Val()
	}
	return n
}

// applied is the number of events of the events topic whose effects are in the store.
func (e *e2e) applied(s featurestore.Store, partitions int) int64 {
	e.t.Helper()
	ids := make([]string, partitions)
	for p := range ids {
		ids[p] = strconv.Itoa(p)
	}
	c, err := s.Counters(context.Background(), "applied:"+e.events, ids)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// waitApplied waits until want events are applied, failing if a process exits first.
func (e *e2e) waitApplied(s featurestore.Store, partitions int, want int64, ps ...*proc) {
	e.t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		n := e.applied(s, partitions)
		if n == want {
			return
		}
		if n > want {
			e.t.Fatalf("applied %d events, more than the %d produced", n, want)
		}
		for _, p := range ps {
			select {
			case err := <-p.done:
				e.t.Fatalf("visrec update exited early (%v):\n%s", err, p.stderr)
			default:
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("timed out with %d of %d events applied", e.applied(s, partitions), want)
}

func rows(t *testing.T, s featurestore.Store, table string) map[string][]float32 {
	t.Helper()
	out := make(map[string][]float32)
	err := s.ScanVectors(context.Background(), table, func(id string, v []float32) error {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s row %q is not finite", table, id)
			}
		}
		out[id] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxDiff(t *testing.T, table string, a, b map[string][]float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d rows vs %d rows", table, len(a), len(b))
	}
	worst := 0.0
	for id, ra := range a {
		rb, ok := b[id]
		if !ok || len(ra) != len(rb) {
			t.Fatalf("%s: row %q missing or of another width in the second run", table, id)
		}
		for k := range ra {
			worst = math.Max(worst, math.Abs(float64(ra[k])-float64(rb[k])))
		}
	}
	return worst
}

// TestKillRestartEffectivelyOnce streams 200,000 events live, SIGKILLs the updater at random
// moments while it works, restarts it each time, and requires the final parameters to equal
// those of an uninterrupted run over the same log (which also flushes on another cadence,
// and commits each flush in one script) within 1e-5. The killed updater commits its flushes
// in parts of 100 row writes, so that kills land between parts too (the restart's Recover
// applies the rest).
func TestKillRestartEffectivelyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	const n, kills = 200_000, 5
	e := newE2E(t, 1)
	// The stream arrives live, at 4,000 events/s, while the updater is killed and restarted.
	produced := make(chan error, 1)
	go func() { produced <- e.produce(n, 42, 4000) }()

	ns := testenv.Unique("kill")
	store := e.store(ns)
	rng := rand.New(rand.NewPCG(7, 7))
	for k := 0; k < kills; k++ {
		before := e.applied(store, 1)
		p := e.start(ns, ns, "--flush-events", "1500", "--commit-part", "100")
		p.killWhileWorking(t, rng, func() bool { return e.applied(store, 1) != before })
		got := e.applied(store, 1)
		if got >= n {
			t.Fatalf("the stream was consumed before kill %d; the test needs a longer or slower stream", k+1)
		}
		t.Logf("SIGKILL %d at %d applied events, %d parts of a commit left to Recover", k+1, got, e.redoParts(ns))
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	p := e.start(ns, ns, "--flush-events", "1500", "--commit-part", "100")
	e.waitApplied(store, 1, n, p)
	p.kill(t, syscall.SIGTERM)

	// The uninterrupted run over the same log, with another flush cadence.
	ref := testenv.Unique("ref")
	refStore := e.store(ref)
	t0 := time.Now()
	p = e.start(ref, ref, "--flush-events", "5000", "--commit-part", "-1")
	e.waitApplied(refStore, 1, n, p)
	p.kill(t, syscall.SIGTERM)
	t.Logf("uninterrupted run: %d events in %v, start-up included", n, time.Since(t0).Round(time.Millisecond))

	if got := e.applied(store, 1); got != n {
		t.Fatalf("applied %d events, produced %d", got, n)
	}
	if left := e.redoParts(ns); left != 0 {
		t.Fatalf("%d parts of commits never applied", left)
	}
	offs, err := store.Offsets(context.Background(), e.events)
	if err != nil || offs[0] != n {
		t.Fatalf("stored offset %v (%v), want %d", offs, err, n)
	}
	for _, table := range []string{"bpr:users", "bpr:items", "mf:users", "mf:items", "mf:global"} {
		d := maxDiff(t, table, rows(t, refStore, table), rows(t, store, table))
		t.Logf("%s: max |difference| after %d kills = %g", table, kills, d)
		if d > 1e-5 {
			t.Errorf("%s differs from the uninterrupted run by %g > 1e-5", table, d)
		}
	}
}

var committedRe = regexp.MustCompile(`"committed": (\d+)`)

// TestTwoUpdatersOneGroup runs two updaters in one group over 4 partitions, SIGKILLs one of
// them once and restarts it, and checks that no event was lost or applied twice: the applied
// count, every partition's offset and every item's interaction counter (shared state,
// merged by both) equal what was produced. The stream arrives live (20 s at 10,000/s), so
// that work is left for the restarted updater whatever the timing of its rejoin.
func TestTwoUpdatersOneGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	const n, parts = 200_000, 4
	e := newE2E(t, parts)
	produced := make(chan error, 1)
	go func() { produced <- e.produce(n, 43, 10_000) }()
	counts := itemCounts(t, n, 43)
	ns := testenv.Unique("pair")
	store := e.store(ns)

	a := e.start(ns, ns, "--flush-events", "2000")
	b := e.start(ns, ns, "--flush-events", "2000")
	deadline := time.Now().Add(2 * time.Minute)
	for e.applied(store, parts) < n/4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events applied after 2 minutes:\n%s\n%s", e.applied(store, parts), a.stderr, b.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.kill(t, syscall.SIGKILL)
	t.Logf("SIGKILL of the second updater at %d applied events", e.applied(store, parts))
	b = e.start(ns, ns, "--flush-events", "2000")
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitApplied(store, parts, n, a, b)
	a.kill(t, syscall.SIGTERM)
	b.kill(t, syscall.SIGTERM)

	for i, p := range []*proc{a, b} {
		m := committedRe.FindStringSubmatch(p.stderr.String())
		if m == nil || m[1] == "0" {
			t.Errorf("updater %d committed nothing; the group did not share the work:\n%s", i, p.stderr)
		}
	}
	if got := e.applied(store, parts); got != n {
		t.Fatalf("applied %d events, produced %d", got, n)
	}
	offs, err := store.Offsets(context.Background(), e.events)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range offs {
		total += o
	}
	if len(offs) != parts || total != n {
		t.Fatalf("stored offsets %v sum to %d over %d partitions, want %d over %d", offs, total, len(offs), n, parts)
	}
	wantItemCounts(t, store, counts)
	items := rows(t, store, "bpr:items")
	if len(items) != len(counts) {
		t.Errorf("%d item rows, %d items produced", len(items), len(counts))
	}
}

// TestRetrainThenUpdateFromSnapshot: `visrec retrain` writes a BPR snapshot of MovieLens, and
// `visrec update --from-snapshot` merges it into Redis before consuming: every user and item
// row in the store equals the snapshot's, bit for bit.
func TestRetrainThenUpdateFromSnapshot(t *testing.T) {
	data := "../../../shared/data/movielens-posters/ratings.csv"
	if _, err := os.Stat(data); err != nil && os.Getenv("CI") == "" {
		t.Skip("MovieLens data missing:", err)
	}
	e := newE2E(t, 1)
	path := filepath.Join(t.TempDir(), "bpr.snap")
	if out, err := exec.Command(visrecBin, "retrain", "--models", "bpr", "--epochs", "2", "--data", data, "--out", path).CombinedOutput(); err != nil {
		t.Fatalf("retrain: %v\n%s", err, out)
	}
	snap, err := readSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Unique("snap")
	store := e.store(ns)
	p := e.start(ns, ns, "--from-snapshot", path)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.stderr.String(), "snapshot merged") {
		if time.Now().After(deadline) {
			t.Fatalf("no merge after a minute:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill(t, syscall.SIGTERM)
	for _, tb := range snap.Tables {
		got := rows(t, store, "bpr:"+tb.Name)
		if len(got) != tb.Rows {
			t.Fatalf("%s: %d rows in Redis, %d in the snapshot", tb.Name, len(got), tb.Rows)
		}
		for r, id := range tb.IDs {
			for c, x := range got[id] {
				if x != tb.Data[r*tb.Cols+c] {
					t.Fatalf("%s %s[%d]: %v in Redis, %v in the snapshot", tb.Name, id, c, x, tb.Data[r*tb.Cols+c])
				}
			}
		}
	}
}

// TestNewItemReachesRedisFast runs `visrec update --models bpr,vbpr` while interactions
// stream in at 5,000 events/s, produces item events one at a time and measures how long each
// takes from being produced to having its embedding and catalog entry in Redis (the
// ItemFlushInterval rule: a flush is due 15 ms after an item event, whatever else is
// pending). Interactions with the new items then move the shared [E; β'] row, which lands
// in Redis. The bound is loose (the test machine is shared); the log gives the figures.
func TestNewItemReachesRedisFast(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	e := newE2E(t, 1)
	ns := testenv.Unique("fresh")
	store := e.store(ns)
	const background = 30_000
	p := e.start(ns, ns, "--models", "bpr,vbpr", "--factors", "16", "--visual-factors", "4", "--feature-dim", "8")
	defer p.kill(t, syscall.SIGTERM)
	produced := make(chan error, 1)
	go func() { produced <- e.produce(background, 5, 5000) }()
	for e.applied(store, 1) == 0 {
		select {
		case err := <-p.done:
			t.Fatalf("visrec update exited (%v):\n%s", err, p.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	sink := producers.NewKafkaSink(e.brokers, e.items, 1)
	defer sink.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	var lat []time.Duration
	for n := 0; n < 20; n++ {
		id := fmt.Sprintf("new-%d", n)
		emb := make([]float32, 8)
		for k := range emb {
			emb[k] = float32(rng.ExpFloat64())
		}
		it := events.Item{Item: id, Timestamp: time.Now().UnixMilli(), Model: "test", Embedding: emb}
		t0 := time.Now()
		if err := sink.Write(ctx, []kafka.Message{{Key: []byte(id), Value: it.AppendBinary(nil)}}); err != nil {
			t.Fatal(err)
		}
		for {
			v, err := store.Vectors(ctx, updater.TableEmbeddings, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if v[0] != nil {
				break
			}
			if time.Since(t0) > 10*time.Second {
				t.Fatalf("item %s not in Redis after 10 s:\n%s", id, p.stderr)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
	}
	cat, err := store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, id := range cat {
		in[id] = true
	}
	for n := 0; n < 20; n++ {
		if !in[fmt.Sprintf("new-%d", n)] {
			t.Errorf("new-%d is not in the catalog", n)
		}
	}
	slices.Sort(lat)
	t.Logf("item event produced → embedding and catalog entry in Redis, %d items, interactions arriving at 5,000/s: p50 %v, max %v",
		len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	evSink := producers.NewKafkaSink(e.brokers, e.events, 100)
	defer evSink.Close()
	var msgs []kafka.Message
	for n := 0; n < 100; n++ {
		ev := events.Interaction{Type: events.Click, User: fmt.Sprintf("u%d", n%7), Item: fmt.Sprintf("new-%d", n%20), Timestamp: 1}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.User), Value: ev.AppendJSON(nil)})
	}
	if err := evSink.Write(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(store, 1, background+100, p)
	if g := rows(t, store, "vbpr:global"); len(g["g"]) != 5*8 {
		t.Errorf("vbpr:global holds %d values, want (K'+1)·F = 40", len(g["g"]))
	}
	if lat[len(lat)/2] > 2*time.Second {
		t.Errorf("median time to the store %v > 2 s", lat[len(lat)/2])
	}
}
