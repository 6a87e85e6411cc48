package featurestore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/featurestore/storetest"
)

// redisAddr is where the tests find Redis: $VISREC_REDIS_ADDR, default 127.0.0.1:6379.
func redisAddr() string {
	if a := os.Getenv("VISREC_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

var (
	nsSeq     atomic.Int64
	probeOnce sync.Once
	probeErr  error
)

// requireRedis skips the test when no Redis answers at redisAddr (and fails it when $CI is
// set). It pings once per test binary.
func requireRedis(tb testing.TB) {
	tb.Helper()
	probeOnce.Do(func() {
		c := redis.NewClient(&redis.Options{Addr: redisAddr(), MaxRetries: -1, DialTimeout: 2 * time.Second})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		probeErr = c.Ping(ctx).Err()
	})
	if probeErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("redis at %s: %v (CI is set, so this fails instead of skipping)", redisAddr(), probeErr)
	}
	tb.Skipf("redis at %s unreachable (%v); start redis-server or set VISREC_REDIS_ADDR", redisAddr(), probeErr)
}

// newRedisClient connects to the test Redis.
func newRedisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	requireRedis(tb)
	return redis.NewClient(&redis.Options{Addr: redisAddr()})
}

// newRedisStore returns a store on a namespace of its own, which cleanup deletes. admin is a
// second client for raw reads; it outlives the store.
func newRedisStore(tb testing.TB) (s *featurestore.Redis, admin *redis.Client, ns string) {
	return newRedisStorePart(tb, 0)
}

// newRedisStorePart is newRedisStore with RedisOptions.CommitPart part.
func newRedisStorePart(tb testing.TB, part int) (s *featurestore.Redis, admin *redis.Client, ns string) {
	tb.Helper()
	admin = newRedisClient(tb)
	ns = fmt.Sprintf("visrectest-%d-%d", time.Now().UnixNano(), nsSeq.Add(1))
	s, err := featurestore.NewRedis(newRedisClient(tb), featurestore.RedisOptions{Namespace: ns, CommitPart: part})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = s.Close()
		if err := deleteNamespace(admin, ns); err != nil {
			tb.Errorf("cleanup of namespace %s: %v", ns, err)
		}
		_ = admin.Close()
	})
	return s, admin, ns
}

// deleteNamespace deletes every key {ns}:*.
func deleteNamespace(c *redis.Client, ns string) error {
	ctx := context.Background()
	pattern := "\\{" + globEscape(ns) + "\\}:*"
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}

func TestRedis(t *testing.T) {
	requireRedis(t)
	storetest.Run(t, func(t *testing.T) featurestore.Store {
		s, _, _ := newRedisStore(t)
		return s
	})
}

// TestRedisInParts runs the suite with commits of more than two row writes in parts, so
// that every contract holds for them too.
func TestRedisInParts(t *testing.T) {
	requireRedis(t)
	storetest.Run(t, func(t *testing.T) featurestore.Store {
		s, _, _ := newRedisStorePart(t, 2)
		return s
	})
}

func BenchmarkRedis(b *testing.B) {
	requireRedis(b)
	storetest.Bench(b, func(b *testing.B) featurestore.Store {
		s, _, _ := newRedisStore(b)
		return s
	})
}

// BenchmarkRedisOneScript is BenchmarkRedis with every commit in one script (no parts): the
// price of the parts is the difference.
func BenchmarkRedisOneScript(b *testing.B) {
	requireRedis(b)
	storetest.Bench(b, func(b *testing.B) featurestore.Store {
		s, _, _ := newRedisStorePart(b, -1)
		return s
	})
}

func f32blob(v ...float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return string(b)
}

// TestRedisKeyLayout reads the keys with plain commands, as an operator with redis-cli would,
// and checks them against the layout that the Redis doc comment promises.
func TestRedisKeyLayout(t *testing.T) {
	s, admin, ns := newRedisStore(t)
	ctx := context.Background()
	tx := s.Begin()
	tx.SetVector("users", "u1", []float32{1, -2.5})
	tx.AddVector("items", "i1", []float64{0.5, 0.25, 1})
	tx.IncrCounter("clicks", "i1", 3)
	tx.AppendCatalog("all", "i9")
	tx.AppendCatalog("all", "i1")
	tx.AppendCatalog("all", "i5")
	tx.SetOffset("visrec.events", 3, featurestore.NoOffset, 42)
	tx.AddToSet("seen", "u1", "i1", "i9")
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p := "{" + ns + "}:"
	if got := admin.ZRangeWithScores(ctx, p+"chg:users", 0, -1).Val(); !reflect.DeepEqual(got, []redis.Z{{Score: 1, Member: "u1"}}) {
		t.Errorf("ZRANGE %schg:users = %v", p, got)
	}
	if got := admin.ZRangeWithScores(ctx, p+"chg:items", 0, -1).Val(); !reflect.DeepEqual(got, []redis.Z{{Score: 1, Member: "i1"}}) {
		t.Errorf("ZRANGE %schg:items = %v", p, got)
	}
	if got := admin.SMembers(ctx, p+"set:seen:u1").Val(); len(got) != 2 {
		t.Errorf("SMEMBERS %sset:seen:u1 = %v", p, got)
	}
	if got := admin.HGet(ctx, p+"v:users", "u1").Val(); got != f32blob(1, -2.5) {
		t.Errorf("HGET %sv:users u1 = %q", p, got)
	}
	if got := admin.HGet(ctx, p+"v:items", "i1").Val(); got != f32blob(0.5, 0.25, 1) {
		t.Errorf("HGET %sv:items i1 = %q", p, got)
	}
	if got := admin.HGet(ctx, p+"c:clicks", "i1").Val(); got != "3" {
		t.Errorf("HGET %sc:clicks i1 = %q", p, got)
	}
	z := admin.ZRangeWithScores(ctx, p+"cat:all", 0, -1).Val()
	want := []redis.Z{{Score: 0, Member: "i9"}, {Score: 1, Member: "i1"}, {Score: 2, Member: "i5"}}
	if !reflect.DeepEqual(z, want) {
		t.Errorf("ZRANGE %scat:all = %v, want %v", p, z, want)
	}
	if got := admin.HGetAll(ctx, p+"off:visrec.events").Val(); !reflect.DeepEqual(got, map[string]string{"3": "42"}) {
		t.Errorf("HGETALL %soff:visrec.events = %v", p, got)
	}
	keys := admin.Keys(ctx, "\\{"+globEscape(ns)+"\\}:*").Val()
	if len(keys) != 8 {
		t.Errorf("namespace holds %d keys, want 8: %v", len(keys), keys)
	}
	// Every key hashes to one cluster slot.
	slot := admin.ClusterKeySlot(ctx, keys[0])
	if slot.Err() == nil {
		for _, k := range keys {
			if got := admin.ClusterKeySlot(ctx, k).Val(); got != slot.Val() {
				t.Errorf("key %s is in slot %d, %s in %d", k, got, keys[0], slot.Val())
			}
		}
	}

	// Rows written by hand in the documented layout read back.
	admin.HSet(ctx, p+"v:users", "hand", f32blob(7, 8))
	admin.HSet(ctx, p+"c:clicks", "hand", "12")
	admin.HSet(ctx, p+"off:visrec.events", "0", "100")
	rows, err := s.Vectors(ctx, "users", []string{"hand"})
	if err != nil || !reflect.DeepEqual(rows[0], []float32{7, 8}) {
		t.Errorf("hand-written row = %v, %v", rows, err)
	}
	cs, err := s.Counters(ctx, "clicks", []string{"hand"})
	if err != nil || cs[0] != 12 {
		t.Errorf("hand-written counter = %v, %v", cs, err)
	}
	offs, err := s.Offsets(ctx, "visrec.events")
	if err != nil || !reflect.DeepEqual(offs, map[int]int64{0: 100, 3: 42}) {
		t.Errorf("offsets = %v, %v", offs, err)
	}
}

// TestRedisCorruptData checks that a stored value that is not in the documented layout is a
// clear error, never a panic, and that a Commit touching it writes nothing.
func TestRedisCorruptData(t *testing.T) {
	s, admin, ns := newRedisStore(t)
	ctx := context.Background()
	p := "{" + ns + "}:"
	admin.HSet(ctx, p+"v:items", "bad", "12345")
	admin.HSet(ctx, p+"c:clicks", "bad", "one")
	admin.HSet(ctx, p+"off:t", "x", "1")
	admin.Set(ctx, p+"v:str", "a string", 0)

	if _, err := s.Vectors(ctx, "items", []string{"bad"}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Vectors of a 5-byte row: %v", err)
	}
	err := s.ScanVectors(ctx, "items", func(string, []float32) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("ScanVectors over a 5-byte row: %v", err)
	}
	if _, err := s.Counters(ctx, "clicks", []string{"bad"}); err == nil {
		t.Error("Counters of a non-integer: no error")
	}
	if _, err := s.Offsets(ctx, "t"); err == nil {
		t.Error("Offsets with partition x: no error")
	}
	if _, err := s.Vectors(ctx, "str", []string{"a"}); err == nil {
		t.Error("Vectors of a string key: no error")
	}

	for _, c := range []struct {
		name string
		bad  func(tx featurestore.Tx)
	}{
		{"AddVector onto a corrupt row", func(tx featurestore.Tx) { tx.AddVector("items", "bad", []float64{1}) }},
		{"IncrCounter of a non-integer", func(tx featurestore.Tx) { tx.IncrCounter("clicks", "bad", 1) }},
		{"SetVector into a string key", func(tx featurestore.Tx) { tx.SetVector("str", "a", []float32{1}) }},
		{"AppendCatalog onto a hash", func(tx featurestore.Tx) { tx.AppendCatalog("x", "a"); admin.HSet(ctx, p+"cat:x", "f", "v") }},
	} {
		tx := s.Begin()
		tx.SetVector("items", "good", []float32{1})
		tx.IncrCounter("clicks", "good", 1)
		c.bad(tx)
		_, err := tx.Commit(ctx)
		if err == nil || errors.Is(err, featurestore.ErrFenced) {
			t.Errorf("%s: Commit error %v", c.name, err)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		if n := admin.HLen(ctx, p+"c:clicks").Val(); n != 1 {
			t.Errorf("%s: counters written (%d fields)", c.name, n)
		}
		if admin.HExists(ctx, p+"v:items", "good").Val() {
			t.Errorf("%s: row written", c.name)
		}
	}
}

// TestRedisScriptFlushed checks the EVAL fallback when the server forgot the script.
func TestRedisScriptFlushed(t *testing.T) {
	s, admin, _ := newRedisStore(t)
	ctx := context.Background()
	for i := range 3 {
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		tx := s.Begin()
		tx.IncrCounter("c", "x", 1)
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit %d after SCRIPT FLUSH: %v", i, err)
		}
	}
}

func TestNewRedisOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer c.Close()
	if _, err := featurestore.NewRedis(c, featurestore.RedisOptions{Namespace: "a{b}"}); err == nil {
		t.Error("namespace with braces accepted")
	}
	if _, err := featurestore.NewRedis(nil, featurestore.DefaultRedisOptions()); err == nil {
		t.Error("nil client accepted")
	}
	s, err := featurestore.NewRedis(c, featurestore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace() != "visrec" {
		t.Errorf("default namespace %q", s.Namespace())
	}
}
