package datasets

import (
	"errors"
	"fmt"

	"github.com/visrec/visrec/producers"
)

// MaxSyntheticEvents bounds what Synthetic materialises (24 bytes per interaction: 10M
// events is 240 MB). Longer streams, 10 million events and beyond, are for
// producers.NewSynthetic itself, which streams any number of events in constant memory.
const MaxSyntheticEvents = 50_000_000

// Synthetic materialises the stream of producers.NewSynthetic(cfg) as a data set, for tests
// and offline experiments with a known ground truth. Dense indices equal the planted ones:
// user i is "u<i>", item j is "i<j>", all cfg.Users and cfg.Items of them, including any
// that never interact (for example items released late: cold-start items). When
// cfg.VisualDim > 0, Features holds every item's planted visual vector (views into the
// planted matrix). cfg.Events must be between 1 and MaxSyntheticEvents.
func Synthetic(cfg producers.SyntheticConfig) (*Dataset, error) {
	ds, _, err := SyntheticWithTruth(cfg)
	return ds, err
}

// SyntheticWithTruth is Synthetic that also returns the planted ground truth (factors,
// popularity, release times), which callers must not modify.
func SyntheticWithTruth(cfg producers.SyntheticConfig) (*Dataset, *producers.Planted, error) {
	if cfg.Events <= 0 {
		return nil, nil, errors.New("synthetic data set: Events must be positive (an unbounded stream cannot be materialised; stream it with producers.NewSynthetic)")
	}
	if cfg.Events > MaxSyntheticEvents {
		return nil, nil, fmt.Errorf("synthetic data set: %d events exceed MaxSyntheticEvents (%d); stream them with producers.NewSynthetic", cfg.Events, MaxSyntheticEvents)
	}
	g, err := producers.NewSynthetic(cfg)
	if err != nil {
		return nil, nil, err
	}
	p := g.Planted()
	b := NewBuilder(fmt.Sprintf("synthetic-seed%d", cfg.Seed))
	for _, id := range p.UserIDs {
		b.User(id)
	}
	for _, id := range p.ItemIDs {
		b.Item(id)
	}
	b.Grow(int(cfg.Events))
	for e := range producers.All(g) {
		v := float32(1)
		if e.HasValue {
			v = e.Value
		}
		b.Add(e.User, e.Item, v, e.Timestamp, e.Type)
	}
	if err := g.Err(); err != nil {
		return nil, nil, err
	}
	ds := b.Dataset()
	if p.VisualDim > 0 {
		ds.FeatureDim = p.VisualDim
		ds.Features = make([][]float32, p.Items)
		for j := range ds.Features {
			ds.Features[j] = p.ItemVisual[j*p.VisualDim : (j+1)*p.VisualDim : (j+1)*p.VisualDim]
		}
	}
	return ds, p, nil
}
