package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestServableMatchesScore checks the contract of Servable against each model's own Score
// on random rows.
func TestServableMatchesScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range []Servable{
		NewBPR(DefaultBPROptions()),
		NewMF(MFOptions{Factors: 16, LearnRate: 0.01, Explicit: true}),
		NewMF(MFOptions{Factors: 8, LearnRate: 0.01, Explicit: true, NoBias: true}),
		NewMF(MFOptions{Factors: 8, LearnRate: 0.01}),
		NewOnlineVBPR(OnlineVBPROptions{Factors: 8, VisualFactors: 3, FeatureDim: 10, FeatureScale: 0.5, LearnRate: 0.01}),
		NewVMF(VMFOptions{Factors: 6, VisualFactors: 4, FeatureDim: 9, FeatureScale: 0.3, LearnRate: 0.01}),
		NewDeepStyle(DeepStyleOptions{Factors: 7, FeatureDim: 5, FeatureScale: 2, Categories: 3, LearnRate: 0.01}),
	} {
		fill := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			return v
		}
		uv, iv := make([]float32, m.ServeDim()), make([]float32, m.ServeDim())
		for trial := 0; trial < 50; trial++ {
			user, item, global := fill(m.UserDim()), fill(m.ItemDim()), fill(m.GlobalDim())
			m.UserVector(uv, user, global)
			m.ItemVector(iv, item, global, nil)
			got, want := float64(dot(uv, iv)), float64(m.Score(user, item, global))
			if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("%s: dot of serving vectors %v, Score %v", m.Name(), got, want)
			}
			// A visual model's item vector with features scores as ScoreFeatures.
			if v, ok := m.(Visual); ok {
				feat := fill(v.FeatureDim())
				m.ItemVector(iv, item, global, feat)
				got, want := float64(dot(uv, iv)), float64(v.ScoreFeatures(user, item, global, feat))
				if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("%s: dot of serving vectors with features %v, ScoreFeatures %v", m.Name(), got, want)
				}
			}
		}
	}
}
