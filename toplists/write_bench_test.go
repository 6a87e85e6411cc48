package toplists

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/internal/testenv"
)

// BenchmarkWriteEntering: the write path of a new item (freshItems → write), against the
// real Redis: 6,500 users with stored lists of K=10 (as in `visrec bench freshness`), and at
// every iteration one new item enters n of them (each list's document rewritten, MSET per
// batch). ms/item is the median time to write all n lists (the load of a shared machine
// makes the mean noisy).
func BenchmarkWriteEntering(b *testing.B) {
	for _, n := range []int{600, 2700} {
		b.Run("lists="+strconv.Itoa(n), func(b *testing.B) { benchWriteEntering(b, n) })
	}
}

func benchWriteEntering(b *testing.B, n int) {
	const users, k = 6_500, 10
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b)})
	defer client.Close()
	ns := testenv.Unique("toplists-bench")
	met, err := newMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	m := &Materializer{client: client, opts: Options{Namespace: ns, K: k}, met: met}
	m.landed = sync.NewCond(&m.mu)
	ml := newModelLists("bpr", 4)
	ml.met = met.model("bpr")
	m.ms = []*modelLists{ml}
	defer func() {
		keys, _ := client.Keys(ctx, "{"+ns+"}:*").Result()
		for len(keys) > 0 {
			c := min(len(keys), 1000)
			client.Del(ctx, keys[:c]...)
			keys = keys[c:]
		}
	}()
	ws := make([]*pendingWrite, users)
	for u := range users {
		list := make([]entry, k)
		for i := range list {
			list[i] = entry{item: "item" + strconv.Itoa(i*100+u%100), pos: int32(i*100 + u%100), score: float32(k - i)}
		}
		ws[u] = &pendingWrite{ml: ml, slot: ml.set("user"+strconv.Itoa(u), make([]float32, 4), list)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(ctx, ws, false); err != nil {
		b.Fatal(err)
	}
	var took []float64
	b.ResetTimer()
	it := 0
	for b.Loop() {
		it++
		b.StopTimer()
		e := entry{item: "new" + strconv.Itoa(it), pos: int32(10_000 + it), score: float32(100 + it)}
		ws = ws[:0]
		for i := range n {
			slot := (it*997 + i*7) % users // a spread of users, as a new item enters
			ml.lists[slot] = append([]entry{e}, ml.lists[slot][:k-1]...)
			ws = append(ws, &pendingWrite{ml: ml, slot: slot})
		}
		b.StartTimer()
		t := time.Now()
		if err := m.write(ctx, ws, true); err != nil {
			b.Fatal(err)
		}
		took = append(took, float64(time.Since(t).Microseconds())/1000)
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2], "ms/item")
	b.ReportMetric(took[len(took)/2]*1000/float64(n), "us/list")
}
