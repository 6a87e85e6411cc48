package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

// TestItemLaneKillRestart: `visrec update --models vbpr` flushes item events in small
// transactions of their own beside the flushes of interactions (the item lane). Both
// streams arrive live while the updater is SIGKILLed three times at random moments and
// restarted: after each kill every topic's stored offset equals its applied counter, and at
// the end every event of both topics is applied exactly once (the applied counters and
// offsets equal what was produced, every item's merged interaction counter equals its count
// in the log), every new item is in the catalog once, with its embedding. (Under load it
// caught the consumer applying a later item event ahead of an earlier one held in a batch,
// which then looked replayed: skipped, its offset passed uncounted.)
func TestItemLaneKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	const n, nItems, kills = 60_000, 400, 3
	e := newE2E(t, 1)
	ns := testenv.Unique("lane")
	store := e.store(ns)
	produced := make(chan error, 2)
	go func() { produced <- e.produce(n, 44, 4000) }()
	go func() { // item events at about 30/s, alongside
		sink := producers.NewKafkaSink(e.brokers, e.items, 1)
		defer sink.Close()
		rng := rand.New(rand.NewPCG(5, 5))
		for i := range nItems {
			emb := make([]float32, 8)
			for k := range emb {
				emb[k] = float32(rng.ExpFloat64())
			}
			it := events.Item{Item: fmt.Sprintf("new-%d", i), Timestamp: 1, Model: "test", Embedding: emb}
			if err := sink.Write(context.Background(), []kafka.Message{{Key: []byte(it.Item), Value: it.AppendBinary(nil)}}); err != nil {
				produced <- err
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
		produced <- nil
	}()
	start := func() *proc {
		return e.start(ns, ns, "--models", "vbpr", "--factors", "16", "--visual-factors", "4", "--feature-dim", "8",
			"--flush-events", "1500")
	}
	appliedItems := func() int64 {
		c, err := store.Counters(context.Background(), "applied:"+e.items, []string{"0"})
		if err != nil {
			t.Fatal(err)
		}
		return c[0]
	}
	rng := rand.New(rand.NewPCG(8, 8))
	var logs []string
	for k := range kills {
		before := appliedItems()
		p := start()
		p.killWhileWorking(t, rng, func() bool { return appliedItems() != before }) // an item flush landed
		logs = append(logs, p.stderr.String())
		t.Logf("SIGKILL %d at %d interactions and %d item events applied", k+1, e.applied(store, 1), appliedItems())
		// Whatever the moment, each topic's stored offset counts exactly the events applied.
		// (A commit the killed process sent may still land: read until the counter holds.)
		for topic, applied := range map[string]func() int64{e.events: func() int64 { return e.applied(store, 1) }, e.items: appliedItems} {
			for {
				a := applied()
				offs, err := store.Offsets(context.Background(), topic)
				if err != nil {
					t.Fatal(err)
				}
				if applied() != a {
					continue
				}
				if offs[0] != a {
					t.Fatalf("after SIGKILL %d: %s stored offset %v, %d events applied; the updaters' logs:\n%s", k+1, topic, offs, a, strings.Join(logs, "\n---\n"))
				}
				break
			}
		}
	}
	for range 2 {
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
	}
	p := start()
	e.waitApplied(store, 1, n, p)
	deadline := time.Now().Add(time.Minute)
	for appliedItems() != nItems && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.kill(t, syscall.SIGTERM)

	ctx := context.Background()
	if got := appliedItems(); got != nItems {
		offs, _ := store.Offsets(ctx, e.items)
		cat, _ := store.Catalog(ctx, updater.CatalogItems)
		nNew := 0
		for _, id := range cat {
			if len(id) > 4 && id[:4] == "new-" {
				nNew++
			}
		}
		t.Fatalf("applied %d item events, produced %d (stored offset %v, %d new items in the catalog); the last updater's log:\n%s", got, nItems, offs, nNew, p.stderr)
	}
	for _, topic := range []string{e.events, e.items} {
		offs, err := store.Offsets(ctx, topic)
		want := map[string]int64{e.events: n, e.items: nItems}[topic]
		if err != nil || offs[0] != want {
			t.Fatalf("stored offset of %s %v (%v), want %d", topic, offs, err, want)
		}
	}
	cat, err := store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, id := range cat {
		if seen[id] {
			t.Fatalf("%s is in the catalog twice", id)
		}
		seen[id] = true
	}
	ids := make([]string, nItems)
	for i := range ids {
		ids[i] = "new-" + strconv.Itoa(i)
		if !seen[ids[i]] {
			t.Fatalf("%s is not in the catalog", ids[i])
		}
	}
	embs, err := store.Vectors(ctx, updater.TableEmbeddings, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range embs {
		if len(v) != 8 {
			t.Fatalf("%s has an embedding of %d values, want 8", ids[i], len(v))
		}
	}
	wantItemCounts(t, store, itemCounts(t, n, 44))
}
