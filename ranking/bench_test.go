package ranking_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/ranking"
	"github.com/visrec/visrec/updater"
)

// benchIndex loads n items of a K-factor BPR model with random rows into a memory store
// (so that the benchmark measures the ranking, not Redis) and starts an index on it.
func benchIndex(b *testing.B, n, k int) *ranking.Index {
	b.Helper()
	store := featurestore.NewMemory()
	o := models.DefaultBPROptions()
	o.Factors = k
	m := models.NewBPR(o)
	rng := rand.New(rand.NewPCG(1, 2))
	tx := store.Begin()
	row := make([]float64, k+1)
	for i := range n {
		id := "i" + strconv.Itoa(i)
		tx.AppendCatalog(updater.CatalogItems, id)
		for j := range row {
			row[j] = rng.NormFloat64() * 0.1
		}
		tx.AddVector("bpr:items", id, row)
	}
	u := make([]float32, k)
	for j := range u {
		u[j] = float32(rng.NormFloat64())
	}
	tx.SetVector("bpr:users", "u", u)
	if _, err := tx.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	x, err := ranking.New(store, []models.Servable{m}, ranking.Options{})
	if err != nil {
		b.Fatal(err)
	}
	go x.Run(ctx) //nolint:errcheck // ends with the benchmark
	for !x.Ready() {
		runtime.Gosched()
	}
	return x
}

// BenchmarkRecommend: top-10 of 100,000 items, K=64, all cores (GOMAXPROCS workers).
func BenchmarkRecommend(b *testing.B) {
	x := benchIndex(b, 100_000, 64)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, err := x.Recommend(ctx, "bpr", "u", 10, ranking.RecOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}

// cpuTime is the process's CPU time (user + system). On a machine shared with other work,
// CPU time per ranking is steadier than wall time, and it is what bounds requests/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRecommendParallel: the same with many requests at once (batched rankings).
func BenchmarkRecommendParallel(b *testing.B) {
	x := benchIndex(b, 100_000, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := x.Recommend(ctx, "bpr", "u", 10, ranking.RecOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu0)
}
