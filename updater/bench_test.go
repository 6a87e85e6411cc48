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
