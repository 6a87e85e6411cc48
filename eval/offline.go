package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// TrainOptions configure TrainOnline.
type TrainOptions struct {
	Epochs  int    // passes over the training interactions
	Seed    uint64 // shuffles the order of each epoch (0: keep time order)
	Updater updater.Options
	// AfterEpoch, when set, is called after each epoch with the models as they are; items
	// not trained on yet score 0.
	AfterEpoch func(epoch int, o *Online)
}

// Online is a set of online models trained offline. Its scorers are safe for concurrent use
// (they only read).
type Online struct {
	upd  *updater.Updater
	ds   *datasets.Dataset
	perm []int32 // dense item index → the updater's catalogue index, -1: not in it
}

// TrainOnline trains models on train by epochs of online steps through an updater.Updater on
// the in-memory store: the same update code that consumes Kafka, here fed from memory. Items
// never trained on are candidates with zero rows: the neutral score of an unknown item.
//
// When a model is visual (models.Visual) and ds has item features, the items' embeddings
// reach the updater as item events, as they would from visrec.items: those of the items in
// train before training (an item's embedding is produced when it is released, before anyone
// interacts with it), the others after it, so that an item held out of train is scored by
// its features alone, like a new item arriving in the stream. The first of an item's
// MovieLens genres is its category (DeepStyle).
func TrainOnline(ctx context.Context, ds *datasets.Dataset, train []datasets.Interaction, opts TrainOptions, ms ...models.Online) (*Online, error) {
	if opts.Epochs < 1 {
		return nil, fmt.Errorf("eval: %d epochs", opts.Epochs)
	}
	upd, err := updater.New(featurestore.NewMemory(), opts.Updater, ms...)
	if err != nil {
		return nil, err
	}
	o := &Online{upd: upd, ds: ds, perm: make([]int32, len(ds.Items))}
	visual := false
	for _, m := range ms {
		if _, ok := m.(models.Visual); ok {
			visual = ds.FeatureDim > 0 && len(ds.Features) == len(ds.Items)
		}
	}
	var inTrain []bool
	var itemOffset int64
	sendItems := func(want bool) error {
		for i, f := range ds.Features {
			if f == nil || inTrain[i] != want {
				continue
			}
			it, _ := ItemEvent(ds, int32(i))
			if err := upd.ApplyItem(&it, updater.Position{Topic: "items", Offset: itemOffset}); err != nil {
				return fmt.Errorf("eval: item %s: %w", ds.Items[i], err)
			}
			itemOffset++
		}
		return nil
	}
	if visual {
		inTrain = make([]bool, len(ds.Items))
		for _, x := range train {
			inTrain[x.Item] = true
		}
		if err := sendItems(true); err != nil {
			return nil, err
		}
	}
	order := make([]int, len(train))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	for epoch := 0; epoch < opts.Epochs; epoch++ {
		if opts.Seed != 0 {
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		for n, i := range order {
			ev := ds.EventOf(train[i])
			pos := updater.Position{Topic: "train", Offset: int64(epoch*len(train) + n)}
			if err := upd.Apply(ctx, &ev, pos); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opts.AfterEpoch != nil {
			o.index()
			opts.AfterEpoch(epoch+1, o)
		}
	}
	// Items never trained on join now, with zero rows: added before training they would
	// have been sampled as negatives, which an item not yet released never is.
	if visual {
		if err := sendItems(false); err != nil {
			return nil, err
		}
	}
	for _, id := range ds.Items {
		upd.AddItem(id)
	}
	o.index()
	return o, nil
}

// ItemEvent is the item event of a data set's item: its features as the embedding and its
// category (itemCategory) as metadata. ok is false when the item has no features.
func ItemEvent(ds *datasets.Dataset, i int32) (it events.Item, ok bool) {
	if int(i) >= len(ds.Features) || ds.Features[i] == nil {
		return events.Item{}, false
	}
	it = events.Item{Item: ds.Items[i], Model: ds.Name, Embedding: ds.Features[i]}
	if c := itemCategory(ds, i); c != "" {
		it.Metadata = map[string]string{models.CategoryKey: c}
	}
	return it, true
}

// itemCategory is an item's category for DeepStyle: its "category" metadata, else the first
// of its MovieLens "genres" ("" when it has neither, or "(no genres listed)").
func itemCategory(ds *datasets.Dataset, i int32) string {
	if c := ds.Meta(i, models.CategoryKey); c != "" {
		return c
	}
	g, _, _ := strings.Cut(ds.Meta(i, "genres"), "|")
	if strings.HasPrefix(g, "(") {
		return ""
	}
	return g
}

// index maps the data set's items to the updater's catalogue.
func (o *Online) index() {
	for i, id := range o.ds.Items {
		j, ok := o.upd.ItemIndex(id)
		if !ok {
			j = -1
		}
		o.perm[i] = j
	}
}

// Snapshot returns one trained model's rows as a snapshot (see updater.Updater.Snapshot).
func (o *Online) Snapshot(model string) (models.Snapshot, error) { return o.upd.Snapshot(model) }

// Scorer returns the Scorer of one of the trained models.
func (o *Online) Scorer(model string) (Scorer, error) {
	if _, _, err := o.upd.ScoreAll(model, "", nil); err != nil {
		return nil, err
	}
	return &onlineScorer{o: o, model: model}, nil
}

type onlineScorer struct {
	o     *Online
	model string
}

// ScoreAll implements Scorer. A user without a row (never trained on) scores every item 0.
func (s *onlineScorer) ScoreAll(user int32, dst []float32) []float32 {
	n := len(s.o.perm)
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	raw, ok, err := s.o.upd.ScoreAll(s.model, s.o.ds.Users[user], nil)
	if err != nil || !ok {
		clear(dst)
		return dst
	}
	for i, j := range s.o.perm {
		if j < 0 {
			dst[i] = 0
		} else {
			dst[i] = raw[j]
		}
	}
	return dst
}
