package models

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks of the online steps. Each step draws a user and two distinct items at random
// from contiguous tables, like the updater's cache: "hot" has 8 users and 32 items, so every
// row stays in L1 (a single repeated triple would drive the loss to 0 and the arithmetic into
// subnormals, which measures nothing real); "items=10000" has 1,000 users and 10,000 items
// (2.6 MB at K=64), so most rows come from L2/L3. Each reports steps/s.

const benchIdx = 1 << 16 // pre-drawn random indices, so the RNG stays out of the loop

func benchIndices(seed uint64, n int) []int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	idx := make([]int32, benchIdx)
	for k := range idx {
		idx[k] = int32(rng.IntN(n))
	}
	return idx
}

func reportSteps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

// benchOnline runs m.Step on random rows of tables of nUsers users and nItems items.
func benchOnline(b *testing.B, m Online, nUsers, nItems int) {
	rng := rand.New(rand.NewPCG(1, 2))
	users, items := newRowTable(nUsers, m.UserDim()), newRowTable(nItems, m.ItemDim())
	for u := 0; u < nUsers; u++ {
		m.InitUser(users.at(u), rng)
	}
	for k := range items.data {
		items.data[k] = float32(rng.NormFloat64() * 0.1)
	}
	var global []float32
	if m.GlobalDim() > 0 {
		global = make([]float32, m.GlobalDim())
	}
	ui, ii, ji := benchIndices(3, nUsers), benchIndices(4, nItems), benchIndices(5, nItems)
	// Ratings 1..5 for explicit models: a constant target would let the regulariser decay
	// the factors into subnormals over millions of steps on so few rows.
	ratings := benchIndices(6, 5)
	ex := &Example{Global: global, Value: 1, Weight: 1}
	neg := m.NeedsNegative()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		k := n & (benchIdx - 1)
		i, j := int(ii[k]), int(ji[k])
		if j == i {
			j = (j + 1) % nItems
		}
		ex.User, ex.Item, ex.Value = users.at(int(ui[k])), items.at(i), float32(1+ratings[k])
		if neg {
			ex.Neg, ex.Value = items.at(j), 1
		}
		m.Step(ex)
	}
	reportSteps(b)
}

func BenchmarkBPRStep(b *testing.B) {
	for _, k := range []int{16, 32, 64, 128} {
		o := DefaultBPROptions()
		o.Factors = k
		b.Run(fmt.Sprintf("K=%d/hot", k), func(b *testing.B) { benchOnline(b, NewBPR(o), 8, 32) })
		b.Run(fmt.Sprintf("K=%d/items=10000", k), func(b *testing.B) { benchOnline(b, NewBPR(o), 1000, 10000) })
	}
}

func BenchmarkMFStep(b *testing.B) {
	for _, explicit := range []bool{true, false} {
		o := DefaultMFOptions()
		o.Factors, o.Explicit = 64, explicit
		mode := "explicit"
		if !explicit {
			mode = "implicit"
		}
		b.Run("K=64/"+mode+"/hot", func(b *testing.B) { benchOnline(b, NewMF(o), 8, 32) })
		b.Run("K=64/"+mode+"/items=10000", func(b *testing.B) { benchOnline(b, NewMF(o), 1000, 10000) })
	}
}

// BenchmarkScore scores one user against a table of 10,000 items in order, as ranking
// all items does.
func BenchmarkScore(b *testing.B) {
	const nItems = 10000
	for _, m := range []Online{NewBPR(DefaultBPROptions()), NewMF(DefaultMFOptions())} {
		b.Run(m.Name()+"/K=64", func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			user := make([]float32, m.UserDim())
			m.InitUser(user, rng)
			items := newRowTable(nItems, m.ItemDim())
			for k := range items.data {
				items.data[k] = float32(rng.NormFloat64() * 0.1)
			}
			global := make([]float32, m.GlobalDim())
			var sink float32
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				sink += m.Score(user, items.at(n%nItems), global)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "scores/s")
			_ = sink
		})
	}
}
