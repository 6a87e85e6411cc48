package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/internal/testenv"
)

// TestBenchFreshnessSmoke runs visrec bench freshness briefly at a modest rate on real Kafka
// and Redis: every item event produced under load must be ranked by the serving index and
// in the catalog, and every probe (crafted to beat the probe user's list) must be listed.
func TestBenchFreshnessSmoke(t *testing.T) {
	redisAddr, brokers := testenv.RedisAddr(t), testenv.KafkaBrokers(t)
	c, err := parseFreshness(zap.NewNop(), []string{"--rate", "500", "--warmup", "5000", "--duration", "3s",
		"--probe-every", "250ms", "--partitions", "2",
		"--brokers", strings.Join(brokers, ","), "--redis", redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runFreshness(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("consumed %.0f/s; stored %d, ranked %d (never %d), probes listed %d (missed %d)",
		res.consumed, len(res.stored), len(res.scoreable), res.lost, len(res.listed), res.missed)
	if res.missed > 0 || res.lost > 0 {
		t.Fatalf("%d probes never listed, %d item events never ranked", res.missed, res.lost)
	}
	if len(res.lookups) < 100 { // 3 s at one read per 5 ms: 600
		t.Fatalf("only %d list reads timed", len(res.lookups))
	}
	if len(res.listed) < 8 { // 3 s at one probe per 250 ms: 12
		t.Fatalf("only %d probes listed", len(res.listed))
	}
	if len(res.scoreable) < len(res.listed) || len(res.stored) != len(res.scoreable) {
		t.Fatalf("item events: %d stored, %d ranked, %d probes listed", len(res.stored), len(res.scoreable), len(res.listed))
	}
	if res.consumed < 250 {
		t.Fatalf("background load consumed at %.0f/s, want about 500/s", res.consumed)
	}
	for _, d := range res.listed {
		if d > probeTimeout {
			t.Fatalf("a probe listed after %v", d)
		}
	}
}
