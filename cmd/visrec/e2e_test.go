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
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
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
	if err := consumers.EnsureTopics(ctx, nil, e.brokers[0], partitions, 1, e.events, e.items, e.dead); err != nil {
		t.Fatal(err)
	}
	return e
}

// produce writes n synthetic interactions keyed by user and returns each item's count.
func (e *e2e) produce(n int, seed uint64) map[string]int64 {
	e.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: e.events, Balancer: &kafka.Murmur2Balancer{},
		BatchSize: 5000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	zipf := rand.NewZipf(rng, 1.1, 4, 2999)
	counts := make(map[string]int64)
	types := []events.Type{events.View, events.View, events.View, events.Click, events.Click, events.Purchase}
	batch := make([]kafka.Message, 0, 5000)
	ts := int64(1_700_000_000_000)
	for i := 0; i < n; i++ {
		ev := events.Interaction{
			Type: types[rng.IntN(len(types))],
			User: "u" + strconv.Itoa(rng.IntN(4000)),
			Item: "i" + strconv.FormatUint(zipf.Uint64(), 10),
			ID:   strconv.Itoa(i), Timestamp: ts + int64(i),
		}
		counts[ev.Item]++
		batch = append(batch, kafka.Message{Key: []byte(ev.User), Value: ev.AppendJSON(nil)})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				e.t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return counts
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
		"--session-timeout", "6s", "--models", "bpr,mf-implicit"}, extra...)
	p := &proc{cmd: exec.Command(visrecBin, args...), stderr: new(bytes.Buffer), done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
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

// TestKillRestartEffectivelyOnce replays 200,000 events, SIGKILLs the updater at random
// moments while it works, restarts it each time, and requires the final parameters to equal
// those of an uninterrupted run (which also flushes on another cadence) within 1e-5.
func TestKillRestartEffectivelyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	const n, kills = 200_000, 5
	e := newE2E(t, 1)
	e.produce(n, 42)

	ref := testenv.Unique("ref")
	refStore := e.store(ref)
	t0 := time.Now()
	p := e.start(ref, ref, "--flush-events", "5000")
	e.waitApplied(refStore, 1, n, p)
	p.kill(t, syscall.SIGTERM)
	t.Logf("uninterrupted run: %d events in %v, start-up included", n, time.Since(t0).Round(time.Millisecond))

	ns := testenv.Unique("kill")
	store := e.store(ns)
	// Kill moments spread over the stream: at seeded random applied counts, each plus a
	// random 0-100 ms, so that kills land in fetching, stepping and flushing alike.
	rng := rand.New(rand.NewPCG(7, 7))
	targets := make([]int64, kills)
	for k := range targets {
		targets[k] = int64(k)*n/kills + rng.Int64N(n/kills/2)
	}
	for k, target := range targets {
		p := e.start(ns, ns, "--flush-events", "1500")
		for e.applied(store, 1) < target {
			select {
			case err := <-p.done:
				t.Fatalf("visrec update exited (%v):\n%s", err, p.stderr)
			case <-time.After(2 * time.Millisecond):
			}
		}
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		p.kill(t, syscall.SIGKILL)
		got := e.applied(store, 1)
		if got >= n {
			t.Fatalf("run finished before kill %d; the test needs a longer log", k+1)
		}
		t.Logf("SIGKILL %d at %d applied events", k+1, got)
	}
	p = e.start(ns, ns, "--flush-events", "1500")
	e.waitApplied(store, 1, n, p)
	p.kill(t, syscall.SIGTERM)

	if got := e.applied(store, 1); got != n {
		t.Fatalf("applied %d events, produced %d", got, n)
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
// merged by both) equal what was produced.
func TestTwoUpdatersOneGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	const n, parts = 200_000, 4
	e := newE2E(t, parts)
	counts := e.produce(n, 43)
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
	items := rows(t, store, "bpr:items")
	if len(items) != len(counts) {
		t.Errorf("%d item rows, %d items produced", len(items), len(counts))
	}
}
