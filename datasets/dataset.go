// Package datasets loads recommendation data sets into one in-memory form, Dataset, that
// the splits, metrics and trainers of eval/ work on.
//
// Loaders, one file per source format, all returning a *Dataset:
//
//   - MovieLens: LoadMovieLens (one ratings file: ratings.csv, u.data or ratings.dat),
//     LoadMovieLensDir (an unpacked archive with its movie metadata) and
//     LoadMovieLensPosters (ml-latest-small with posters and MobileNetV2 features, the data
//     of ../shared/data/movielens-posters);
//   - Amazon reviews (LoadAmazonReviews, McAuley's JSON lines of 2014, 2018 and 2023) with
//     the VBPR binary image features (LoadVBPRFeatures);
//   - Cornac's UIR text (LoadUIR);
//   - MMRec's .inter with its .npy feature matrices (LoadMMRec, LoadMMRecInter, LoadNPY);
//   - any event log the producers package reads, CSV or JSONL (LoadLog);
//   - a materialised synthetic stream with planted visual features (Synthetic, up to
//     MaxSyntheticEvents). Scale tests of 10 million events and more stream
//     producers.NewSynthetic directly, which generates any number in constant memory.
//
// Load picks the loader from a path. Malformed input is reported as an error naming the file
// and line (text) or byte offset (binary), for which errors.Is(err, ErrMalformed) holds.
// Download fetches public archives (MovieLens) with checksum verification.
//
// A Dataset is a plain value: loaders build it, and afterwards any number of goroutines may
// read it as long as none modifies it.
package datasets

import (
	"fmt"
	"math"

	"github.com/visrec/visrec/events"
)

// Interaction is one user–item event with dense indices into Dataset.Users and Items.
type Interaction struct {
	User  int32
	Item  int32
	Value float32     // the rating, or 1 for implicit feedback
	TS    int64       // Unix milliseconds; 0 where the source has no timestamps
	Type  events.Type // view, click, purchase or rating
}

// Dataset is a data set in memory. Interactions are sorted by TS (stable in file order);
// Users and Items map dense indices back to the external ids.
type Dataset struct {
	Name         string
	Users        []string
	Items        []string
	Interactions []Interaction
	// Features holds an item feature vector (e.g. an image embedding) per dense item index,
	// nil where an item has none; FeatureDim is their length (0: no features). Loaders
	// make Features either nil or exactly as long as Items.
	Features   [][]float32
	FeatureDim int
	// TextFeatures is a second modality in the same layout (MMRec's text_feat.npy).
	TextFeatures   [][]float32
	TextFeatureDim int
	// ItemMeta holds item metadata per dense item index (nil: none), for example MovieLens'
	// "title", "genres" (pipe-separated), "tag_count", "imdb", "tmdb" and "poster" (a file
	// path). It is nil or exactly as long as Items.
	ItemMeta []map[string]string
	// Split holds, per interaction, the source's own split label where it has one (MMRec's
	// x_label: 0 train, 1 validation, 2 test), aligned with Interactions; nil otherwise.
	Split []uint8
}

// Split labels of Dataset.Split (MMRec's x_label values).
const (
	SplitTrain      uint8 = 0
	SplitValidation uint8 = 1
	SplitTest       uint8 = 2
)

// Builder assigns dense indices to external ids as interactions are added. A Builder is
// used by one goroutine at a time.
type Builder struct {
	ds    Dataset
	users map[string]int32
	items map[string]int32
}

// NewBuilder starts a data set called name.
func NewBuilder(name string) *Builder {
	return &Builder{ds: Dataset{Name: name}, users: make(map[string]int32), items: make(map[string]int32)}
}

// User returns the dense index of user id, adding it when new.
func (b *Builder) User(id string) int32 {
	if i, ok := b.users[id]; ok {
		return i
	}
	i := int32(len(b.ds.Users))
	b.users[id] = i
	b.ds.Users = append(b.ds.Users, id)
	return i
}

// Item returns the dense index of item id, adding it when new.
func (b *Builder) Item(id string) int32 {
	if i, ok := b.items[id]; ok {
		return i
	}
	i := int32(len(b.ds.Items))
	b.items[id] = i
	b.ds.Items = append(b.ds.Items, id)
	return i
}

// LookupItem returns the dense index of item id without adding it.
func (b *Builder) LookupItem(id string) (int32, bool) {
	i, ok := b.items[id]
	return i, ok
}

// Add appends an interaction of external ids.
func (b *Builder) Add(user, item string, value float32, ts int64, typ events.Type) {
	b.ds.Interactions = append(b.ds.Interactions, Interaction{User: b.User(user), Item: b.Item(item), Value: value, TS: ts, Type: typ})
}

// AddSplit appends an interaction with the source's split label (see Dataset.Split). Use
// it for all interactions of a data set or for none.
func (b *Builder) AddSplit(user, item string, value float32, ts int64, typ events.Type, split uint8) {
	b.Add(user, item, value, ts, typ)
	b.ds.Split = append(b.ds.Split, split)
}

// Grow reserves room for n more interactions.
func (b *Builder) Grow(n int) {
	if n > 0 && cap(b.ds.Interactions)-len(b.ds.Interactions) < n {
		xs := make([]Interaction, len(b.ds.Interactions), len(b.ds.Interactions)+n)
		copy(xs, b.ds.Interactions)
		b.ds.Interactions = xs
	}
}

// Dataset returns the data set built so far, its interactions sorted by time (stable).
func (b *Builder) Dataset() *Dataset {
	ds := b.ds
	if ds.Split != nil && len(ds.Split) == len(ds.Interactions) {
		sortByTimeWithSplit(ds.Interactions, ds.Split)
	} else {
		ds.Split = nil
		sortByTime(ds.Interactions)
	}
	return &ds
}

// ItemIndex returns a map from external item id to dense index (built on each call).
func (d *Dataset) ItemIndex() map[string]int32 { return indexOf(d.Items) }

// UserIndex returns a map from external user id to dense index (built on each call).
func (d *Dataset) UserIndex() map[string]int32 { return indexOf(d.Users) }

func indexOf(ids []string) map[string]int32 {
	m := make(map[string]int32, len(ids))
	for i, id := range ids {
		m[id] = int32(i)
	}
	return m
}

// Meta returns metadata key of dense item index item, or "".
func (d *Dataset) Meta(item int32, key string) string {
	if int(item) < 0 || int(item) >= len(d.ItemMeta) {
		return ""
	}
	return d.ItemMeta[item][key]
}

// SetMeta sets metadata key of dense item index item, allocating ItemMeta as needed.
func (d *Dataset) SetMeta(item int32, key, value string) {
	if len(d.ItemMeta) < len(d.Items) {
		d.ItemMeta = append(d.ItemMeta, make([]map[string]string, len(d.Items)-len(d.ItemMeta))...)
	}
	if d.ItemMeta[item] == nil {
		d.ItemMeta[item] = make(map[string]string, 4)
	}
	d.ItemMeta[item][key] = value
}

// PosterPath returns the poster image file of dense item index item ("" when it has none).
func (d *Dataset) PosterPath(item int32) string { return d.Meta(item, "poster") }

// SetFeature sets the feature vector of dense item index item. The first vector fixes
// FeatureDim; a vector of another length or with a NaN or infinity is an error. The
// Dataset keeps v (no copy).
func (d *Dataset) SetFeature(item int32, v []float32) error {
	return setRow(&d.Features, &d.FeatureDim, len(d.Items), item, v)
}

// SetTextFeature is SetFeature for TextFeatures.
func (d *Dataset) SetTextFeature(item int32, v []float32) error {
	return setRow(&d.TextFeatures, &d.TextFeatureDim, len(d.Items), item, v)
}

func setRow(rows *[][]float32, dim *int, items int, item int32, v []float32) error {
	if int(item) < 0 || int(item) >= items {
		return fmt.Errorf("item index %d out of range [0, %d)", item, items)
	}
	if len(v) == 0 {
		return fmt.Errorf("empty feature vector for item index %d", item)
	}
	if *dim != 0 && len(v) != *dim {
		return fmt.Errorf("feature vector of item index %d has %d values, want %d", item, len(v), *dim)
	}
	for k, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("feature %d of item index %d is %v", k, item, x)
		}
	}
	if len(*rows) < items {
		*rows = append(*rows, make([][]float32, items-len(*rows))...)
	}
	*dim = len(v)
	(*rows)[item] = v
	return nil
}
