package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/toplists"
)

func init() {
	benches["lists"] = command{summary: "materialized top-K lists: build rate, and a client's read of one (GET + decode) from Redis", run: benchLists}
}

// benchLists writes a synthetic model to a fresh namespace, materializes every user's list
// with the real materializer (reporting lists/s), stops it, and then measures what a client
// pays to read a list straight from Redis: a GET of random users' list keys and the decoding
// of the document (toplists.DecodeList, the whole list of --k items), one request at a time
// (p50/p99), then from several connections at once (requests/s).
func benchLists(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("bench lists", flag.ContinueOnError)
	redisAddr := fs.String("redis", envOr("VISREC_REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env VISREC_REDIS_ADDR)")
	var mf modelFlags
	mf.registerServing(fs)
	nItems := fs.Int("items", 100_000, "catalog items")
	nUsers := fs.Int("users", 2_000, "users (each gets a list per model)")
	nSeen := fs.Int("seen", 20, "items each user has seen (left out of the lists)")
	k := fs.Int("k", 50, "items per list")
	n := fs.Int("requests", 100_000, "lookups one at a time")
	conns := fs.Int("conns", 8, "connections of the concurrent run")
	keep := fs.Bool("keep", false, "keep the benchmark namespace afterwards (default: delete its keys)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ms, err := servableModels(&mf)
	if err != nil {
		return err
	}
	ns := fmt.Sprintf("visrec-bench-lists-%d", os.Getpid())
	store, err := openRedis(ctx, *redisAddr, ns)
	if err != nil {
		return err
	}
	defer store.Close()
	client := redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: max(10, *conns)})
	defer client.Close()
	if !*keep {
		defer func() {
			if err := deleteKeys(context.Background(), client, "{"+ns+"}:*"); err != nil {
				log.Warn("cleanup", zap.String("namespace", ns), zap.Error(err))
			}
		}()
	}
	fmt.Printf("namespace %s: writing %d items and %d users (K=%d, models %s)\n", ns, *nItems, *nUsers, mf.factors, mf.names)
	if err := fillSynthetic(ctx, store, ms, *nItems, *nUsers, *nSeen); err != nil {
		return err
	}

	// Materialize with the real materializer, then stop it so that it does not compete with
	// the lookups for the two cores.
	mctx, stop := context.WithCancel(ctx)
	idx, err := ranking.New(store, ms, ranking.Options{Logger: log})
	if err != nil {
		stop()
		return err
	}
	mat, err := toplists.New(client, store, idx, toplists.Options{Namespace: ns, K: *k, RefreshesPerSecond: 1_000_000, Logger: log})
	if err != nil {
		stop()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); idx.Run(mctx) }() //nolint:errcheck // stopped below
	go func() { defer wg.Done(); mat.Run(mctx) }() //nolint:errcheck // stopped below
	for !idx.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	want := *nUsers * len(ms)
	for {
		s := mat.Stats(mctx)
		if s.Writes >= int64(want) && s.Queued == 0 {
			break
		}
		if ctx.Err() != nil {
			stop()
			wg.Wait()
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	build := time.Since(t0)
	stop()
	wg.Wait()
	fmt.Printf("materialized %d lists of %d items in %.1fs: %.0f lists/s (each a full exact ranking of %d items)\n",
		want, *k, build.Seconds(), float64(want)/build.Seconds(), *nItems)

	// Sanity: a list as read from Redis is full.
	model := ms[0].Name()
	got, err := toplists.ReadList(ctx, client, toplists.ListKey(ns, model, "u0"))
	if err != nil || len(got.Items) != *k {
		return fmt.Errorf("read back u0's list: %d entries, want %d; %v", len(got.Items), *k, err)
	}

	keys := make([]string, *nUsers)
	for i := range keys {
		keys[i] = toplists.ListKey(ns, model, "u"+strconv.Itoa(i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, *n)
	for i := range lat {
		key := keys[rng.IntN(len(keys))]
		t := time.Now()
		l, err := toplists.ReadList(ctx, client, key)
		lat[i] = time.Since(t)
		if err != nil {
			return err
		}
		if len(l.Items) == 0 {
			return fmt.Errorf("%s is empty", key)
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1e3 }
	fmt.Printf("one at a time: %d x GET <key> + decode (%d items): p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (goal: p99 <= 1 ms)\n",
		*n, *k, q(0.5), q(0.99), q(0.999), q(1))

	var done sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	per := *n / *conns
	t1 := time.Now()
	for c := range *conns {
		done.Add(1)
		go func() {
			defer done.Done()
			r := rand.New(rand.NewPCG(uint64(c), 3))
			for range per {
				if _, err := toplists.ReadList(ctx, client, keys[r.IntN(len(keys))]); err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	done.Wait()
	if firstErr != nil {
		return firstErr
	}
	el := time.Since(t1)
	fmt.Printf("%d connections: %d lookups in %.2fs: %.0f lookups/s\n", *conns, per**conns, el.Seconds(), float64(per**conns)/el.Seconds())
	return nil
}

// deleteKeys deletes the keys matching pattern (SCAN, then DEL in batches).
func deleteKeys(ctx context.Context, c *redis.Client, pattern string) error {
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
