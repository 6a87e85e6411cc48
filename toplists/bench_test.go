package toplists

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkScoreItems: the item-change path, 10,000 listed users (K=50, 65-float vectors)
// against a batch of 1,000 changed items, none of which enters a list (the common case):
// one matrix product and the per-user comparisons.
func BenchmarkScoreItems(b *testing.B) {
	const users, items, dim, k = 10_000, 1_000, 65, 50
	rng := rand.New(rand.NewPCG(1, 1))
	ml := newModelLists("bpr", dim)
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.1)
		}
		return v
	}
	for u := range users {
		list := make([]entry, k)
		for i := range list {
			list[i] = entry{item: "top" + strconv.Itoa(i), pos: int32(1_000_000 + i), score: 1e9} // nothing beats it
		}
		ml.set("u"+strconv.Itoa(u), vec(), list)
	}
	ids := make([]string, items)
	vecs := make([][]float32, items)
	pos := make([]int, items)
	for i := range ids {
		ids[i], vecs[i], pos[i] = "i"+strconv.Itoa(i), vec(), i
	}
	b.ResetTimer()
	for b.Loop() {
		if c := ml.scoreItems(ids, vecs, pos, k); len(c) != 0 {
			b.Fatalf("%d lists changed", len(c))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(users*items), "ns/user-item")
}
