// Package ranking keeps, per served model, the item vectors of every catalog item in memory
// as one dense float32 matrix (models.Servable's ItemVector) and ranks all items for a user
// exactly, with blocked matrix–vector products across cores. It stays in sync with the
// feature store while updaters write to it.
//
// # Snapshots: versioned, no global stop
//
// Everything a request reads — the catalog, each model's item matrix and global row, the
// image embeddings, the popularity ranking — is one immutable snapshot behind an atomic
// pointer. Run's goroutine is the only writer: it builds the next snapshot beside the served
// one and publishes it with one pointer store. Matrices are split in blocks of 1024 rows; a
// changed row copies only its block (copy-on-write), and new catalog items are appended to the
// last block (copied) or to new blocks. A request loads the pointer once and ranks against
// that snapshot to the end, so readers never wait for a sync and never see a half-applied
// one; Version advances with every publication.
//
// # Freshness
//
// Run polls the store every SyncInterval (default 20 ms): store.Changed on "<model>:items"
// and on "item_emb" (changed rows are re-read and their item vectors recomputed), and
// store.CatalogFrom on the catalog (new items join with their stored rows at once). Between
// two polls it looks at the catalog alone every NewItemsInterval (default 2 ms), so that a
// new item is served within milliseconds of its flush, without waiting for the re-reading
// of the rows that a flush of interactions changed: a full poll reads on a goroutine of its
// own, and only its apply (building and publishing the snapshot) runs on Run's. A change
// of a model's global row ("<model>:global", e.g. VBPR's E) changes every item vector, so it
// is applied — all item vectors recomputed — at most once every GlobalRefresh (default 1 s):
// the served global row lags the store's by less than GlobalRefresh + SyncInterval, and until
// then every item vector and user vector of the model is computed with the previous global
// row, so scores stay consistent (Score of the model with the served global row). Item
// interaction counts ("item_events", for Popular and ItemInfo) are re-read every
// PopularRefresh (default 5 s). Every publication is logged for followers (ItemChanges:
// the items whose own vectors changed, new ones included, and whether a global row was
// applied, which lists the items that came with it too) and wakes the waiters of Updated.
// The recomputation after a global row is split by blocks over Workers goroutines. User
// rows are not mirrored: each request reads the user's row from the store (one HMGET), so a
// user's update is visible to the next request.
//
// # Speed
//
// Item matrices are stored column-major within each block and scored by AVX2/AVX-512 FMA
// kernels (kernel.go; gonum's BLAS where the CPU lacks them), the blocks split over Workers
// goroutines; rankings that arrive while others run are batched so that each block is read
// once per batch (recommend.go). Measured figures: docs/benchmarks.md.
//
// # Exactness
//
// A score is dot(UserVector(user, global), ItemVector(item, global, embedding)) in float32,
// the same sum for every item whichever path computed it (Recommend, Scores). Rankings are
// exact: every candidate is scored; ties are broken by catalog order (the earlier item first).
package ranking

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/updater"
)

// Errors returned by the Index; test them with errors.Is.
var (
	ErrUnknownModel    = errors.New("ranking: unknown model")
	ErrUnknownUser     = errors.New("ranking: unknown user")
	ErrUnknownItem     = errors.New("ranking: unknown item")
	ErrNotReady        = errors.New("ranking: index not loaded yet")
	ErrNoEmbedding     = errors.New("ranking: item has no image embedding")
	ErrInvalidArgument = errors.New("ranking: invalid argument")
)

// Options configure an Index. Zero fields take the defaults of DefaultOptions.
type Options struct {
	// SyncInterval is how often Run polls the store for changes (default 20 ms).
	SyncInterval time.Duration
	// NewItemsInterval is how often Run looks for items new to the catalog between two
	// polls, and serves them at once (default 2 ms; one ZRANGE when there is none).
	NewItemsInterval time.Duration
	// GlobalRefresh is the least time between two recomputations of all item vectors of a
	// model after its global row changed (default 1 s): the bound on the served global row's
	// staleness, beyond SyncInterval.
	GlobalRefresh time.Duration
	// PopularRefresh is how often the interaction counts behind Popular are re-read
	// (default 5 s).
	PopularRefresh time.Duration
	// FreshItems is how many of the newest catalog items get a freshness bonus in Popular
	// (default 100).
	FreshItems int
	// Workers is the number of goroutines one ranking is split over (default GOMAXPROCS).
	Workers int
	// Logger receives sync errors (default: none).
	Logger *zap.Logger
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		SyncInterval:     20 * time.Millisecond,
		NewItemsInterval: 2 * time.Millisecond,
		GlobalRefresh:    time.Second,
		PopularRefresh:   5 * time.Second,
		FreshItems:       100,
		Workers:          runtime.GOMAXPROCS(0),
		Logger:           zap.NewNop(),
	}
}

// Scored is an item and its score.
type Scored struct {
	Item  string
	Score float32
}

// RecOptions refine Recommend.
type RecOptions struct {
	// ExcludeSeen leaves out the items the user interacted with (the store's set "seen").
	ExcludeSeen bool
	// Candidates, when not nil, restricts the ranking to these items (duplicates count once;
	// an id not in the catalog fails the call with ErrUnknownItem).
	Candidates []string
}

// ItemInfo describes a catalog item.
type ItemInfo struct {
	ID           string
	Position     int   // catalog position (order of first sight)
	Events       int64 // interactions, as of the last popularity refresh
	HasEmbedding bool  // whether an image embedding is known for it
}

// served is one model's part of a snapshot.
type served struct {
	global []float32 // the global row the item vectors were computed with (nil: none)
	items  *matrix   // ServeDim columns, one row per catalog item
}

// snapshot is the immutable state that requests read.
type snapshot struct {
	n       int
	ids     []string  // catalog, len n; elements are never changed (appends go beyond n)
	pos     *sync.Map // id → int32 position; shared by the snapshots of one load, only added to
	models  []*served // in the order of New's models
	emb     *matrix   // image embeddings; dim 0 until the first one is seen
	events  []int64   // per position, as of the last popularity refresh (may be shorter than n)
	popular []entry   // every item at the last popularity refresh, best first
}

// Index is the in-memory ranking index. Create it with New and start Run; requests may run
// concurrently with each other and with Run from any goroutine, and fail with ErrNotReady
// until the first full load has finished.
type Index struct {
	store  featurestore.Store
	opts   Options
	ms     []models.Servable
	names  []string
	byName map[string]int

	snap    atomic.Pointer[snapshot]
	version atomic.Uint64
	tasks   chan *part // idle ranking workers receive here (unbuffered)
	jobs    sync.Pool  // *job
	batches batches
	running atomic.Bool

	logMu   sync.Mutex // orders publications with the change log
	changes []change
	updated chan struct{} // closed at the next publication (nil: nobody waits)
}

// New returns an index of the models ms over store. Each model's name selects its tables.
func New(store featurestore.Store, ms []models.Servable, opts Options) (*Index, error) {
	if store == nil {
		return nil, errors.New("ranking: nil store")
	}
	if len(ms) == 0 {
		return nil, errors.New("ranking: no model")
	}
	def := DefaultOptions()
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = def.SyncInterval
	}
	if opts.NewItemsInterval <= 0 {
		opts.NewItemsInterval = def.NewItemsInterval
	}
	if opts.GlobalRefresh <= 0 {
		opts.GlobalRefresh = def.GlobalRefresh
	}
	if opts.PopularRefresh <= 0 {
		opts.PopularRefresh = def.PopularRefresh
	}
	if opts.FreshItems <= 0 {
		opts.FreshItems = def.FreshItems
	}
	if opts.Workers <= 0 {
		opts.Workers = def.Workers
	}
	if opts.Logger == nil {
		opts.Logger = def.Logger
	}
	x := &Index{store: store, opts: opts, ms: ms, byName: make(map[string]int), tasks: make(chan *part)}
	for i, m := range ms {
		if _, dup := x.byName[m.Name()]; dup {
			return nil, fmt.Errorf("ranking: model %q given twice", m.Name())
		}
		x.byName[m.Name()] = i
		x.names = append(x.names, m.Name())
	}
	return x, nil
}

// Run loads the whole state, then polls the store for changes every SyncInterval until ctx
// is done, and returns ctx's error then. It returns early only when the first load fails. A
// failed poll is logged and retried at the next tick: the index keeps serving what it has.
// Run must be called once.
func (x *Index) Run(ctx context.Context) error {
	if x.running.Swap(true) {
		return errors.New("ranking: Run called twice")
	}
	s := newSyncer(x)
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("ranking: first load: %w", err)
	}
	var wg sync.WaitGroup
	for w := 1; w < x.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.work(ctx)
		}()
	}
	defer wg.Wait()
	t := time.NewTicker(x.opts.SyncInterval)
	defer t.Stop()
	fresh := time.NewTicker(x.opts.NewItemsInterval)
	defer fresh.Stop()
	// A full poll's reads (thousands of changed rows after a flush, each read queued behind
	// the updater's commits in Redis) run on a goroutine of their own, so that the looks for
	// new items go on meanwhile; its apply runs here, like every other change of state.
	type result struct {
		r   *reading
		err error
	}
	reads := make(chan result, 1)
	reading := false
	var rwg sync.WaitGroup
	defer rwg.Wait()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if !reading {
				reading = true
				base, since := x.snap.Load(), maps.Clone(s.since)
				rwg.Add(1)
				go func() {
					defer rwg.Done()
					r, err := s.read(ctx, base, since, false)
					reads <- result{r, err}
				}()
			}
		case res := <-reads:
			reading = false
			if err = res.err; err == nil {
				err = s.apply(ctx, res.r)
			}
		case <-fresh.C:
			err = s.poll(ctx, true)
		}
		if err != nil && ctx.Err() == nil {
			x.opts.Logger.Warn("ranking: sync failed; serving the previous state", zap.Error(err))
		}
	}
}

// Ready tells whether the first full load has finished.
func (x *Index) Ready() bool { return x.snap.Load() != nil }

// Models returns the names of the served models, in the order given to New.
func (x *Index) Models() []string { return append([]string(nil), x.names...) }

// Version advances whenever the served state changes (0 before the first load).
func (x *Index) Version() uint64 { return x.version.Load() }

// Len returns the number of catalog items served (0 before the first load).
func (x *Index) Len() int {
	if s := x.snap.Load(); s != nil {
		return s.n
	}
	return 0
}

// publish makes s the served snapshot and logs which item vectors it changed: per model,
// the positions in changed (rows, embeddings and new items), and whether a new global row
// was applied (global[model]: every vector changed by it as well). A nil global with
// reload marks a full load: everything may have changed. Waiters of Updated are woken.
func (x *Index) publish(s *snapshot, changed [][]int32, global []bool, reload bool) {
	x.logMu.Lock()
	defer x.logMu.Unlock()
	x.snap.Store(s)
	v := x.version.Add(1)
	x.changes = append(x.changes, change{version: v, items: changed, global: global, reload: reload})
	if len(x.changes) > changeLogLen {
		x.changes = append(x.changes[:0], x.changes[len(x.changes)-changeLogLen/2:]...)
	}
	if x.updated != nil {
		close(x.updated)
		x.updated = nil
	}
}

// Updated returns a channel that is closed at the next publication (Version advances), so a
// follower of ItemChanges can wait for it instead of polling. Each call may return a new
// channel: call it again after every wake-up.
func (x *Index) Updated() <-chan struct{} {
	x.logMu.Lock()
	defer x.logMu.Unlock()
	if x.updated == nil {
		x.updated = make(chan struct{})
	}
	return x.updated
}

// changeLogLen bounds the change log: a reader further behind is told that every item
// changed.
const changeLogLen = 4096

// change is one publication's entry in the change log.
type change struct {
	version uint64
	items   [][]int32 // per model: positions whose own vectors changed (rows, embeddings, new items)
	global  []bool    // per model: a new global row was applied (every vector changed)
	reload  bool      // a full load: every item may have changed
}

// ItemChangeSet is what changed in the item vectors of one model between two versions.
type ItemChangeSet struct {
	// IDs are the items whose own vectors changed (their rows or embeddings changed, or they
	// are new), each once, in no particular order; complete unless Reload.
	IDs []string
	// Global: a new global row was applied, so every item vector changed by it (and the
	// users' vectors of models whose UserVector reads it), beyond IDs.
	Global bool
	// Reload: the changes are unknown (a full load, or since is older than the kept log):
	// treat every item as changed.
	Reload bool
	// Now is the version the set runs up to: pass it as since to the next call.
	Now uint64
}

// ItemChanges tells which items' vectors of model changed in the versions after since, up
// to the version it returns as Now. A caller that mirrors scores calls it with the Now of
// its previous call; read vectors with ItemVectors after it, so that they are at least as
// new as Now.
func (x *Index) ItemChanges(model string, since uint64) (ItemChangeSet, error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return ItemChangeSet{}, err
	}
	x.logMu.Lock()
	defer x.logMu.Unlock()
	s = x.snap.Load() // the snapshot of the latest logged version
	cs := ItemChangeSet{Now: x.version.Load()}
	if since >= cs.Now {
		return cs, nil
	}
	if len(x.changes) == 0 || x.changes[0].version > since+1 {
		cs.Reload = true
		return cs, nil
	}
	seen := make(map[int32]bool)
	for _, c := range x.changes {
		if c.version <= since {
			continue
		}
		if c.reload {
			return ItemChangeSet{Reload: true, Now: cs.Now}, nil
		}
		if c.global != nil && c.global[mi] {
			cs.Global = true
		}
		if c.items == nil {
			continue
		}
		for _, p := range c.items[mi] {
			if !seen[p] {
				seen[p] = true
				cs.IDs = append(cs.IDs, s.ids[p])
			}
		}
	}
	return cs, nil
}

// ItemVectors returns copies of the served vectors of model for ids and their catalog
// positions; an id not in the catalog fails with ErrUnknownItem.
func (x *Index) ItemVectors(model string, ids []string) (vecs [][]float32, positions []int, err error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, nil, err
	}
	mat := s.models[mi].items
	buf := make([]float32, len(ids)*mat.dim)
	vecs, positions = make([][]float32, len(ids)), make([]int, len(ids))
	for i, id := range ids {
		p, ok := x.position(s, id)
		if !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownItem, id)
		}
		vecs[i] = buf[i*mat.dim : (i+1)*mat.dim : (i+1)*mat.dim]
		copy(vecs[i], mat.row(vecs[i], int(p)))
		positions[i] = int(p)
	}
	return vecs, positions, nil
}

// ServeDim returns the length of model's serving vectors.
func (x *Index) ServeDim(model string) (int, error) {
	mi, ok := x.byName[model]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	return x.ms[mi].ServeDim(), nil
}

// UserVector reads user's row and returns the user's serving vector for model, against the
// served global row. Scores of it against ItemVectors are Recommend's scores.
func (x *Index) UserVector(ctx context.Context, model, user string) ([]float32, error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	return x.userVector(ctx, s, mi, user)
}

// Global returns a copy of model's served global row: the one the served item and user
// vectors were computed with (nil for a model without one).
func (x *Index) Global(model string) ([]float32, error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), s.models[mi].global...), nil
}

// UserVectors is UserVector for many users with one read per 10,000 of them: nil for a
// user without a row.
func (x *Index) UserVectors(ctx context.Context, model string, users []string) ([][]float32, error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	m := x.ms[mi]
	out := make([][]float32, 0, len(users))
	for lo := 0; lo < len(users); lo += readChunk {
		chunk := users[lo:min(lo+readChunk, len(users))]
		rows, err := x.store.Vectors(ctx, m.Name()+":users", chunk)
		if err != nil {
			return nil, fmt.Errorf("ranking: read %d users: %w", len(chunk), err)
		}
		for i, row := range rows {
			if row == nil {
				out = append(out, nil)
				continue
			}
			if len(row) != m.UserDim() {
				return nil, fmt.Errorf("ranking: user %q of %s has width %d, model wants %d", users[lo+i], m.Name(), len(row), m.UserDim())
			}
			uv := make([]float32, m.ServeDim())
			m.UserVector(uv, row, s.models[mi].global)
			out = append(out, uv)
		}
	}
	return out, nil
}

// RecommendVector is Recommend for a user vector (from UserVector): the best k items, best
// first, leaving out the ids in exclude (ids not in the catalog are ignored).
func (x *Index) RecommendVector(model string, uv []float32, k int, exclude []string) ([]Scored, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want at least 1", ErrInvalidArgument, k)
	}
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	if len(uv) != x.ms[mi].ServeDim() {
		return nil, fmt.Errorf("%w: user vector has length %d, %s wants %d", ErrInvalidArgument, len(uv), model, x.ms[mi].ServeDim())
	}
	var skip map[int32]struct{}
	if len(exclude) > 0 {
		skip = make(map[int32]struct{}, len(exclude))
		for _, id := range exclude {
			if p, ok := x.position(s, id); ok {
				skip[p] = struct{}{}
			}
		}
	}
	return x.scored(s, x.rank(&spec{mat: s.models[mi].items, x: uv, self: -1, skip: skip, k: k})), nil
}

// position returns the catalog position of id in snapshot s.
func (x *Index) position(s *snapshot, id string) (int32, bool) {
	v, ok := s.pos.Load(id)
	if !ok {
		return 0, false
	}
	p := v.(int32)
	return p, int(p) < s.n
}

// Item describes a catalog item; false when it is not in the catalog (or not loaded yet).
func (x *Index) Item(id string) (ItemInfo, bool) {
	s := x.snap.Load()
	if s == nil {
		return ItemInfo{}, false
	}
	p, ok := x.position(s, id)
	if !ok {
		return ItemInfo{}, false
	}
	info := ItemInfo{ID: id, Position: int(p), HasEmbedding: s.emb.n > int(p) && s.emb.has(int(p))}
	if int(p) < len(s.events) {
		info.Events = s.events[p]
	}
	return info, true
}

// ready returns the served snapshot and the model's index, or the error.
func (x *Index) ready(model string) (*snapshot, int, error) {
	s := x.snap.Load()
	if s == nil {
		return nil, 0, ErrNotReady
	}
	mi, ok := x.byName[model]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	return s, mi, nil
}

// userVector reads the user's row and writes the user vector against the served global row.
func (x *Index) userVector(ctx context.Context, s *snapshot, mi int, user string) ([]float32, error) {
	m := x.ms[mi]
	rows, err := x.store.Vectors(ctx, m.Name()+":users", []string{user})
	if err != nil {
		return nil, fmt.Errorf("ranking: read user %q: %w", user, err)
	}
	row := rows[0]
	if row == nil {
		return nil, fmt.Errorf("%w %q (model %s)", ErrUnknownUser, user, m.Name())
	}
	if len(row) != m.UserDim() {
		return nil, fmt.Errorf("ranking: user %q of %s has width %d, model wants %d", user, m.Name(), len(row), m.UserDim())
	}
	uv := make([]float32, m.ServeDim())
	m.UserVector(uv, row, s.models[mi].global)
	return uv, nil
}

// table names
func itemsTable(m models.Servable) string  { return m.Name() + ":items" }
func globalTable(m models.Servable) string { return m.Name() + ":global" }

const (
	globalRowID = "g" // the updater's id of a model's global row
	seenSet     = "seen"
)

var _ = updater.CatalogItems
