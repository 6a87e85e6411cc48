// Package testenv finds the real Redis and Kafka that integration tests run against.
//
// The addresses come from VISREC_REDIS_ADDR and VISREC_KAFKA_BROKERS (defaults
// 127.0.0.1:6379 and 127.0.0.1:9092; `deploy/services.sh up` starts both). A service that
// does not answer fails the test when CI is set and skips it otherwise.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAddr returns the address of a Redis that answers PING.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := env("VISREC_REDIS_ADDR", "127.0.0.1:6379")
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unavailable(t, fmt.Sprintf("redis at %s: %v", addr, err))
	}
	return addr
}

// KafkaBrokers returns the bootstrap brokers of a Kafka whose first broker accepts
// connections.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(env("VISREC_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	conn, err := net.DialTimeout("tcp", brokers[0], 3*time.Second)
	if err != nil {
		unavailable(t, fmt.Sprintf("kafka at %s: %v", brokers[0], err))
	}
	conn.Close()
	return brokers
}

// Unique returns a name unique to this test run, for topics, groups and namespaces.
func Unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: a missing service is a failure; run deploy/services.sh up)", why)
	}
	t.Skipf("%s; run deploy/services.sh up to include this test", why)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
