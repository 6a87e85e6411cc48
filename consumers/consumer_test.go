package consumers_test

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/visrec/visrec/consumers"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/producers"
	"github.com/visrec/visrec/updater"
)

type msg struct {
	key, value string
	reason     string // "" when the message is good
}

func interaction(user, item string) string {
	e := events.Interaction{Type: events.Click, User: user, Item: item, Timestamp: 1_700_000_000_000}
	return string(e.AppendJSON(nil))
}

func item(id string, emb []float32) string {
	it := events.Item{Item: id, Timestamp: 1_700_000_000_000, Model: "test", Embedding: emb}
	return string(it.AppendBinary(nil))
}

// badItem is a binary item event whose last embedding value is v (JSON cannot carry a NaN
// or an infinity).
func badItem(id string, v float32) string {
	b := []byte(item(id, []float32{1, 2, 3, 4}))
	binary.LittleEndian.PutUint32(b[len(b)-4-1-4:], math.Float32bits(v))
	return string(b)
}

// newTopics creates the events, items and dead-letter topics of a test run, one partition each.
func newTopics(ctx context.Context, t *testing.T, brokers []string, run string) (ev, it, dl string) {
	t.Helper()
	ev, it, dl = run+".events", run+".items", run+".dead"
	for _, tp := range []string{ev, it, dl} {
		if err := producers.EnsureTopic(ctx, brokers, tp, 1); err != nil {
			t.Fatal(err)
		}
	}
	return ev, it, dl
}

// newStore returns a Redis store in namespace run; drop deletes the namespace's keys and
// closes the client (call it before goleak's check).
func newStore(t *testing.T, addr, run string) (*featurestore.Redis, func()) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	sopts := featurestore.DefaultRedisOptions()
	sopts.Namespace = run
	store, err := featurestore.NewRedis(client, sopts)
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	return store, func() {
		keys, _ := client.Keys(context.Background(), "{"+run+"}:*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
		client.Close()
	}
}

// writeMsgs produces ms to topic.
func writeMsgs(ctx context.Context, t *testing.T, brokers []string, topic string, ms []msg) {
	t.Helper()
	sink := producers.NewKafkaSink(brokers, topic, 100)
	defer sink.Close()
	var kms []kafka.Message
	for _, m := range ms {
		kms = append(kms, kafka.Message{Key: []byte(m.key), Value: []byte(m.value)})
	}
	if err := sink.Write(ctx, kms); err != nil {
		t.Fatal(err)
	}
}

// TestBadInputIsDeadLettered sends every kind of bad message between good ones through the
// real Kafka into a consumer on the real Redis: each bad one reaches the dead-letter topic
// with its reason, the counters rise, every good one is applied, the offsets pass them all
// and no parameter is NaN.
func TestBadInputIsDeadLettered(t *testing.T) {
	defer goleak.VerifyNone(t)
	brokers := testenv.KafkaBrokers(t)
	addr := testenv.RedisAddr(t)
	run := testenv.Unique("dlq")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evTopic, itTopic, dlTopic := newTopics(ctx, t, brokers, run)
	evMsgs := []msg{
		{"u1", interaction("u1", "i1"), ""},
		{"u1", `{"type":"click","user":"u1",`, events.ReasonMalformed},
		{"u2", `{"type":"like","user":"u2","item":"i1","ts":1}`, events.ReasonUnknownType},
		{"u2", `{"type":"click","item":"i1","ts":1}`, events.ReasonMissing},
		{"u2", `{"type":"rating","user":"u2","item":"i1","ts":1,"value":1e39}`, events.ReasonNonFinite},
		{"u2", `{"type":"click","user":"u2","item":"i1","ts":1,"pad":"` + strings.Repeat("x", 5000) + `"}`, events.ReasonOversize},
		{"u3", interaction("u2", "i2"), consumers.ReasonKeyMismatch},
		{"u2", interaction("u2", "i2"), ""},
		{"u3", interaction("u3", "i1"), ""},
	}
	itMsgs := []msg{
		{"i9", item("i9", []float32{1, 2, 3, 4}), ""},
		{"i8", item("i8", []float32{1, 2, 3}), events.ReasonDimension},
		{"i7", badItem("i7", float32(math.NaN())), events.ReasonNonFinite},
	}
	writeMsgs(ctx, t, brokers, evTopic, evMsgs)
	writeMsgs(ctx, t, brokers, itTopic, itMsgs)

	store, drop := newStore(t, addr, run)
	defer drop()
	uopts := updater.DefaultOptions()
	uopts.FlushInterval = 20 * time.Millisecond
	upd, err := updater.New(store, uopts, models.NewBPR(models.DefaultBPROptions()))
	if err != nil {
		t.Fatal(err)
	}
	copts := consumers.DefaultOptions(brokers...)
	copts.Group, copts.EventsTopic, copts.ItemsTopic, copts.DeadLetterTopic = run, evTopic, itTopic, dlTopic
	copts.EmbeddingDim, copts.MaxMessageBytes = 4, 4096
	copts.SessionTimeout = 2 * time.Second
	reg := prometheus.NewRegistry()
	metrics := consumers.NewMetrics(reg)
	c, err := consumers.New(copts, upd, zaptest.NewLogger(t), metrics)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	total := int64(len(evMsgs) + len(itMsgs))
	for c.Committed() < total {
		select {
		case err := <-done:
			t.Fatalf("consumer stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("timed out with %d of %d messages committed", c.Committed(), total)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}

	// The dead-letter topic holds exactly the bad messages, in order, with their reasons.
	var want []msg
	for _, ms := range [][]msg{evMsgs, itMsgs} {
		for _, m := range ms {
			if m.reason != "" {
				want = append(want, m)
			}
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: dlTopic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	got := map[string]string{} // value -> reason
	for range want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range m.Headers {
			if h.Key == consumers.HeaderReason {
				got[string(m.Value)] = string(h.Value)
			}
		}
	}
	for _, m := range want {
		if got[m.value] != m.reason {
			t.Errorf("dead letter %.60q: reason %q, want %q", m.value, got[m.value], m.reason)
		}
		if v := testutil.ToFloat64(metrics.DeadLetters.WithLabelValues(m.reason)); v < 1 {
			t.Errorf("counter of reason %s is %v", m.reason, v)
		}
	}
	if v := testutil.ToFloat64(metrics.Applied.WithLabelValues(evTopic)); v != 3 {
		t.Errorf("%v interactions applied, want 3", v)
	}

	// Offsets pass every message; the good ones left finite state; the item is a candidate.
	for topic, n := range map[string]int64{evTopic: int64(len(evMsgs)), itTopic: int64(len(itMsgs))} {
		offs, err := store.Offsets(ctx, topic)
		if err != nil || offs[0] != n {
			t.Errorf("%s: stored offsets %v (%v), want %d", topic, offs, err, n)
		}
	}
	for _, table := range []string{"bpr:users", "bpr:items"} {
		err := store.ScanVectors(ctx, table, func(id string, v []float32) error {
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Errorf("%s %s holds %v", table, id, x)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cat, err := store.Catalog(ctx, updater.CatalogItems)
	slices.Sort(cat) // the two topics interleave in no set order
	if err != nil || strings.Join(cat, ",") != "i1,i2,i9" {
		t.Errorf("catalog %v (%v), want [i1 i2 i9]", cat, err)
	}
	emb, err := store.Vectors(ctx, updater.TableEmbeddings, []string{"i9", "i8", "i7"})
	if err != nil || len(emb[0]) != 4 || emb[1] != nil || emb[2] != nil {
		t.Errorf("embeddings %v (%v): want only i9's", emb, err)
	}
}
