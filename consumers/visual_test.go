package consumers_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// TestBadEmbeddingsLeaveVisualModelUntouched runs online VBPR behind a consumer on the real
// Kafka and Redis. After a first batch of good interactions and item events has been
// committed, item events with a NaN, an infinity or the wrong dimension (the consumer
// accepts any dimension here, so the updater's own check against the model's feature
// dimension is what refuses it) go to the dead-letter topic, the offsets pass them, and
// every stored row (users, items, the shared [E; β'] row, embeddings, catalog) is
// bit-identical to what it was.
func TestBadEmbeddingsLeaveVisualModelUntouched(t *testing.T) {
	defer goleak.VerifyNone(t)
	brokers := testenv.KafkaBrokers(t)
	addr := testenv.RedisAddr(t)
	run := testenv.Unique("visdlq")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evTopic, itTopic, dlTopic := newTopics(ctx, t, brokers, run)
	write := func(topic string, ms []msg) { writeMsgs(ctx, t, brokers, topic, ms) }
	good := []msg{
		{"i1", item("i1", []float32{1, 0, 2, 0.5}), ""},
		{"i2", item("i2", []float32{0, 3, 1, 1}), ""},
		{"i3", item("i3", []float32{2, 2, 0, 1}), ""},
	}
	goodEv := []msg{
		{"u1", interaction("u1", "i1"), ""}, {"u1", interaction("u1", "i3"), ""},
		{"u2", interaction("u2", "i2"), ""}, {"u3", interaction("u3", "i1"), ""},
	}
	bad := []msg{
		{"i4", badItem("i4", float32(math.NaN())), events.ReasonNonFinite},
		{"i1", badItem("i1", float32(math.Inf(1))), events.ReasonNonFinite},
		{"i2", item("i2", []float32{1, 2, 3}), events.ReasonDimension},
		{"i5", item("i5", []float32{1, 2, 3, 4, 5}), events.ReasonDimension},
	}

	store, drop := newStore(t, addr, run)
	defer drop()
	mo := models.DefaultOnlineVBPROptions()
	mo.Factors, mo.VisualFactors, mo.FeatureDim = 4, 2, 4
	uopts := updater.DefaultOptions()
	uopts.FlushInterval = 20 * time.Millisecond
	upd, err := updater.New(store, uopts, models.NewOnlineVBPR(mo))
	if err != nil {
		t.Fatal(err)
	}
	copts := consumers.DefaultOptions(brokers...)
	copts.Group, copts.EventsTopic, copts.ItemsTopic, copts.DeadLetterTopic = run, evTopic, itTopic, dlTopic
	copts.EmbeddingDim, copts.MaxMessageBytes = 0, 4096 // any dimension passes the decoder
	copts.SessionTimeout = 2 * time.Second
	c, err := consumers.New(copts, upd, zaptest.NewLogger(t), consumers.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	waitCommitted := func(n int64) {
		t.Helper()
		for c.Committed() < n {
			select {
			case err := <-done:
				t.Fatalf("consumer stopped: %v", err)
			case <-ctx.Done():
				t.Fatalf("timed out with %d of %d messages committed", c.Committed(), n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	write(itTopic, good)
	waitCommitted(int64(len(good))) // the features first, so that the interactions move E
	write(evTopic, goodEv)
	waitCommitted(int64(len(good) + len(goodEv)))

	state := func() map[string]map[string][]float32 {
		out := map[string]map[string][]float32{}
		for _, tb := range []string{"vbpr:users", "vbpr:items", "vbpr:global", updater.TableEmbeddings} {
			rows := map[string][]float32{}
			if err := store.ScanVectors(ctx, tb, func(id string, v []float32) error { rows[id] = v; return nil }); err != nil {
				t.Fatal(err)
			}
			out[tb] = rows
		}
		return out
	}
	before := state()
	if len(before["vbpr:global"]) != 1 || len(before[updater.TableEmbeddings]) != 3 || len(before["vbpr:users"]) != 3 {
		t.Fatalf("after the good messages the store holds %d global rows, %d embeddings, %d users",
			len(before["vbpr:global"]), len(before[updater.TableEmbeddings]), len(before["vbpr:users"]))
	}
	catBefore, err := store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		t.Fatal(err)
	}

	write(itTopic, bad)
	waitCommitted(int64(len(good) + len(goodEv) + len(bad)))
	stop()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}

	after := state()
	for tb, rows := range before {
		if len(after[tb]) != len(rows) {
			t.Errorf("%s: %d rows, had %d", tb, len(after[tb]), len(rows))
		}
		for id, v := range rows {
			w := after[tb][id]
			if len(w) != len(v) {
				t.Errorf("%s %s: %d values, had %d", tb, id, len(w), len(v))
				continue
			}
			for k := range v {
				if math.Float32bits(w[k]) != math.Float32bits(v[k]) {
					t.Errorf("%s %s[%d] = %v, had %v", tb, id, k, w[k], v[k])
					break
				}
			}
		}
	}
	if cat, err := store.Catalog(ctx, updater.CatalogItems); err != nil || !slices.Equal(cat, catBefore) {
		t.Errorf("catalog %v (%v), had %v", cat, err, catBefore)
	}
	if offs, err := store.Offsets(ctx, itTopic); err != nil || offs[0] != int64(len(good)+len(bad)) {
		t.Errorf("items offsets %v (%v), want %d", offs, err, len(good)+len(bad))
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: dlTopic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	for _, m := range bad {
		got, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reason := ""
		for _, h := range got.Headers {
			if h.Key == consumers.HeaderReason {
				reason = string(h.Value)
			}
		}
		if string(got.Value) != m.value || reason != m.reason {
			t.Errorf("dead letter %.40q reason %q, want %.40q reason %q", got.Value, reason, m.value, m.reason)
		}
	}
}
