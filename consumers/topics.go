package consumers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopics creates the topics that do not exist yet with the given partition count
// (replication factor 1 on a single broker, else 3 capped by the cluster size is the
// operator's business: pass replication explicitly). Existing topics are left as they are.
func EnsureTopics(ctx context.Context, dialer *kafka.Dialer, broker string, partitions, replication int, topics ...string) error {
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	conn, err := dialer.DialContext(ctx, "tcp", broker)
	if err != nil {
		return fmt.Errorf("consumers: dial %s: %w", broker, err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("consumers: find the controller: %w", err)
	}
	cc, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("consumers: dial the controller: %w", err)
	}
	defer cc.Close()
	for _, t := range topics {
		err := cc.CreateTopics(kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replication})
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("consumers: create topic %s: %w", t, err)
		}
	}
	// Creation is asynchronous: wait until the broker's metadata lists every topic, so that
	// a producer started next does not fail with an unknown topic.
	for {
		parts, err := conn.ReadPartitions(topics...)
		if err == nil && len(parts) > 0 && allListed(parts, topics) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumers: topics %v not visible yet: %w", topics, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allListed(parts []kafka.Partition, topics []string) bool {
	seen := make(map[string]bool)
	for _, p := range parts {
		seen[p.Topic] = true
	}
	for _, t := range topics {
		if !seen[t] {
			return false
		}
	}
	return true
}
