package main

import (
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

// rebaseStream is a seeded stream over 800 users and 400 items in which every item occurs
// in the first 400 events: a snapshot of any longer prefix knows the whole catalog, so the
// negatives that a replay draws (from the catalog as it is at the reload) are the ones a
// live run drew (docs/snapshots.md, exactness).
func rebaseStream(n int, seed uint64) []events.Interaction {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]events.Interaction, n)
	for i := range out {
		e := events.Interaction{Type: events.Type(1 + rng.IntN(3)), User: "u" + strconv.Itoa(rng.IntN(800)),
			Item: "i" + strconv.Itoa(rng.IntN(400)), Timestamp: int64(1_700_000_000_000 + i)}
		if i < 400 {
			e.Item = "i" + strconv.Itoa(i)
		}
		out[i] = e
	}
	return out
}

// produceEvents writes evs to topic (keyed by user), rate events/s (0: at once).
func produceEvents(t *testing.T, brokers []string, topic string, evs []events.Interaction, rate float64) error {
	sink := producers.NewKafkaSink(brokers, topic, 500)
	defer sink.Close()
	const batch = 250
	start := time.Now()
	for lo := 0; lo < len(evs); lo += batch {
		msgs := make([]kafka.Message, 0, batch)
		for i := lo; i < min(lo+batch, len(evs)); i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(evs[i].User), Value: evs[i].AppendJSON(nil)})
		}
		if err := sink.Write(context.Background(), msgs); err != nil {
			return err
		}
		if rate > 0 {
			if ahead := time.Duration(float64(lo+batch)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	return nil
}

// waitModelOffsets waits until model's own offsets on topic equal want on every partition.
func waitModelOffsets(t *testing.T, s featurestore.Store, topic, model string, want map[int]int64, p *proc) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, err := s.Offsets(context.Background(), updater.ModelTopic(topic, model))
		if err != nil {
			t.Fatal(err)
		}
		same := len(got) == len(want)
		for k, v := range want {
			same = same && got[k] == v
		}
		if same {
			return
		}
		select {
		case err := <-p.done:
			t.Fatalf("visrec update exited early (%v):\n%s", err, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's own offsets %v, want %v:\n%s", model, got, want, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logInstall logs the installation's summary line (epoch, covered offsets, rows, commits,
// duration).
func logInstall(t *testing.T, out []byte) {
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "snapshot installed") {
			t.Log(line[strings.Index(line, "snapshot installed"):])
		}
	}
}

// TestRebaseOntoRetrainedSnapshot: `visrec update --models bpr` consumes a stream on one
// partition; `visrec retrain --from-kafka` trains bpr on what it has consumed; `visrec
// snapshot publish --install` installs it (in commits of 10 rows) while the updater keeps
// consuming at 4,000 events/s. At the end the stored bpr rows equal, bit for bit, an
// independent computation: a fresh updater on a memory store that Restores the snapshot and
// applies the events after its offsets, with the same seed and options.
func TestRebaseOntoRetrainedSnapshot(t *testing.T) {
	const n1, n2 = 12_000, 12_000
	e := newE2E(t, 1)
	evs := rebaseStream(n1+n2, 9)
	if err := produceEvents(t, e.brokers, e.events, evs[:n1], 0); err != nil {
		t.Fatal(err)
	}
	ns := testenv.Unique("rebase")
	store := e.store(ns)
	p := e.start(ns, ns, "--models", "bpr")
	t.Cleanup(func() { _ = p.cmd.Process.Kill() }) // a failed test's updater; a no-op after kill
	e.waitApplied(store, 1, n1, p)

	path := filepath.Join(t.TempDir(), "bpr.snap")
	common := []string{"--redis", e.redisAddr, "--namespace", ns, "--events-topic", e.events, "--items-topic", e.items}
	args := append([]string{"retrain", "--from-kafka", "--models", "bpr", "--epochs", "2", "--brokers", e.brokers[0], "--out", path}, common...)
	if out, err := exec.Command(visrecBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("retrain: %v\n%s", err, out)
	}
	snap, err := readSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Meta["offset:"+e.events+":0"] != strconv.Itoa(n1) {
		t.Fatalf("snapshot offsets %v, want %s:0=%d", snap.Meta, e.events, n1)
	}

	produced := make(chan error, 1)
	go func() { produced <- produceEvents(t, e.brokers, e.events, evs[n1:], 4000) }()
	time.Sleep(time.Second) // the install lands while events arrive
	// Commits of 10 rows: the freeze lasts long enough for flushes to land in it.
	args = append([]string{"snapshot", "publish", path, "--install", "--chunk", "10"}, common...)
	out, err := exec.Command(visrecBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("publish --install: %v\n%s", err, out)
	}
	logInstall(t, out)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitApplied(store, 1, n1+n2, p)
	waitModelOffsets(t, store, e.events, "bpr", map[int]int64{0: n1 + n2}, p)
	p.kill(t, syscall.SIGTERM)
	t.Logf("the updater was fenced %d times", strings.Count(p.stderr.String(), "fenced:"))
	if ep, err := store.Offsets(context.Background(), updater.EpochTopic("bpr")); err != nil || len(ep) != 1 || ep[0] != 2 {
		t.Fatalf("bpr's epoch %v (%v), want 2", ep, err)
	}

	// The independent computation.
	var mf modelFlags
	fs := flag.NewFlagSet("ref", flag.ContinueOnError)
	mf.register(fs)
	if err := fs.Parse([]string{"--models", "bpr"}); err != nil {
		t.Fatal(err)
	}
	ms, uopts, err := mf.build()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := updater.New(featurestore.NewMemory(), uopts, ms...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for i := n1; i < n1+n2; i++ {
		if err := ref.Apply(context.Background(), &evs[i], updater.Position{Topic: e.events, Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	users, items, global, err := ref.Rows("bpr")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string][]float32{"users": users, "items": items}
	if global != nil {
		want["global"] = map[string][]float32{"g": global}
	}
	for name, w := range want {
		got := rows(t, store, "bpr:"+name)
		for id := range got {
			if _, ok := w[id]; !ok {
				t.Fatalf("bpr:%s: row %q in Redis, not in the reference", name, id)
			}
		}
		diffs := 0
		for id, wr := range w {
			gr, ok := got[id]
			if !ok {
				gr = make([]float32, len(wr)) // a shared row never written is zero
			}
			for k := range wr {
				if k >= len(gr) || math.Float32bits(gr[k]) != math.Float32bits(wr[k]) {
					if diffs++; diffs <= 3 {
						t.Errorf("bpr:%s %s[%d]: %v in Redis, %v in the reference", name, id, k, gr, wr)
					}
					break
				}
			}
		}
		if diffs > 0 {
			t.Fatalf("bpr:%s: %d of %d rows differ from the reference", name, diffs, len(w))
		}
	}
	t.Logf("bpr rebased onto a snapshot covering %d events while %d more arrived: %d users, %d items bit-identical to the reference",
		n1, n2, len(users), len(items))
}

// TestRebaseManyPartitions: the same over 4 partitions with bpr and mf in one updater. The
// interleaving of partitions makes shared rows order-dependent, so the check is the
// bookkeeping: every event applied once (applied counters, per-item counters), bpr's own
// offsets caught up with the base on every partition, and mf untouched by the rebase (its
// epoch never moved, it has no own offsets).
func TestRebaseManyPartitions(t *testing.T) {
	const parts, n1, n2 = 4, 10_000, 10_000
	e := newE2E(t, parts)
	evs := rebaseStream(n1+n2, 10)
	if err := produceEvents(t, e.brokers, e.events, evs[:n1], 0); err != nil {
		t.Fatal(err)
	}
	ns := testenv.Unique("rebase4")
	store := e.store(ns)
	p := e.start(ns, ns, "--models", "bpr,mf-implicit")
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	e.waitApplied(store, parts, n1, p)

	path := filepath.Join(t.TempDir(), "bpr.snap")
	common := []string{"--redis", e.redisAddr, "--namespace", ns, "--events-topic", e.events, "--items-topic", e.items}
	args := append([]string{"retrain", "--from-kafka", "--models", "bpr", "--epochs", "1", "--brokers", e.brokers[0], "--out", path}, common...)
	if out, err := exec.Command(visrecBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("retrain: %v\n%s", err, out)
	}
	produced := make(chan error, 1)
	go func() { produced <- produceEvents(t, e.brokers, e.events, evs[n1:], 4000) }()
	time.Sleep(time.Second)
	args = append([]string{"snapshot", "publish", path, "--install", "--chunk", "300"}, common...)
	out, err := exec.Command(visrecBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("publish --install: %v\n%s", err, out)
	}
	logInstall(t, out)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	e.waitApplied(store, parts, n1+n2, p)
	ctx := context.Background()
	base, err := store.Offsets(ctx, e.events)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range base {
		total += o
	}
	if total != n1+n2 {
		t.Fatalf("base offsets %v sum to %d, %d produced", base, total, n1+n2)
	}
	waitModelOffsets(t, store, e.events, "bpr", base, p)
	p.kill(t, syscall.SIGTERM)

	counts, ids := map[string]int64{}, []string{}
	for i := range evs {
		if counts[evs[i].Item] == 0 {
			ids = append(ids, evs[i].Item)
		}
		counts[evs[i].Item]++
	}
	got, err := store.Counters(ctx, updater.CounterItemEvents, ids)
	if err != nil {
		t.Fatal(err)
	}
	for k, id := range ids {
		if got[k] != counts[id] {
			t.Errorf("item %s: %d interactions counted, %d produced", id, got[k], counts[id])
		}
	}
	if ep, err := store.Offsets(ctx, updater.EpochTopic("bpr")); err != nil || len(ep) != 1 || ep[0] != 2 {
		t.Errorf("bpr's epoch %v (%v), want 2", ep, err)
	}
	// mf-implicit runs under the model name "mf".
	if ep, err := store.Offsets(ctx, updater.EpochTopic("mf")); err != nil || len(ep) != 1 || ep[0] != 0 {
		t.Errorf("mf's epoch %v (%v), want 0 (never installed)", ep, err)
	}
	if own, err := store.Offsets(ctx, updater.ModelTopic(e.events, "mf")); err != nil || len(own) != 0 {
		t.Errorf("mf has own offsets %v (%v), want none", own, err)
	}
	if users := rows(t, store, "mf:users"); len(users) != 800 {
		t.Errorf("%d mf user rows, want 800", len(users))
	}
}
