// Package datasets loads recommendation data sets into one in-memory form, Dataset, that
// the splits, metrics and trainers of eval/ work on.
package datasets

import "github.com/visrec/visrec/events"

// Interaction is one user–item event with dense indices into Dataset.Users and Items.
type Interaction struct {
	User  int32
	Item  int32
	Value float32     // the rating, or 1 for implicit feedback
	TS    int64       // Unix milliseconds
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
	// nil where an item has none; FeatureDim is their length (0: no features).
	Features   [][]float32
	FeatureDim int
}

// Builder assigns dense indices to external ids as interactions are added.
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

// Add appends an interaction of external ids.
func (b *Builder) Add(user, item string, value float32, ts int64, typ events.Type) {
	b.ds.Interactions = append(b.ds.Interactions, Interaction{User: b.User(user), Item: b.Item(item), Value: value, TS: ts, Type: typ})
}

// Dataset returns the data set built so far, its interactions sorted by time (stable).
func (b *Builder) Dataset() *Dataset {
	ds := b.ds
	sortByTime(ds.Interactions)
	return &ds
}
