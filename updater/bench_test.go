package updater_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// BenchmarkApplyBPR measures Updater.Apply with BPR at K=64 on warm caches (10,000 users,
// 5,000 items): the id lookups, negative sampling and the step; no flush.
func BenchmarkApplyBPR(b *testing.B) {
	for _, k := range []int{16, 64} {
		b.Run("K="+strconv.Itoa(k), func(b *testing.B) {
			opts := models.DefaultBPROptions()
			opts.Factors = k
			uopts := updater.DefaultOptions()
			uopts.FlushEvents = 1 << 62
			u, err := updater.New(featurestore.NewMemory(), uopts, models.NewBPR(opts))
			if err != nil {
				b.Fatal(err)
			}
			if err := u.Load(context.Background(), topic); err != nil {
				b.Fatal(err)
			}
			evs := stream(1<<16, 1)
			for i := range evs {
				evs[i].Type = events.Click
				evs[i].User = "u" + strconv.Itoa(i%10_000)
				evs[i].Item = "i" + strconv.Itoa((i*7919)%5_000)
			}
			ctx := context.Background()
			for i := range evs { // warm: every user and item cached
				if err := u.Apply(ctx, &evs[i], updater.Position{Topic: topic, Offset: int64(i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := &evs[i&(len(evs)-1)]
				if err := u.Apply(ctx, e, updater.Position{Topic: topic, Offset: int64(len(evs) + i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkApplyVBPR measures Updater.Apply with online VBPR (K=64, K'=20, F=1280, the
// exact per-step update of E and β') on warm caches of 10,000 users and 3,000 items that all
// have features: 4 steps per event with the default 4 negatives, 1 with one.
func BenchmarkApplyVBPR(b *testing.B) {
	for _, negatives := range []int{1, 4} {
		b.Run("negatives="+strconv.Itoa(negatives), func(b *testing.B) {
			uopts := updater.DefaultOptions()
			uopts.FlushEvents, uopts.Negatives = 1<<62, negatives
			u, err := updater.New(featurestore.NewMemory(), uopts, models.NewOnlineVBPR(models.DefaultOnlineVBPROptions()))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := u.Load(ctx, topic); err != nil {
				b.Fatal(err)
			}
			emb := make([]float32, 1280)
			for i := 0; i < 3_000; i++ {
				for k := range emb {
					emb[k] = float32((i*31+k*7)%13) * 0.1
				}
				it := events.Item{Item: "i" + strconv.Itoa(i), Timestamp: 1, Model: "bench", Embedding: emb}
				if err := u.ApplyItem(&it, updater.Position{Topic: "items", Offset: int64(i)}); err != nil {
					b.Fatal(err)
				}
			}
			evs := stream(1<<14, 1)
			for i := range evs {
				evs[i].Type = events.Click
				evs[i].User = "u" + strconv.Itoa(i%10_000)
				evs[i].Item = "i" + strconv.Itoa((i*7919)%3_000)
			}
			for i := range evs { // warm: every user cached
				if err := u.Apply(ctx, &evs[i], updater.Position{Topic: topic, Offset: int64(i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := &evs[i&(len(evs)-1)]
				if err := u.Apply(ctx, e, updater.Position{Topic: topic, Offset: int64(len(evs) + i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
