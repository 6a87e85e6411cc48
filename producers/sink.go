package producers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Sink is where a Replayer delivers messages.
//
// Write delivers msgs in order and returns once they are acknowledged (for Kafka: by all
// in-sync replicas). On error, some of the messages may have been delivered. Write must not
// keep msgs or their byte slices after it returns: the replayer reuses them for the next
// batch. It is called by one goroutine at a time.
type Sink interface {
	Write(ctx context.Context, msgs []kafka.Message) error
}

// KafkaSink writes to one topic through a kafka-go Writer, synchronously: keyed messages
// are partitioned by murmur2 of the key like the Java client and kcat, and a Write returns
// once all in-sync replicas have acknowledged every message. A partition's batch leaves
// when it holds batchSize messages or 1 ms after it opened, so each Write's messages go out
// at once. It does not create topics (see EnsureTopic).
//
// Messages carry no timestamp, so the broker stamps them with the time of writing: a log's
// own event times (MovieLens starts in 1996) would make the topic's retention delete them
// at once. The event time travels in the value.
type KafkaSink struct {
	// Writer may be tuned before the first Write (compression, timeouts, attempts).
	Writer    *kafka.Writer
	transport *kafka.Transport
}

// NewKafkaSink returns a sink writing to topic on brokers. Close it to release its
// connections.
func NewKafkaSink(brokers []string, topic string, batchSize int) *KafkaSink {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	tr := &kafka.Transport{ClientID: "visrec-replay"}
	return &KafkaSink{
		transport: tr,
		Writer: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     &kafka.Murmur2Balancer{},
			BatchSize:    batchSize,
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafka.RequireAll,
			Async:        false,
			// A transport of its own: kafka-go's Writer.Close leaves the shared default
			// transport's connections open.
			Transport: tr,
		},
	}
}

// Write implements Sink.
func (s *KafkaSink) Write(ctx context.Context, msgs []kafka.Message) error {
	return s.Writer.WriteMessages(ctx, msgs...)
}

// Close flushes and closes the writer and its connections.
func (s *KafkaSink) Close() error {
	err := s.Writer.Close()
	s.transport.CloseIdleConnections()
	return err
}

// EnsureTopic creates topic with the given number of partitions and replication factor 1
// unless it exists, then waits until every partition has a leader. An existing topic is
// left as it is, whatever its partition count. See EnsureTopicReplicated.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	return EnsureTopicReplicated(ctx, brokers, topic, partitions, 1)
}

// EnsureTopicReplicated is EnsureTopic with a replication factor. It asks the controller
// (found through the first broker that answers; with KRaft any broker forwards the request)
// with kafka-go's Conn.CreateTopics; "topic already exists" counts as success.
func EnsureTopicReplicated(ctx context.Context, brokers []string, topic string, partitions, replicationFactor int) error {
	if partitions < 1 {
		return fmt.Errorf("ensure topic %s: %d partitions, want at least 1", topic, partitions)
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second}
	conn, err := dialAny(ctx, d, brokers)
	if err != nil {
		return fmt.Errorf("ensure topic %s: %w", topic, err)
	}
	defer conn.Close()
	target := conn
	if ctrl, err := conn.Controller(); err == nil && ctrl.Host != "" {
		addr := net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port))
		if cc, err := d.DialContext(ctx, "tcp", addr); err == nil {
			defer cc.Close()
			target = cc
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		target.SetDeadline(dl) //nolint:errcheck // a failed deadline shows up as the request's error
	}
	err = target.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: replicationFactor})
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s (%d partitions, replication %d): %w", topic, partitions, replicationFactor, err)
	}
	return waitForLeaders(ctx, conn, topic)
}

func dialAny(ctx context.Context, d *kafka.Dialer, brokers []string) (*kafka.Conn, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no Kafka brokers given")
	}
	var errs []error
	for _, b := range brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no Kafka broker answers: %w", errors.Join(errs...))
}

// waitForLeaders polls the topic's metadata until it lists partitions that all have a
// leader, so that the first write does not race the topic's creation; it gives up after
// 30 s.
func waitForLeaders(ctx context.Context, conn *kafka.Conn, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		conn.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // see the read's error
		parts, err := conn.ReadPartitions(topic)
		if err == nil {
			ready := len(parts) > 0
			for _, p := range parts {
				if p.Leader.Host == "" {
					ready = false
				}
			}
			if ready {
				return nil
			}
			err = fmt.Errorf("%d partitions, not all with a leader yet", len(parts))
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topic %s: %w (last: %v)", topic, ctx.Err(), last)
		case <-t.C:
		}
	}
}
