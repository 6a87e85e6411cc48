// Package updater applies online SGD steps of the shallow models to parameters cached in
// memory and written back to a feature store, together with the Kafka offsets they cover.
//
// The Updater is the single place where events change state, whatever drives it: the Kafka
// consumer (consumers/), an offline replay or a prequential evaluation. It is not safe for
// concurrent use: one goroutine calls Apply, ApplyItem, StartFlush, StartItemFlush and
// FinishFlush; only PendingFlush Commits may run on other goroutines meanwhile. The
// read-only methods (ScoreAll, Catalog, ItemIndex) may run concurrently with each other, not
// with Apply.
//
// State ownership (DESIGN.md, Contracts): user rows have one writer (events are keyed by
// user) and are written whole; item rows and global rows are shared and are written as
// deltas merged in the store, so two updaters lose no update. Randomness (user init,
// negative sampling) is derived from the seed and the event's position, so replaying the
// same partition from the same stored state gives the same parameters.
//
// Visual models (models.Visual: online VBPR, VMF, DeepStyle) read item image features. The
// updater keeps them in memory in catalog order, loaded from TableEmbeddings at Load and set
// by ApplyItem, and hands the features of the observed and the negative item to each step
// (Example.ItemFeat, NegFeat). An item without an embedding yet (first seen through an
// interaction) has none: it counts as all zeros until its item event arrives. An item event
// makes the item a candidate at once, and a flush is due ItemFlushInterval after it, so that
// the new item reaches the store within milliseconds.
//
// Item lane (SeparateItemFlushes): a flush of interactions writes thousands of shared rows
// and takes tens of milliseconds in the store. So that a new item does not wait for one, the
// item events' topic can get flushes of its own (StartItemFlush): small transactions with
// the catalog, the embeddings and that topic's offsets, and no model row, which may be in
// flight beside a StartFlush one because the two write disjoint offsets and rows.
//
// Rebasing (docs/snapshots.md): a model can lag behind the updater's base offsets after a
// snapshot of it was installed (snapshots.Install). Its own next offsets are stored as the
// offsets of the pseudo-topic ModelTopic(topic, model); an event reaches a model only at or
// past the model's next offset (its own when stored, else the base one), and the updater-wide
// bookkeeping (catalog counters, seen sets, applied counters, base offsets) only at or past
// the base next offset. Offset returns the minimum, so a consumer replays what a lagging
// model misses. Every flush also fences on each model's epoch (EpochTopic): an installation
// moves it, so an updater whose cached rows predate the installation fails with
// featurestore.ErrFenced and must Load. An odd epoch means an installation in progress: the
// model is frozen (no step, no row written) until the installation ends.
//
// Besides the models' rows, each flush records the catalog, item embeddings, per-item event
// counts and, per user, the items they interacted with (set family SetSeen), which serving
// and the materialized top-K lists exclude from recommendations.
package updater

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
)

// Feature store names used by the updater. Model tables are "<model>:users",
// "<model>:items" and "<model>:global".
const (
	CatalogItems      = "items"       // every known item, in order of first sight
	TableEmbeddings   = "item_emb"    // item image embeddings, from visrec.items
	CounterItemEvents = "item_events" // interactions per item
	SetSeen           = "seen"        // set family: per user, the items they interacted with
	counterApplied    = "applied:"    // + topic: events applied per partition
	globalRowID       = "g"
)

// Options configure an Updater. DefaultOptions gives the defaults.
type Options struct {
	// Seed drives user initialisation and negative sampling.
	Seed uint64
	// Weights is the implicit confidence of each interaction type (purchase > click > view).
	Weights map[events.Type]float32
	// MinPositiveRating: rating events below it are not positives for implicit models.
	MinPositiveRating float32
	// FlushEvents and FlushInterval: a flush is due after this many applied events, or this
	// long after the first unflushed one, whichever comes first.
	FlushEvents   int
	FlushInterval time.Duration
	// MaxCachedUsers bounds the user cache; clean rows are dropped after a flush beyond it.
	MaxCachedUsers int
	// EmbeddingDim is the expected length of item embeddings; 0 accepts any.
	EmbeddingDim int
	// Negatives is the number of sampled negatives, hence steps, per positive event for the
	// models that need one.
	Negatives int
	// ItemFlushInterval: a flush (an item flush with SeparateItemFlushes) is due this long
	// after an item event, whatever FlushEvents and FlushInterval say, so that a new item is
	// in the store (a candidate for serving and the top-K lists) quickly, while item events
	// that arrive together share one transaction. 0 means FlushInterval.
	ItemFlushInterval time.Duration
}

// DefaultOptions returns the defaults: weights view 1, click 2, purchase 4, rating 1; every
// rating counts as a positive; 4 sampled negatives per positive; flush every 20,000 events
// or 250 ms, and 2 ms after an item event.
func DefaultOptions() Options {
	return Options{
		Seed:           1,
		Weights:        map[events.Type]float32{events.View: 1, events.Click: 2, events.Purchase: 4, events.Rating: 1},
		FlushEvents:    20_000,
		FlushInterval:  250 * time.Millisecond,
		MaxCachedUsers: 1_000_000,
		Negatives:      4,

		ItemFlushInterval: 2 * time.Millisecond,
	}
}

// Position is where an event came from. Offset is its Kafka offset.
type Position struct {
	Topic     string
	Partition int
	Offset    int64
}

// Observer sees every interaction before the models learn from it (test-then-train).
type Observer interface {
	Observe(u *Updater, e *events.Interaction)
}

type modelState struct {
	m      models.Online
	epoch  int64                  // stored epoch (featurestore.NoOffset: none yet)
	frozen bool                   // odd epoch: an installation is in progress
	parts  map[partKey]*modelPart // the model's own offsets, where stored
	users  *table
	items  *table
	global *table // one row, globalRowID; nil when GlobalDim is 0
	ex     models.Example
	visual bool // m is a models.Visual: steps get the items' features
	meta   models.ItemMetadata
}

type seenPair struct{ user, item string }

type partKey struct {
	topic     string
	partition int
}

// modelPart is a model's own offset on a partition (ModelTopic).
type modelPart struct {
	stored int64 // offset in the store
	next   int64 // offset after the last event applied to the model
}

type partState struct {
	stored  int64 // offset in the store (featurestore.NoOffset when none)
	next    int64 // offset after the last applied event
	applied int64 // events applied since the last flush
}

// Updater applies events to the models' cached rows. Create it with New, then Load.
type Updater struct {
	store  featurestore.Store
	opts   Options
	models []*modelState
	byName map[string]*modelState

	catalog       []string
	catalogIndex  map[string]int32
	catalogStored int // catalog[:catalogStored] is in the store (a landed flush wrote it)

	parts          map[partKey]*partState
	itemCounts     map[string]int64
	seen           []seenPair // interactions since the last flush, for SetSeen
	embeddings     map[string][]float32
	unflushed      int
	firstUnflushed time.Time
	restored       bool      // Restore put rows in the cache that no flush has written yet
	itemPending    bool      // an item event is not flushed yet
	firstItem      time.Time // when the first unflushed item event was applied

	itemLane   string    // SeparateItemFlushes's topic; "" when off
	laneEvents int       // item lane events applied or skipped since the last item flush
	firstLane  time.Time // when the first of them was

	// Item features for the visual models, in catalog order: row i of feats belongs to
	// catalog[i] when hasFeat[i]. featDim is 0 when no model is visual.
	featDim int
	feats   []float32
	hasFeat []bool

	observer   Observer
	rng        *rand.Rand
	pcg        *rand.PCG
	missing    []string
	missingSet map[string]struct{}
}

// ModelTopic is the pseudo-topic under which model's own next offsets on topic are stored
// when it lags behind the base offsets (after a snapshot installation).
func ModelTopic(topic, model string) string { return topic + "#" + model }

// EpochTopic is the pseudo-topic whose partition 0 holds model's epoch: every flush fences
// on it, and an installation moves it (odd while it runs, even after).
func EpochTopic(model string) string { return "epoch#" + model }

// ErrUnknownModel is returned when a model name is not served by the updater.
var ErrUnknownModel = errors.New("updater: unknown model")

// New returns an Updater of the given models over store. Call Load before applying events
// to resume from the store's state; without it the updater starts from nothing.
func New(store featurestore.Store, opts Options, ms ...models.Online) (*Updater, error) {
	if len(ms) == 0 {
		return nil, errors.New("updater: no model")
	}
	if opts.Negatives < 1 {
		return nil, errors.New("updater: Negatives must be at least 1")
	}
	if opts.FlushEvents <= 0 || opts.FlushInterval <= 0 {
		return nil, errors.New("updater: FlushEvents and FlushInterval must be positive")
	}
	if opts.ItemFlushInterval < 0 {
		return nil, errors.New("updater: ItemFlushInterval must not be negative")
	}
	if opts.ItemFlushInterval == 0 {
		opts.ItemFlushInterval = opts.FlushInterval
	}
	u := &Updater{
		store:        store,
		opts:         opts,
		byName:       make(map[string]*modelState),
		catalogIndex: make(map[string]int32),
		parts:        make(map[partKey]*partState),
		itemCounts:   make(map[string]int64),
		embeddings:   make(map[string][]float32),
		pcg:          rand.NewPCG(0, 0),
		missingSet:   make(map[string]struct{}),
	}
	u.rng = rand.New(u.pcg)
	for _, m := range ms {
		if _, dup := u.byName[m.Name()]; dup {
			return nil, fmt.Errorf("updater: model %q given twice", m.Name())
		}
		st := &modelState{
			m:     m,
			epoch: featurestore.NoOffset,
			parts: make(map[partKey]*modelPart),
			users: newTable(m.Name()+":users", m.UserDim(), false),
			items: newTable(m.Name()+":items", m.ItemDim(), true),
		}
		if m.GlobalDim() > 0 {
			st.global = newTable(m.Name()+":global", m.GlobalDim(), true)
			st.global.add(globalRowID, nil) // until Load reads the stored one
		}
		if v, ok := m.(models.Visual); ok {
			if u.featDim != 0 && v.FeatureDim() != u.featDim {
				return nil, fmt.Errorf("updater: visual models disagree on the feature dimension (%d, %d)", u.featDim, v.FeatureDim())
			}
			u.featDim, st.visual = v.FeatureDim(), true
		}
		st.meta, _ = m.(models.ItemMetadata)
		u.models = append(u.models, st)
		u.byName[m.Name()] = st
	}
	if u.featDim > 0 && opts.EmbeddingDim > 0 && opts.EmbeddingDim != u.featDim {
		return nil, fmt.Errorf("updater: EmbeddingDim %d, but the visual models read %d features", opts.EmbeddingDim, u.featDim)
	}
	return u, nil
}

// SetObserver installs o (nil removes it).
func (u *Updater) SetObserver(o Observer) { u.observer = o }

// Load drops every cached row and reads the catalog, the item and global rows and the
// stored offsets of topics from the store. Call it at start and whenever the partitions
// this updater owns change.
func (u *Updater) Load(ctx context.Context, topics ...string) error {
	u.catalog, u.catalogStored = u.catalog[:0], 0
	clear(u.catalogIndex)
	clear(u.parts)
	clear(u.itemCounts)
	clear(u.embeddings)
	u.seen = u.seen[:0]
	u.unflushed, u.restored, u.itemPending, u.laneEvents = 0, false, false, 0
	u.feats, u.hasFeat = u.feats[:0], u.hasFeat[:0]
	// A commit that a writer (this one, before a fencing or a crash) left half-applied is
	// finished first, so that the state read below matches the offsets.
	if err := u.store.Recover(ctx); err != nil {
		return fmt.Errorf("updater: load: %w", err)
	}
	cat, err := u.store.Catalog(ctx, CatalogItems)
	if err != nil {
		return fmt.Errorf("updater: load catalog: %w", err)
	}
	for _, id := range cat {
		u.catalogIndex[id] = int32(len(u.catalog))
		u.catalog = append(u.catalog, id)
		u.growFeatures()
	}
	u.catalogStored = len(u.catalog)
	if err := u.loadFeatures(ctx); err != nil {
		return err
	}
	for _, st := range u.models {
		st.users.reset()
		st.items.reset()
		if err := u.loadShared(ctx, st.items); err != nil {
			return err
		}
		if st.global != nil {
			st.global.reset()
			rows, err := u.store.Vectors(ctx, st.global.name, []string{globalRowID})
			if err != nil {
				return fmt.Errorf("updater: load %s: %w", st.global.name, err)
			}
			if rows[0] != nil && len(rows[0]) != st.global.width {
				return fmt.Errorf("updater: %s has width %d, model wants %d", st.global.name, len(rows[0]), st.global.width)
			}
			st.global.add(globalRowID, rows[0])
		}
	}
	for _, topic := range topics {
		offs, err := u.store.Offsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("updater: load offsets of %s: %w", topic, err)
		}
		for p, o := range offs {
			u.parts[partKey{topic, p}] = &partState{stored: o, next: o}
		}
	}
	return u.loadModelOffsets(ctx, topics)
}

// loadModelOffsets reads every model's epoch and own offsets.
func (u *Updater) loadModelOffsets(ctx context.Context, topics []string) error {
	for _, st := range u.models {
		name := st.m.Name()
		ep, err := u.store.Offsets(ctx, EpochTopic(name))
		if err != nil {
			return fmt.Errorf("updater: load epoch of %s: %w", name, err)
		}
		e, ok := ep[0]
		if !ok {
			// Epoch 0 is written here, not at a flush, so that updaters that load together
			// agree on it; one that loses the race (or an installation) reads the winner's.
			tx := u.store.Begin()
			tx.SetOffset(EpochTopic(name), 0, featurestore.NoOffset, 0)
			_, err := tx.Commit(ctx)
			if err != nil && !errors.Is(err, featurestore.ErrFenced) {
				return fmt.Errorf("updater: initialise epoch of %s: %w", name, err)
			}
			if ep, err = u.store.Offsets(ctx, EpochTopic(name)); err != nil {
				return fmt.Errorf("updater: load epoch of %s: %w", name, err)
			}
			if e, ok = ep[0]; !ok {
				return fmt.Errorf("updater: epoch of %s vanished", name)
			}
		}
		st.epoch = e
		st.frozen = st.epoch >= 0 && st.epoch%2 == 1
		clear(st.parts)
		for _, topic := range topics {
			offs, err := u.store.Offsets(ctx, ModelTopic(topic, name))
			if err != nil {
				return fmt.Errorf("updater: load offsets of %s for %s: %w", topic, name, err)
			}
			for p, o := range offs {
				st.parts[partKey{topic, p}] = &modelPart{stored: o, next: o}
			}
		}
	}
	return nil
}

// loadShared reads the rows of the catalog's items, in catalog order: item rows sit at their
// catalog index in every model. An item without a stored row (no delta merged yet) starts at
// zero. Rows of items that another updater added after the catalog was read are picked up
// by later merges: their deltas are relative, so a zero base loses nothing.
func (u *Updater) loadShared(ctx context.Context, t *table) error {
	const chunk = 10_000
	for lo := 0; lo < len(u.catalog); lo += chunk {
		ids := u.catalog[lo:min(lo+chunk, len(u.catalog))]
		rows, err := u.store.Vectors(ctx, t.name, ids)
		if err != nil {
			return fmt.Errorf("updater: load %s: %w", t.name, err)
		}
		for k, id := range ids {
			if rows[k] != nil && len(rows[k]) != t.width {
				return fmt.Errorf("updater: %s row %q has width %d, model wants %d", t.name, id, len(rows[k]), t.width)
			}
			t.add(id, rows[k])
		}
	}
	return nil
}

// growFeatures adds an empty feature row for the newest catalog item (visual models only).
func (u *Updater) growFeatures() {
	if u.featDim == 0 {
		return
	}
	u.feats = append(u.feats, make([]float32, u.featDim)...)
	u.hasFeat = append(u.hasFeat, false)
}

// loadFeatures reads the stored embeddings of the catalog's items (visual models only). A
// stored embedding that is not finite or not FeatureDim long is refused: ApplyItem never
// writes one, so the store holds someone else's data.
func (u *Updater) loadFeatures(ctx context.Context) error {
	if u.featDim == 0 {
		return nil
	}
	const chunk = 10_000
	for lo := 0; lo < len(u.catalog); lo += chunk {
		ids := u.catalog[lo:min(lo+chunk, len(u.catalog))]
		rows, err := u.store.Vectors(ctx, TableEmbeddings, ids)
		if err != nil {
			return fmt.Errorf("updater: load %s: %w", TableEmbeddings, err)
		}
		for k, v := range rows {
			if v == nil {
				continue
			}
			if err := u.checkFeatures(v); err != nil {
				return fmt.Errorf("updater: stored embedding of %q: %w", ids[k], err)
			}
			u.setFeatures(int32(lo+k), v)
		}
	}
	return nil
}

// checkFeatures validates an embedding for the visual models: FeatureDim values, all finite.
func (u *Updater) checkFeatures(v []float32) error {
	if len(v) != u.featDim {
		return &events.DecodeError{Reason: events.ReasonDimension,
			Detail: fmt.Sprintf("embedding has %d values, the visual models read %d", len(v), u.featDim)}
	}
	for k, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return &events.DecodeError{Reason: events.ReasonNonFinite, Detail: fmt.Sprintf("embedding value %d is %v", k, x)}
		}
	}
	return nil
}

func (u *Updater) setFeatures(i int32, v []float32) {
	copy(u.feats[int(i)*u.featDim:(int(i)+1)*u.featDim], v)
	u.hasFeat[i] = true
}

// features returns catalog item i's features, nil when it has none (or no model is visual).
func (u *Updater) features(i int32) []float32 {
	if u.featDim == 0 || !u.hasFeat[i] {
		return nil
	}
	off := int(i) * u.featDim
	return u.feats[off : off+u.featDim : off+u.featDim]
}

// Offset returns the offset to resume topic/partition from: the lowest of the base offset
// and the own offsets of the models that lag behind it (not frozen ones), or
// featurestore.NoOffset when nothing was consumed.
func (u *Updater) Offset(topic string, partition int) int64 {
	k := partKey{topic, partition}
	off := featurestore.NoOffset
	if p, ok := u.parts[k]; ok {
		off = p.next
	}
	for _, st := range u.models {
		if mp, ok := st.parts[k]; ok && !st.frozen && mp.next < off {
			off = mp.next
		}
	}
	return off
}

// applies tells whether the event at pos reaches st; baseNew is whether it is at or past the
// base next offset.
func (u *Updater) applies(st *modelState, pos Position, baseNew bool) bool {
	if st.frozen {
		return false
	}
	if mp, ok := st.parts[partKey{pos.Topic, pos.Partition}]; ok {
		return pos.Offset >= mp.next
	}
	return baseNew
}

// advanceModels moves the own offsets of the models that the event at pos reached past it.
func (u *Updater) advanceModels(pos Position) {
	k := partKey{pos.Topic, pos.Partition}
	for _, st := range u.models {
		if mp, ok := st.parts[k]; ok && !st.frozen && pos.Offset >= mp.next {
			mp.next = pos.Offset + 1
		}
	}
}

func (u *Updater) part(pos Position) *partState {
	k := partKey{pos.Topic, pos.Partition}
	p, ok := u.parts[k]
	if !ok {
		p = &partState{stored: featurestore.NoOffset, next: featurestore.NoOffset}
		u.parts[k] = p
	}
	return p
}

// Prefetch reads the stored rows of the users of a batch that are not cached yet, one store
// round trip per model. Apply works without it, one round trip per missing user.
func (u *Updater) Prefetch(ctx context.Context, batch []events.Interaction) error {
	for _, st := range u.models {
		u.missing = u.missing[:0]
		clear(u.missingSet)
		for i := range batch {
			id := batch[i].User
			if _, dup := u.missingSet[id]; !dup && st.users.row(id) == nil {
				u.missingSet[id] = struct{}{}
				u.missing = append(u.missing, id)
			}
		}
		if err := u.fetchUsers(ctx, st, u.missing); err != nil {
			return err
		}
	}
	return nil
}

func (u *Updater) fetchUsers(ctx context.Context, st *modelState, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := u.store.Vectors(ctx, st.users.name, ids)
	if err != nil {
		return fmt.Errorf("updater: read %s: %w", st.users.name, err)
	}
	for k, id := range ids {
		v := rows[k]
		if v == nil {
			i := st.users.add(id, nil)
			u.seed(st.m.Name(), id, 0)
			st.m.InitUser(st.users.at(i), u.rng)
			st.users.markDirty(i)
			continue
		}
		if len(v) != st.users.width {
			return fmt.Errorf("updater: %s row %q has width %d, model wants %d", st.users.name, id, len(v), st.users.width)
		}
		st.users.add(id, v)
	}
	return nil
}

// seed reseeds the shared generator from the updater's seed, a string and a number.
func (u *Updater) seed(s string, id string, n int64) {
	a := fnv64(s, uint64(u.opts.Seed))
	b := fnv64(id, a^uint64(n))
	u.pcg.Seed(a, b)
}

// fnv64 is FNV-1a over s, started from h; stable across processes.
func fnv64(s string, h uint64) uint64 {
	h ^= 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Apply learns from one validated interaction at pos. It returns an error only when the
// store cannot be read; the event then counts as not applied.
func (u *Updater) Apply(ctx context.Context, e *events.Interaction, pos Position) error {
	p := u.part(pos)
	baseNew := pos.Offset >= p.next
	reaches := baseNew
	for _, st := range u.models {
		if !u.applies(st, pos, baseNew) {
			continue
		}
		reaches = true
		if st.users.row(e.User) == nil {
			if err := u.fetchUsers(ctx, st, []string{e.User}); err != nil {
				return err
			}
		}
	}
	if !reaches {
		return nil // every model and the bookkeeping have it already
	}
	if u.observer != nil && baseNew {
		u.observer.Observe(u, e)
	}
	item := u.ensureItem(e.Item)
	positive := e.Type != events.Rating || e.Value >= u.opts.MinPositiveRating
	weight := u.opts.Weights[e.Type]
	if e.Type != events.Rating && e.HasValue && e.Value > 0 {
		weight *= e.Value
	}
	for _, st := range u.models {
		if !u.applies(st, pos, baseNew) {
			continue
		}
		ui := st.users.index[e.User]
		ex := &st.ex
		ex.User = st.users.at(ui)
		ex.Item = st.items.at(item)
		ex.Neg = nil
		if st.global != nil {
			ex.Global = st.global.at(0)
		}
		ex.Weight = weight
		ex.Value = 1
		ex.ItemFeat, ex.NegFeat = nil, nil
		if st.visual {
			ex.ItemFeat = u.features(item)
		}
		if st.m.NeedsNegative() {
			if !positive {
				continue
			}
			u.seed(st.m.Name(), pos.Topic, int64(pos.Partition)<<40^pos.Offset)
			for n := 0; n < u.opts.Negatives; n++ {
				neg, ok := u.sampleNegative(item)
				if !ok {
					break // a catalog of one item has no negative yet
				}
				ex.Neg = st.items.at(neg)
				if st.visual {
					ex.NegFeat = u.features(neg)
				}
				st.m.Step(ex)
			}
			st.users.markDirty(ui)
			continue
		} else {
			// A pointwise model without sampled negatives regresses on explicit values.
			if e.Type != events.Rating {
				continue
			}
			ex.Value = e.Value
		}
		st.m.Step(ex)
		st.users.markDirty(ui)
	}
	u.advanceModels(pos)
	if baseNew {
		u.itemCounts[e.Item]++
		u.seen = append(u.seen, seenPair{e.User, e.Item})
		p.next = pos.Offset + 1
		p.applied++
	}
	u.noteUnflushed()
	return nil
}

// sampleNegative draws an item other than positive uniformly from the catalog. The caller
// seeds the generator from the event's position, so that a replay draws the same items.
func (u *Updater) sampleNegative(positive int32) (int32, bool) {
	n := len(u.catalog)
	if n < 2 {
		return 0, false
	}
	for {
		j := int32(u.rng.IntN(n))
		if j != positive {
			return j, true
		}
	}
}

// ensureItem returns the catalog index of id, adding it (and zero rows in every model) on
// first sight. Item rows are laid out in catalog order in every model's table.
func (u *Updater) ensureItem(id string) int32 {
	if i, ok := u.catalogIndex[id]; ok {
		return i
	}
	i := int32(len(u.catalog))
	u.catalogIndex[id] = i
	u.catalog = append(u.catalog, id)
	u.growFeatures()
	for _, st := range u.models {
		st.items.add(id, nil)
	}
	return i
}

// AddItem makes id a candidate (with zero rows) unless it is one already. Unlike ApplyItem it
// records nothing in the store by itself; the item is written with the next flush.
func (u *Updater) AddItem(id string) { u.ensureItem(id) }

// ApplyItem records a validated item event at pos: the embedding is stored and the item
// joins the catalog, so it is a candidate from now on; the visual models score it by its
// features at once, and a flush is due within ItemFlushInterval. Models that keep item
// metadata (models.ItemMetadata) set it in the item's row. An embedding of the wrong
// dimension, or (for the visual models) with a NaN or infinite value, is refused with an
// *events.DecodeError before anything changes: the caller dead-letters it.
func (u *Updater) ApplyItem(it *events.Item, pos Position) error {
	if u.opts.EmbeddingDim > 0 && len(it.Embedding) != u.opts.EmbeddingDim {
		return &events.DecodeError{Reason: events.ReasonDimension,
			Detail: fmt.Sprintf("embedding has %d values, want %d", len(it.Embedding), u.opts.EmbeddingDim)}
	}
	if u.featDim > 0 {
		if err := u.checkFeatures(it.Embedding); err != nil {
			return err
		}
	}
	// The catalog and the features are idempotent; model rows (metadata) and the base
	// bookkeeping follow the same offset rule as interactions.
	baseNew := pos.Offset >= u.part(pos).next
	i := u.ensureItem(it.Item)
	if u.featDim > 0 {
		u.setFeatures(i, it.Embedding)
	}
	for _, st := range u.models {
		if st.meta != nil && u.applies(st, pos, baseNew) {
			st.meta.SetItemMetadata(st.items.at(i), it.Metadata)
		}
	}
	u.Skip(pos)
	if !baseNew {
		return nil
	}
	u.embeddings[it.Item] = append([]float32(nil), it.Embedding...)
	if !u.inLane(pos) && !u.itemPending {
		u.itemPending, u.firstItem = true, time.Now()
	}
	return nil
}

// Skip advances pos's partition past an event that changes no parameter (a dead-lettered
// message), so that its offset is committed with the next flush.
func (u *Updater) Skip(pos Position) {
	u.advanceModels(pos)
	if p := u.part(pos); pos.Offset >= p.next {
		p.next = pos.Offset + 1
		p.applied++
	}
	if !u.inLane(pos) {
		u.noteUnflushed()
		return
	}
	if u.laneEvents == 0 {
		u.firstLane = time.Now()
	}
	u.laneEvents++
}

// SeparateItemFlushes makes topic, the item events' topic, an item lane: from now on its
// events and offsets are committed by StartItemFlush only, in small transactions that do not
// wait for a flush of interactions. It returns false, and changes nothing, when a model
// keeps item metadata in its item rows (DeepStyle's category): those rows are shared with
// the interactions' flushes, so the item events ride them.
func (u *Updater) SeparateItemFlushes(topic string) bool {
	for _, st := range u.models {
		if st.meta != nil {
			return false
		}
	}
	u.itemLane = topic
	return true
}

// inLane tells whether the event at pos belongs to the item lane.
func (u *Updater) inLane(pos Position) bool { return u.itemLane != "" && pos.Topic == u.itemLane }

// ItemFlushDue tells whether an item flush is due now (never without an item lane).
func (u *Updater) ItemFlushDue(now time.Time) bool {
	return u.laneEvents > 0 && now.Sub(u.firstLane) >= u.opts.ItemFlushInterval
}

// StartItemFlush builds the transaction of the item lane's events since the last item
// flush: the catalog's new items, their embeddings and the lane topic's offsets (base and
// the models' own), fenced on the models' epochs; nil when there is none. At most one item
// flush may be in flight, beside at most one StartFlush one; finish it with FinishFlush.
func (u *Updater) StartItemFlush() *PendingFlush {
	if u.laneEvents == 0 {
		return nil
	}
	f := &PendingFlush{tx: u.store.Begin(), events: u.laneEvents}
	for _, st := range u.models {
		if st.epoch != featurestore.NoOffset { // a check only: unknown epochs are StartFlush's
			f.tx.SetOffset(EpochTopic(st.m.Name()), 0, st.epoch, st.epoch)
		}
	}
	f.catalogEnd = u.flushCatalog(f.tx, true)
	u.flushOffsets(f.tx, true)
	u.laneEvents = 0
	return f
}

// flushCatalog adds to tx the catalog's items not known to be stored and, if embeddings, the
// new embeddings; it returns the catalog length tx covers. The whole unstored part of the
// catalog goes, also items first seen in interactions, and again in a flush that starts
// while another is in flight: appending is idempotent, so whichever lands first, the store
// keeps the catalog in the updater's order. Embeddings go with the item events' flush only,
// so that a later embedding of an item never lands before an earlier one.
func (u *Updater) flushCatalog(tx featurestore.Tx, embeddings bool) int {
	for _, id := range u.catalog[u.catalogStored:] {
		tx.AppendCatalog(CatalogItems, id)
	}
	if embeddings {
		for id, v := range u.embeddings {
			tx.SetVector(TableEmbeddings, id, v)
		}
		clear(u.embeddings)
	}
	return len(u.catalog)
}

// flushOffsets adds the offsets (base, and the models' own) of the item lane's topic
// (lane) or of every other topic (!lane) to tx, with the applied counters.
func (u *Updater) flushOffsets(tx featurestore.Tx, lane bool) {
	for k, p := range u.parts {
		if p.applied == 0 || (u.itemLane != "" && k.topic == u.itemLane) != lane {
			continue
		}
		tx.IncrCounter(counterApplied+k.topic, fmt.Sprint(k.partition), p.applied)
		tx.SetOffset(k.topic, k.partition, p.stored, p.next)
		p.stored, p.applied = p.next, 0
	}
	for _, st := range u.models {
		for k, mp := range st.parts {
			if mp.next != mp.stored && (u.itemLane != "" && k.topic == u.itemLane) == lane {
				tx.SetOffset(ModelTopic(k.topic, st.m.Name()), k.partition, mp.stored, mp.next)
				mp.stored = mp.next
			}
		}
	}
}

func (u *Updater) noteUnflushed() {
	if u.unflushed == 0 {
		u.firstUnflushed = time.Now()
	}
	u.unflushed++
}

// FlushDue tells whether the flush policy asks for a flush now.
func (u *Updater) FlushDue(now time.Time) bool {
	return u.unflushed >= u.opts.FlushEvents ||
		(u.unflushed > 0 && now.Sub(u.firstUnflushed) >= u.opts.FlushInterval) ||
		(u.itemPending && now.Sub(u.firstItem) >= u.opts.ItemFlushInterval)
}

// Unflushed is the number of events applied or skipped since the last flush.
func (u *Updater) Unflushed() int { return u.unflushed }

// Flush writes every change since the last flush and the offsets it covers, and waits for
// it: StartItemFlush (with an item lane) and StartFlush, each committed and finished.
func (u *Updater) Flush(ctx context.Context) error {
	if f := u.StartItemFlush(); f != nil {
		if err := u.FinishFlush(f, f.Commit(ctx)); err != nil {
			return err
		}
	}
	f := u.StartFlush()
	if f == nil {
		return nil
	}
	return u.FinishFlush(f, f.Commit(ctx))
}

// PendingFlush is a transaction built by StartFlush or StartItemFlush. Its Commit may run on
// another goroutine while the Updater goes on applying events; at most one of each kind may
// be in flight.
type PendingFlush struct {
	tx         featurestore.Tx
	order      []mergedRow
	events     int
	catalogEnd int // the flush writes catalog[:catalogEnd]
	rows       [][]float32
}

type mergedRow struct {
	t *table
	i int32
}

// Events is the number of events (applied or skipped) whose effects the flush commits.
func (f *PendingFlush) Events() int { return f.events }

// Commit sends the transaction. It touches nothing of the Updater.
func (f *PendingFlush) Commit(ctx context.Context) error {
	rows, err := f.tx.Commit(ctx)
	if err != nil {
		return fmt.Errorf("updater: flush: %w", err)
	}
	if len(rows) != len(f.order) {
		return fmt.Errorf("updater: flush: store returned %d merged rows, want %d", len(rows), len(f.order))
	}
	f.rows = rows
	return nil
}

// StartFlush builds the transaction of every change since the last flush and the offsets it
// covers, and returns it (nil when there is nothing to flush). From here on the Updater
// assumes that it lands: shared rows are rebased on the values they will have, so that
// events applied meanwhile count towards the next flush only.
func (u *Updater) StartFlush() *PendingFlush {
	if u.unflushed == 0 && !u.restored {
		return nil
	}
	u.restored = false
	f := &PendingFlush{tx: u.store.Begin(), events: u.unflushed}
	for _, st := range u.models {
		u.fenceModel(f.tx, st)
		if st.frozen {
			// An installation owns the model's rows: write none, and forget cached changes
			// (a Load follows the installation's end anyway).
			st.users.clean()
			for _, t := range []*table{st.items, st.global} {
				if t != nil {
					for i := range t.ids {
						t.rebase(int32(i), t.at(int32(i)))
					}
				}
			}
			continue
		}
		if st.users.nDirty > 0 {
			for i, d := range st.users.dirty {
				if d {
					f.tx.SetVector(st.users.name, st.users.ids[i], st.users.at(int32(i)))
				}
			}
			st.users.clean()
		}
		for _, t := range []*table{st.items, st.global} {
			if t == nil {
				continue
			}
			for i := range t.ids {
				if t.changed(int32(i)) {
					f.tx.MergeVector(t.name, t.ids[i], t.baseAt(int32(i)), t.at(int32(i)))
					f.order = append(f.order, mergedRow{t, int32(i)})
					t.rebase(int32(i), t.at(int32(i)))
				}
			}
		}
	}
	f.catalogEnd = u.flushCatalog(f.tx, u.itemLane == "")
	for id, n := range u.itemCounts {
		f.tx.IncrCounter(CounterItemEvents, id, n)
	}
	if len(u.seen) > 0 {
		byUser := make(map[string][]string)
		for _, p := range u.seen {
			byUser[p.user] = append(byUser[p.user], p.item)
		}
		for user, items := range byUser {
			f.tx.AddToSet(SetSeen, user, items...)
		}
		u.seen = u.seen[:0]
	}
	u.flushOffsets(f.tx, false)
	clear(u.itemCounts)
	u.unflushed, u.itemPending = 0, false
	return f
}

// fenceModel adds st's epoch check to tx: the commit fails with featurestore.ErrFenced if an
// installation moved the epoch since Load. An updater that never loaded (epoch unknown)
// initialises it to 0, fenced like any other write.
func (u *Updater) fenceModel(tx featurestore.Tx, st *modelState) {
	name := EpochTopic(st.m.Name())
	if st.epoch == featurestore.NoOffset {
		tx.SetOffset(name, 0, featurestore.NoOffset, 0)
		st.epoch = 0
		return
	}
	tx.SetOffset(name, 0, st.epoch, st.epoch)
}

// FinishFlush completes f on the Updater's goroutine; err is what f.Commit returned. After
// a success, other updaters' deltas that the merge brought are added to the shared rows (a
// single writer's merge returns exactly the assumed values, so nothing changes then). After
// an error the cached state is ahead of the store: the caller must Load before applying
// more events. A later flush could not land anyway: its offsets' prev values would not
// match the store (ErrFenced).
func (u *Updater) FinishFlush(f *PendingFlush, err error) error {
	if err != nil {
		return err
	}
	u.catalogStored = max(u.catalogStored, f.catalogEnd)
	for k, m := range f.order {
		m.t.merge(m.i, f.rows[k])
	}
	for _, st := range u.models {
		if len(st.users.ids) > u.opts.MaxCachedUsers {
			st.users.dropClean()
		}
	}
	return nil
}

// Models returns the names of the models, in the order given to New.
func (u *Updater) Models() []string {
	names := make([]string, len(u.models))
	for i, st := range u.models {
		names[i] = st.m.Name()
	}
	return names
}

// Catalog returns the known items in catalog order. The slice is shared: do not modify it,
// and do not keep it across Apply calls.
func (u *Updater) Catalog() []string { return u.catalog }

// ItemIndex returns id's position in Catalog.
func (u *Updater) ItemIndex(id string) (int32, bool) {
	i, ok := u.catalogIndex[id]
	return i, ok
}

// ScoreAll writes model's score of user for every catalog item into dst (grown as needed)
// and returns it; ok is false when the user has no row yet. Visual models score each item
// with its features (models.Visual.ScoreFeatures).
func (u *Updater) ScoreAll(model, user string, dst []float32) (scores []float32, ok bool, err error) {
	st, found := u.byName[model]
	if !found {
		return dst, false, fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	uv := st.users.row(user)
	if uv == nil {
		return dst, false, nil
	}
	var g []float32
	if st.global != nil {
		g = st.global.at(0)
	}
	dst = dst[:0]
	for i := range u.catalog {
		dst = append(dst, st.m.Score(uv, st.items.at(int32(i)), g))
	}
	if st.visual {
		// Score + v_u·f_i (models.Visual.FeatureWeights): one F-vector per call, one dot
		// product per item with features; exact, no projection cache.
		v := make([]float32, u.featDim)
		st.m.(models.Visual).FeatureWeights(v, uv, g)
		for i := range dst {
			if f := u.features(int32(i)); f != nil {
				dst[i] = clampScore(float64(dst[i]) + dot64(v, f))
			}
		}
	}
	return dst, true, nil
}

// Rows returns copies of model's cached user, item and global rows keyed by id (the global
// row under "g"), for tests and snapshots.
func (u *Updater) Rows(model string) (users, items map[string][]float32, global []float32, err error) {
	st, found := u.byName[model]
	if !found {
		return nil, nil, nil, fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	copyRows := func(t *table) map[string][]float32 {
		out := make(map[string][]float32, len(t.ids))
		for i, id := range t.ids {
			out[id] = append([]float32(nil), t.at(int32(i))...)
		}
		return out
	}
	users, items = copyRows(st.users), copyRows(st.items)
	if st.global != nil {
		global = append([]float32(nil), st.global.at(0)...)
	}
	return users, items, global, nil
}

// Snapshot returns model's cached state as a snapshot: the tables "users", "items" and (for
// models with one) "global", each row with its external id, plus the offsets the state
// covers in Meta ("offset:<topic>:<partition>"). Flush first for the stored state; the
// snapshot shares nothing with the updater.
func (u *Updater) Snapshot(model string) (models.Snapshot, error) {
	st, found := u.byName[model]
	if !found {
		return models.Snapshot{}, fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	snap := models.Snapshot{Model: model, Version: 1, Meta: map[string]string{}}
	for name, t := range map[string]*table{"users": st.users, "items": st.items, "global": st.global} {
		if t == nil {
			continue
		}
		snap.Tables = append(snap.Tables, models.Table{Name: name, Rows: len(t.ids), Cols: t.width,
			Data: append([]float32(nil), t.data...), IDs: append([]string(nil), t.ids...)})
	}
	slices.SortFunc(snap.Tables, func(a, b models.Table) int { return strings.Compare(a.Name, b.Name) })
	for k, p := range u.parts {
		next := p.next
		if mp, ok := st.parts[k]; ok {
			next = mp.next // a lagging model covers less than the base
		}
		snap.Meta[fmt.Sprintf("offset:%s:%d", k.topic, k.partition)] = strconv.FormatInt(next, 10)
	}
	return snap, nil
}

// Restore loads a snapshot written by Snapshot (for example by a batch retrain) into the
// cache, as the starting point of further online learning. User rows are marked for
// writing; item and global rows keep their stored base, so the next flush merges the
// difference into the store like any other delta. Items new to the catalog join it in the
// snapshot's order. Offsets in the snapshot are not adopted: the consumer's stored offsets
// stay authoritative. Load drops restored rows that were not flushed: to start consumers
// from a snapshot, Restore into an updater over their store and Flush; they Load it.
func (u *Updater) Restore(snap models.Snapshot) error {
	st, found := u.byName[snap.Model]
	if !found {
		return fmt.Errorf("%w %q: the snapshot's model is not one of %v", ErrUnknownModel, snap.Model, u.Models())
	}
	for _, tb := range snap.Tables {
		var t *table
		switch tb.Name {
		case "users":
			t = st.users
		case "items":
			t = st.items
		case "global":
			t = st.global
		}
		if t == nil || tb.Cols != t.width || len(tb.IDs) != tb.Rows || len(tb.Data) != tb.Rows*tb.Cols {
			return fmt.Errorf("updater: snapshot table %s/%s (%d×%d) does not fit the model", snap.Model, tb.Name, tb.Rows, tb.Cols)
		}
		for r, id := range tb.IDs {
			row := tb.Data[r*tb.Cols : (r+1)*tb.Cols]
			switch tb.Name {
			case "users":
				i, ok := t.index[id]
				if !ok {
					i = t.add(id, nil)
				}
				copy(t.at(i), row)
				t.markDirty(i)
			case "items":
				copy(t.at(u.ensureItem(id)), row)
			default:
				copy(t.at(0), row)
			}
		}
	}
	u.restored = true // the next flush writes the restored rows, even without events
	return nil
}

// dot64 is Σ a·b in float64 (len(b) >= len(a)).
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for k, x := range a {
		s += float64(x) * float64(b[k])
	}
	return s
}

// clampScore converts a score to float32, clamped to ±MaxFloat32 (NaN: 0).
func clampScore(v float64) float32 {
	switch {
	case v > math.MaxFloat32:
		return math.MaxFloat32
	case v < -math.MaxFloat32:
		return -math.MaxFloat32
	case v == v:
		return float32(v)
	}
	return 0
}
