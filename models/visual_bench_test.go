package models

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchVisual runs m.Step on random rows of 1,000 users and 3,000 items (about the posters
// data set) with random non-negative features of the model's dimension, like benchOnline.
func benchVisual(b *testing.B, m Visual) {
	const nUsers, nItems = 1000, 3000
	rng := rand.New(rand.NewPCG(1, 2))
	users, items := newRowTable(nUsers, m.UserDim()), newRowTable(nItems, m.ItemDim())
	feats := newRowTable(nItems, m.FeatureDim())
	for u := 0; u < nUsers; u++ {
		m.InitUser(users.at(u), rng)
	}
	for k := range items.data {
		items.data[k] = float32(rng.NormFloat64() * 0.1)
	}
	for k := range feats.data {
		feats.data[k] = float32(rng.ExpFloat64())
	}
	global := make([]float32, m.GlobalDim())
	ui, ii, ji := benchIndices(3, nUsers), benchIndices(4, nItems), benchIndices(5, nItems)
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
		ex.User, ex.Item, ex.ItemFeat, ex.Value = users.at(int(ui[k])), items.at(i), feats.at(i), float32(1+ratings[k])
		if neg {
			ex.Neg, ex.NegFeat, ex.Value = items.at(j), feats.at(j), 1
		}
		m.Step(ex)
	}
	reportSteps(b)
}

// BenchmarkOnlineVBPRStep measures the exact per-step update of E and β' (no projection
// cache) at F=1280, the MobileNetV2 dimension.
func BenchmarkOnlineVBPRStep(b *testing.B) {
	for _, k2 := range []int{10, 20} {
		o := DefaultOnlineVBPROptions()
		o.VisualFactors = k2
		b.Run(fmt.Sprintf("K=64/K'=%d/F=1280", k2), func(b *testing.B) { benchVisual(b, NewOnlineVBPR(o)) })
	}
}

// BenchmarkVisualStep: VMF (explicit) and DeepStyle (K rows of E) at F=1280.
func BenchmarkVisualStep(b *testing.B) {
	b.Run("vmf/K=64/K'=20/F=1280", func(b *testing.B) { benchVisual(b, NewVMF(DefaultVMFOptions())) })
	b.Run("deepstyle/K=64/F=1280", func(b *testing.B) { benchVisual(b, NewDeepStyle(DefaultDeepStyleOptions())) })
}
