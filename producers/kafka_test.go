package producers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/visrec/visrec/events"
)

// kafkaBrokers returns the brokers of the real Kafka at VISREC_KAFKA_BROKERS (default
// 127.0.0.1:9092). Without one the test fails when CI is set and is skipped otherwise.
func kafkaBrokers(t *testing.T) []string {
	t.Helper()
	list := os.Getenv("VISREC_KAFKA_BROKERS")
	if list == "" {
		list = "127.0.0.1:9092"
	}
	brokers := strings.Split(list, ",")
	c, err := net.DialTimeout("tcp", brokers[0], 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Kafka is not reachable at %s: %v", list, err)
		}
		t.Skipf("Kafka is not reachable at %s (start it with deploy/services.sh up): %v", list, err)
	}
	c.Close()
	return brokers
}

// TestReplayKafka replays 10,000 synthetic events into a fresh topic of 4 partitions on a
// real broker and reads them back.
func TestReplayKafka(t *testing.T) {
	brokers := kafkaBrokers(t)
	topic := replayRoundTrip(t, brokers)
	deleteTopics(t, brokers, topic)
}

// TestReplayKafkaInProcess runs the same round trip against kfake, the in-process broker
// of the embedded demo, so the Kafka path is exercised even without services.
func TestReplayKafkaInProcess(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	replayRoundTrip(t, c.ListenAddrs())
}

// replayRoundTrip replays into a fresh topic, reads it back and returns the topic's name.
func replayRoundTrip(t *testing.T, brokers []string) string {
	const (
		n          = 10_000
		partitions = 4
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := fmt.Sprintf("visrec.test.replay.%d.%d", time.Now().UnixNano(), rand.Uint32())
	for range 2 { // the second call finds the topic and must succeed
		if err := EnsureTopic(ctx, brokers, topic, partitions); err != nil {
			t.Fatal(err)
		}
	}
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events, c.Users = n, 300 })
	want, err := Collect(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	sink := NewKafkaSink(brokers, topic, 2000)
	r, err := NewReplayer(sink, ReplayOptions{BatchSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx, NewSliceSource(want))
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replayed %v", sum)
	if sum.Events != n {
		t.Fatalf("replayed %d, want %d", sum.Events, n)
	}

	// Expected per-user sequences, in source order.
	perUser := map[string][]events.Interaction{}
	for _, e := range want {
		perUser[e.User] = append(perUser[e.User], e)
	}
	got := map[string][]events.Interaction{}
	partOf := map[string]int{}
	total := 0
	for p := range partitions {
		msgs := readPartition(ctx, t, brokers, topic, p)
		total += len(msgs)
		for _, m := range msgs {
			e, err := events.DecodeInteraction(m.Value)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, m.Offset, err)
			}
			if string(m.Key) != e.User {
				t.Fatalf("key %q for user %q", m.Key, e.User)
			}
			if q, ok := partOf[e.User]; ok && q != p {
				t.Fatalf("user %s in partitions %d and %d", e.User, q, p)
			}
			partOf[e.User] = p
			got[e.User] = append(got[e.User], e)
		}
		t.Logf("partition %d: %d messages", p, len(msgs))
	}
	if total != n {
		t.Fatalf("read back %d messages, want %d", total, n)
	}
	for u, seq := range perUser {
		g := got[u]
		if len(g) != len(seq) {
			t.Fatalf("user %s: %d events back, want %d", u, len(g), len(seq))
		}
		for i := range seq {
			if g[i] != seq[i] || i > 0 && g[i].Timestamp < g[i-1].Timestamp {
				t.Fatalf("user %s event %d: %+v, want %+v in timestamp order", u, i, g[i], seq[i])
			}
		}
	}
	return topic
}

// readPartition reads every message of one partition with a kafka-go Reader.
func readPartition(ctx context.Context, t *testing.T, brokers []string, topic string, p int) []kafka.Message {
	t.Helper()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
	if err != nil {
		t.Fatal(err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond, MaxBytes: 10 << 20,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for int64(len(out)) < last-first {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("partition %d after %d of %d messages: %v", p, len(out), last-first, err)
		}
		out = append(out, m)
	}
	return out
}

// deleteTopics removes test topics; a failure is only logged.
func deleteTopics(t *testing.T, brokers []string, topics ...string) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics})
	if err == nil {
		for tp, e := range resp.Errors {
			if e != nil {
				err = fmt.Errorf("%s: %w", tp, e)
			}
		}
	}
	if err != nil {
		t.Logf("delete test topics: %v", err)
	}
}
