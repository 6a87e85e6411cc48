// Package toplists materializes, per user and model, the user's top-K items with their
// scores as one JSON document in a Redis string (see AppendList), so that any client can
// read recommendations, and when they were computed, with one command:
//
//	GET {ns}:top:<model>:<user>
//
// docs/lists.md documents the keys, the encoding and the freshness for clients.
//
// # What triggers a refresh
//
// A Materializer follows two sources. User rows: it polls store.Changed on "<model>:users";
// a changed user's listed items are rescored at once with its new vector (K dot products),
// and its list is recomputed in full (a ranking of every item through the ranking.Index),
// debounced per user — at most one refresh per user per Debounce, so a burst of events
// coalesces into one refresh — and paced by a budget of RefreshesPerSecond full refreshes,
// taken from a queue in order of due time: a hot stream of changes to some users can delay
// but never starve the others (each user is queued once, whatever number of changes it
// gets). Item vectors: it follows ranking.Index.ItemChanges on a goroutine of its own,
// woken at every publication of the index (ranking.Index.Updated), and scores only the
// changed or new items against the user vectors it keeps in memory (the user matrix against
// the changed items, with ranking's kernel), with each listed user's K-th score as the bar:
//
//   - a changed item that is not in a user's list and beats the K-th entry enters the list
//     (unless the user has seen it), the K-th leaves: the list stays exact, because every
//     other unlisted item scores at most the K-th;
//   - a listed item whose score changed but still ranks at or above the old K-th entry
//     keeps its place (re-sorted);
//   - a listed item that fell below the old K-th entry queues the user for a full refresh
//     (its replacement may be any item); until it runs, the best known list (the new
//     scores and the entering items) is kept, so that items keep entering it at once.
//
// While a user's full refresh is pending (its row changed, or a listed item fell below the
// K-th), its list is the best known one: K real items with current scores, whose K-th is at
// most the exact K-th. An item of the exact top-K therefore always enters at once; one just
// below it may enter too, until the refresh.
//
// # Speed: what is done at once and what is batched
//
// Items new to the catalog are scored at the publication that brings them, by that
// goroutine (followItems), and the lists they enter are written at once, every batch in
// flight together: they do not wait for the loop's user reads, full refreshes or writes
// (the loop holds the lock only while it computes, not while it waits for Redis, yields it
// to new items between pieces of its computation, and sends no writes while a new item's
// are being written). They are scored again against the
// vectors of users read after them (rescoreUsers) and into refreshes ranked on an older
// snapshot (apply), so they are judged as if every read came first. A list that an item
// enters later within Debounce of its joining the catalog (as the user's vector or the
// global row moves) is written at once too. Changes of existing items (VBPR moves most item
// rows at every flush of the updater) are collected by that goroutine and scored by Run's
// loop once per driftInterval (200 ms, or Debounce when shorter), driftPerPoll per poll, so
// that no poll stalls behind thousands of drifted ones; lists changed only by such drift or
// by a user's rescoring are written within Debounce (lazyPerPoll per poll): the list in
// memory is current, Redis lags it by at most Debounce while the write rate allows. Seen sets are cached from each user's
// last full refresh (see modelLists.seen).
//
// A new global row (ranking applies it at most every GlobalRefresh) changes every item
// vector a little (VBPR's E at every flush): the items that changed or arrived with it are
// still scored as above, against the lists as they stand, and the drift of the others is
// caught by a sweep: at most once per GlobalSweep, every user is queued for a full refresh,
// the due times spread evenly over GlobalSweep, under the same budget (a user's own
// activity still refreshes it sooner). Re-queueing every user at every global change would
// keep the budget busy forever under VBPR and delay everything else. A reload of the index
// (changes unknown) queues every user at once.
//
// A list is written whole, as one JSON document with its write time (see AppendList), in
// one MSET with the others of its batch; so a reader sees the previous list or the new one,
// never a mix.
// Writes of one list are never in flight together (see flush), so they land in order.
package toplists

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/ranking"
)

// Options configure a Materializer. Zero fields take the defaults of DefaultOptions.
type Options struct {
	// Namespace is the feature store's namespace: lists live beside its keys, in the same
	// hash tag {Namespace}, hence the same Redis Cluster slot (default "visrec").
	Namespace string
	// Models to materialize (default: every model of the index).
	Models []string
	// K is the length of every list (default 50).
	K int
	// Debounce is the least time between two full refreshes of one user (default 1 s).
	Debounce time.Duration
	// RefreshesPerSecond is the budget of full refreshes, all models together (default 500).
	RefreshesPerSecond int
	// PollInterval is how often user changes and the refresh queue are polled (default
	// 50 ms); item changes are also followed at every publication of the index.
	PollInterval time.Duration
	// GlobalSweep is the least time between two sweeps (full refreshes of every user,
	// spread over GlobalSweep) after the model's global row changed (default 1 min): the
	// bound, beyond a sweep's own length, on how long a list's scores lag a global drift.
	GlobalSweep time.Duration
	// IncludeSeen keeps the items a user has interacted with in the lists (default: they
	// are left out, like ranking.RecOptions.ExcludeSeen).
	IncludeSeen bool
	// NoBackfill skips the initial refresh of every user with a stored row: only users that
	// change from now on get lists.
	NoBackfill bool
	// Logger (default: none) and Registerer (default: none) for logs and metrics.
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Namespace: "visrec", K: 50, Debounce: time.Second, RefreshesPerSecond: 500,
		PollInterval: 50 * time.Millisecond, GlobalSweep: time.Minute, Logger: zap.NewNop()}
}

// ListKey returns the key of the list of user for model in namespace ns.
func ListKey(ns, model, user string) string { return "{" + ns + "}:top:" + model + ":" + user }

// Stats are a Materializer's counters since it started.
type Stats struct {
	Users       int   // users with a list in memory, all models
	Queued      int   // users waiting for a full refresh
	Refreshes   int64 // full refreshes
	Incremental int64 // lists changed by scoring changed items only
	Sweeps      int64 // sweeps after a global row changed
	Writes      int64 // lists written to Redis
	ItemBatches int64 // batches of changed items scored against the users
}

// Materializer keeps the lists. Create it with New, then call Run; Stats may be called from
// any goroutine.
type Materializer struct {
	client redis.UniversalClient
	store  featurestore.Store
	index  *ranking.Index
	opts   Options
	ms     []*modelLists
	met    *metrics
	seen   string // the store's set family of seen items

	// mu guards the lists and counters, shared by Run's loop and its new-items goroutine
	// (followItems); the loop releases it while it waits for Redis or the index.
	mu     sync.Mutex
	landed *sync.Cond // on mu: signalled when written lists land (see flush)
	// freshPending: new items' lists are being written; Run's loop sends no writes
	// meanwhile, so that they do not queue in Redis behind its own (see flush).
	freshPending bool
	// newWaiting counts followItems waiting for mu: Run's loop yields to it between pieces
	// of its computation (see yield).
	newWaiting atomic.Int32

	stats  chan chan Stats
	tokens float64
	last   time.Time
	st     Stats
}

// New returns a Materializer that ranks with index (kept in sync by its own Run) over
// store, and writes the lists with client.
func New(client redis.UniversalClient, store featurestore.Store, index *ranking.Index, opts Options) (*Materializer, error) {
	if client == nil || store == nil || index == nil {
		return nil, errors.New("toplists: nil client, store or index")
	}
	def := DefaultOptions()
	if opts.Namespace == "" {
		opts.Namespace = def.Namespace
	}
	if strings.ContainsAny(opts.Namespace, "{}") {
		return nil, fmt.Errorf("toplists: namespace %q contains a brace", opts.Namespace)
	}
	if opts.K <= 0 {
		opts.K = def.K
	}
	if opts.Debounce <= 0 {
		opts.Debounce = def.Debounce
	}
	if opts.RefreshesPerSecond <= 0 {
		opts.RefreshesPerSecond = def.RefreshesPerSecond
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = def.PollInterval
	}
	if opts.GlobalSweep <= 0 {
		opts.GlobalSweep = def.GlobalSweep
	}
	if opts.Logger == nil {
		opts.Logger = def.Logger
	}
	if len(opts.Models) == 0 {
		opts.Models = index.Models()
	}
	m := &Materializer{client: client, store: store, index: index, opts: opts, seen: "seen",
		stats: make(chan chan Stats)}
	m.landed = sync.NewCond(&m.mu)
	for _, name := range opts.Models {
		dim, err := index.ServeDim(name)
		if err != nil {
			return nil, fmt.Errorf("toplists: %w", err)
		}
		m.ms = append(m.ms, newModelLists(name, dim))
	}
	var err error
	if m.met, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	for _, ml := range m.ms {
		ml.met = m.met.model(ml.name)
	}
	return m, nil
}

// Stats returns the counters; it waits for Run's loop (at most one poll), and returns the
// last known counters when Run is not running.
func (m *Materializer) Stats(ctx context.Context) Stats {
	c := make(chan Stats, 1)
	select {
	case m.stats <- c:
		select {
		case s := <-c:
			return s
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	return Stats{}
}

func (m *Materializer) lockedStats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotStats()
}

func (m *Materializer) snapshotStats() Stats {
	s := m.st
	s.Users, s.Queued = 0, 0
	for _, ml := range m.ms {
		s.Users += len(ml.ids)
		s.Queued += len(ml.queue)
	}
	return s
}

// Run waits for the index to be ready, queues every stored user (unless NoBackfill), then
// follows the index's new items on a goroutine of its own (at every publication, see
// followItems) and polls every PollInterval for the rest (user changes, drifted items,
// refreshes) until ctx is done, and returns ctx's error then. Errors of a poll or a write
// are logged and retried; the work they concern stays queued.
func (m *Materializer) Run(ctx context.Context) error {
	for !m.index.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		case c := <-m.stats:
			c <- m.lockedStats()
		}
	}
	for _, ml := range m.ms {
		if err := m.start(ctx, ml); err != nil {
			return fmt.Errorf("toplists: start %s: %w", ml.name, err)
		}
	}
	m.last = time.Now()
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.followItems(fctx)
	}()
	defer wg.Wait()
	defer stop()
	t := time.NewTicker(m.opts.PollInterval)
	defer t.Stop()
	for {
		if err := m.step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.opts.Logger.Warn("toplists: poll failed; retrying", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case c := <-m.stats:
			c <- m.lockedStats()
		}
	}
}

// followItems handles the index's new items at every publication (freshItems), until ctx
// is done. It runs beside Run's loop, which holds the lock only while it computes, not
// while it waits for Redis (user reads, full refreshes, writes), and yields it between
// pieces of its computation (see yield), so a new item waits at most for one piece.
func (m *Materializer) followItems(ctx context.Context) {
	for {
		updated := m.index.Updated() // taken before the read: no publication is missed
		m.newWaiting.Add(1)
		m.mu.Lock()
		m.newWaiting.Add(-1)
		err := m.freshItems(ctx)
		m.mu.Unlock()
		var retry <-chan time.Time
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.opts.Logger.Warn("toplists: new items failed; retrying", zap.Error(err))
			retry = time.After(m.opts.PollInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-updated:
		case <-retry:
		}
	}
}

// start records where the change logs stand and queues the stored users.
func (m *Materializer) start(ctx context.Context, ml *modelLists) error {
	_, v, err := m.store.Changed(ctx, ml.name+":users", math.MaxInt64)
	if err != nil {
		return err
	}
	ml.usersSince = v
	cs, err := m.index.ItemChanges(ml.name, math.MaxUint64)
	if err != nil {
		return err
	}
	ml.itemsSince = cs.Now
	if m.opts.NoBackfill {
		return nil
	}
	t := time.Now()
	return m.store.ScanVectors(ctx, ml.name+":users", func(id string, _ []float32) error {
		ml.schedule(id, t, t)
		return nil
	})
}

// step runs one poll: user changes, drifted items, and the due refreshes within budget
// (new items are followItems'). It holds m.mu except while it waits for Redis or the index.
func (m *Materializer) step(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.tokens = min(float64(m.opts.RefreshesPerSecond), m.tokens+now.Sub(m.last).Seconds()*float64(m.opts.RefreshesPerSecond))
	m.last = now
	for _, ml := range m.ms {
		// The new items scored so far were scored against the users' vectors before this
		// read of the change log: rescoreUsers scores them against the changed users' new
		// vectors, after which they are done with; items scored later wait for the next read.
		scored := len(ml.fresh)
		m.mu.Unlock()
		ids, v, err := m.store.Changed(ctx, ml.name+":users", ml.usersSince)
		m.mu.Lock()
		if err != nil {
			return err
		}
		for _, id := range ids {
			ml.schedule(id, now, ml.notBefore(id, m.opts.Debounce, now))
		}
		if err := m.rescoreUsers(ctx, ml, ids, now); err != nil {
			return err
		}
		ml.usersSince = v
		ml.fresh = slices.Delete(ml.fresh, 0, scored)
		if err := m.drifted(ctx, ml); err != nil {
			return err
		}
		if ml.globalDirty && now.Sub(ml.lastSweep) >= m.opts.GlobalSweep {
			m.sweep(ml, now)
		}
	}
	// Due refreshes, oldest due first across models, while the budget lasts; up to
	// refreshParallel at a time, so that the index batches their rankings.
	var writes []*pendingWrite
	var firstErr error
	// A step spends at most refreshSlice on full refreshes, so that item changes (the
	// next step) never wait long behind them; the unspent budget carries over (up to 1 s).
	for m.tokens >= 1 && firstErr == nil && time.Since(now) < refreshSlice {
		var round []refreshJob
		for len(round) < refreshParallel && float64(len(round)) <= m.tokens-1 {
			var best *modelLists
			for _, ml := range m.ms {
				if len(ml.queue) > 0 && !ml.queue[0].due.After(now) && (best == nil || ml.queue[0].due.Before(best.queue[0].due)) {
					best = ml
				}
			}
			if best == nil {
				break
			}
			round = append(round, refreshJob{ml: best, q: best.pop()})
		}
		if len(round) == 0 {
			break
		}
		// The rankings run unlocked, on the index's snapshot of version (at least): new items
		// of later versions are scored into the lists by apply.
		version := m.index.Version()
		m.mu.Unlock()
		var wg sync.WaitGroup
		for i := range round {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.compute(ctx, &round[i])
			}()
		}
		wg.Wait()
		m.mu.Lock()
		for i := range round {
			j := &round[i]
			if j.err != nil {
				j.ml.schedule(j.q.user, j.q.since, now.Add(m.opts.PollInterval)) // retry later
				firstErr = cmp.Or(firstErr, j.err)
				continue
			}
			m.tokens--
			if w := m.apply(j, version); w != nil {
				writes = append(writes, w)
			}
		}
	}
	for _, ml := range m.ms {
		writes = append(writes, m.lazyWrites(ml, now)...)
	}
	m.met.queued.Set(float64(m.snapshotStats().Queued))
	return cmp.Or(m.write(ctx, writes, false), firstErr)
}

// refreshParallel is how many full refreshes run at once.
const refreshParallel = 8

// refreshSlice bounds the time of one step's full refreshes.
const refreshSlice = 10 * time.Millisecond

// refreshJob is one full refresh: computed on its own goroutine, applied on Run's.
type refreshJob struct {
	ml      *modelLists
	q       queued
	uv      []float32
	list    []entry
	seen    map[string]bool // the user's seen items as read for the ranking (nil with IncludeSeen)
	unknown bool            // the user has no row
	err     error
}

// compute ranks every item for the job's user; it touches no Materializer state.
func (m *Materializer) compute(ctx context.Context, j *refreshJob) {
	uv, err := m.index.UserVector(ctx, j.ml.name, j.q.user)
	if errors.Is(err, ranking.ErrUnknownUser) {
		j.unknown = true // no row (yet): nothing to list
		return
	}
	if err != nil {
		j.err = err
		return
	}
	var exclude []string
	if !m.opts.IncludeSeen {
		if exclude, err = m.store.SetMembers(ctx, m.seen, j.q.user); err != nil {
			j.err = err
			return
		}
	}
	top, err := m.index.RecommendVector(j.ml.name, uv, m.opts.K, exclude)
	if err != nil {
		j.err = err
		return
	}
	j.seen = make(map[string]bool, len(exclude))
	for _, it := range exclude {
		j.seen[it] = true
	}
	j.uv, j.list = uv, make([]entry, len(top))
	for i, s := range top {
		info, _ := m.index.Item(s.Item)
		j.list[i] = entry{item: s.Item, pos: int32(info.Position), score: s.Score}
	}
}

// apply stores a computed refresh, ranked on the index's snapshot of version (at least),
// and returns its write (nil for a user without a row). The new items that followItems
// scored after that version are scored into it, like rescoreUsers does, so that a refresh
// that ran beside them does not drop them.
func (m *Materializer) apply(j *refreshJob, version uint64) *pendingWrite {
	if j.unknown {
		return nil
	}
	list := j.list
	for _, f := range j.ml.fresh {
		if f.version <= version {
			continue
		}
		e := entry{item: f.item, pos: f.pos, score: dot(j.uv, f.vec)}
		if len(list) >= m.opts.K && !better(e, list[m.opts.K-1]) || inList(list, e.pos) || j.seen[e.item] {
			continue
		}
		list = append(slices.Clone(list), e)
		sortEntries(list)
		list = list[:min(len(list), m.opts.K)]
	}
	j.list = list
	slot := j.ml.set(j.q.user, j.uv, j.list)
	j.ml.seen[slot], j.ml.seenAt[slot] = j.seen, j.q.since
	j.ml.unmarkLazy(slot)
	j.ml.lastRefresh[slot] = time.Now()
	m.st.Refreshes++
	j.ml.met.refreshes.Inc()
	return &pendingWrite{ml: j.ml, slot: slot, since: j.q.since}
}

// write flushes ws; on failure the users are queued for a full refresh, so that no list
// stays unwritten. fresh: see flush.
func (m *Materializer) write(ctx context.Context, ws []*pendingWrite, fresh bool) error {
	err := m.flush(ctx, ws, fresh)
	if err != nil {
		t := time.Now()
		for _, w := range ws {
			w.ml.schedule(w.ml.ids[w.slot], w.since, t.Add(m.opts.PollInterval))
		}
	}
	return err
}

// rescoreUsers takes the new vectors of the listed users among ids (whose rows changed)
// and rescores their listed items with them at once (K dot products each), so that item
// changes are scored against the users' current vectors while their full refreshes wait
// for Debounce and the budget. The rescored lists are written within Debounce, like item
// drift.
func (m *Materializer) rescoreUsers(ctx context.Context, ml *modelLists, ids []string, now time.Time) error {
	var users []string
	for _, id := range ids {
		if _, ok := ml.slots[id]; ok {
			users = append(users, id)
		}
	}
	// Read rescoreChunk users at a time, unlocked (thousands of users change per second
	// under load, and their reads must not hold new items back).
	var entered []int
	for lo := 0; lo < len(users); lo += rescoreChunk {
		e, err := m.rescoreChunk(ctx, ml, users[lo:min(lo+rescoreChunk, len(users))], now)
		if err != nil {
			return err
		}
		entered = append(entered, e...)
	}
	if len(entered) == 0 {
		return nil
	}
	ws := make([]*pendingWrite, len(entered))
	for i, slot := range entered {
		ml.unmarkLazy(slot)
		ws[i] = &pendingWrite{ml: ml, slot: slot, since: now}
	}
	return m.write(ctx, ws, false)
}

// rescoreChunk is rescoreUsers for some of the users; it returns the slots whose lists this
// step's new items entered with the new vectors (to be written at once).
func (m *Materializer) rescoreChunk(ctx context.Context, ml *modelLists, users []string, now time.Time) ([]int, error) {
	m.mu.Unlock()
	uvs, err := m.index.UserVectors(ctx, ml.name, users)
	m.mu.Lock()
	if err != nil {
		return nil, err
	}
	var entered []int
	for i, u := range users {
		if i%rescorePiece == rescorePiece-1 {
			m.yield()
		}
		uv, slot := uvs[i], ml.slots[u]
		old := ml.lists[slot]
		if uv == nil || len(old) == 0 {
			continue
		}
		items := make([]string, len(old))
		for j, e := range old {
			items[j] = e.item
		}
		vecs, _, err := m.index.ItemVectors(ml.name, items)
		if err != nil {
			return nil, err
		}
		ranking.PutRow(ml.ublocks[slot/ranking.BlockRows], slot%ranking.BlockRows, uv[:ml.dim])
		list := make([]entry, len(old))
		for j, e := range old {
			list[j] = entry{item: e.item, pos: e.pos, score: dot(uv, vecs[j])}
		}
		sortEntries(list)
		// This step's new items were scored against the user's previous vector: score them
		// against the new one too, so that they are judged as if the user had been read
		// first (an item of the exact top-K enters at once).
		var entering []entry
		for _, f := range ml.fresh {
			e := entry{item: f.item, pos: f.pos, score: dot(uv, f.vec)}
			if len(list) >= m.opts.K && !better(e, list[m.opts.K-1]) || inList(list, e.pos) {
				continue
			}
			if !m.opts.IncludeSeen && (ml.seen[slot] == nil || ml.seen[slot][e.item]) {
				continue // unknown seen set: left to the user's full refresh, queued already
			}
			entering = append(entering, e)
		}
		if len(entering) > 0 {
			list = append(list, entering...)
			sortEntries(list)
			list = list[:min(len(list), m.opts.K)]
			ml.lists[slot] = list
			entered = append(entered, slot)
			continue
		}
		ml.lists[slot] = list
		ml.markLazy(slot, now)
	}
	return entered, nil
}

// rescoreChunk is how many users' rows rescoreUsers reads at once; new items may go
// first after every rescorePiece of them.
const rescoreChunk, rescorePiece = 1_000, 250

func dot(a, b []float32) float32 {
	var s float32
	for k, x := range b {
		s += a[k] * x
	}
	return s
}

// sweep queues every listed user of ml for a full refresh after a global change, the due
// times spread evenly over GlobalSweep (a user queued earlier keeps its place). The lists
// stay live meanwhile: item changes are still scored against them.
func (m *Materializer) sweep(ml *modelLists, now time.Time) {
	ml.globalDirty, ml.lastSweep = false, now
	if len(ml.ids) == 0 {
		return
	}
	step := m.opts.GlobalSweep / time.Duration(len(ml.ids))
	for slot, u := range ml.ids {
		ml.schedule(u, now, now.Add(time.Duration(slot)*step))
	}
	m.st.Sweeps++
}

// freshItems takes the index's item changes when it published since the last call: items
// new to the catalog are scored at once against every listed user and the lists they enter
// are written at once, in their own round trips, before any other work; changes of existing
// items are collected for drifted. A new global row only marks the model for the next
// sweep; a reload of the index queues every user. The caller holds m.mu.
func (m *Materializer) freshItems(ctx context.Context) error {
	v := m.index.Version()
	var ws []*pendingWrite
	for _, ml := range m.ms {
		if ml.itemsSince >= v {
			continue
		}
		w, err := m.newItems(ctx, ml)
		if err != nil {
			return err
		}
		ws = append(ws, w...)
	}
	return m.write(ctx, ws, true)
}

// newItems is freshItems for one model: it returns the writes of the lists new items entered.
func (m *Materializer) newItems(ctx context.Context, ml *modelLists) ([]*pendingWrite, error) {
	catalogN := m.index.Len() // read before the changes: every item at or beyond it is new
	cs, err := m.index.ItemChanges(ml.name, ml.itemsSince)
	if err != nil {
		return nil, err
	}
	ids := cs.IDs
	newFrom := ml.catalogN // positions from here on joined the catalog since the last call
	ml.catalogN = catalogN
	ml.youngFrom = ml.young(catalogN, time.Now(), m.opts.Debounce)
	if cs.Reload {
		t := time.Now()
		for _, u := range ml.ids {
			ml.schedule(u, t, t)
		}
		ml.itemsSince = cs.Now
		return nil, nil
	}
	if cs.Global {
		ml.globalDirty = true
	}
	if len(ids) == 0 {
		ml.itemsSince = cs.Now
		return nil, nil
	}
	// Changes of existing items (VBPR moves most of them at every flush) are collected
	// for drifted; the vectors of new ones are read and scored now.
	var batch []string
	for _, id := range ids {
		if info, ok := m.index.Item(id); ok && info.Position < newFrom {
			ml.drift[id] = true
		} else {
			batch = append(batch, id) // new (or gone: ItemVectors tells)
		}
	}
	if len(batch) == 0 {
		ml.itemsSince = cs.Now
		return nil, nil
	}
	vecs, pos, err := m.index.ItemVectors(ml.name, batch)
	if err != nil {
		return nil, err
	}
	for i, id := range batch {
		ml.fresh = append(ml.fresh, freshItem{item: id, pos: int32(pos[i]), vec: vecs[i], version: cs.Now})
	}
	ml.itemsSince = cs.Now
	return m.score(ctx, ml, batch, vecs, pos), nil
}

// drifted scores the collected changes of existing items: once per driftInterval (or
// Debounce when shorter) the collected ones are queued, and driftPerPoll of them are scored
// per call, so that an item that changed at several flushes is scored once and no poll
// stalls new items behind thousands of drifted ones. Lists that a young item entered are
// written at once, others within Debounce (see score).
func (m *Materializer) drifted(ctx context.Context, ml *modelLists) error {
	if t := time.Now(); len(ml.driftQueue) == 0 && len(ml.drift) > 0 && t.Sub(ml.lastDrift) >= min(m.opts.Debounce, driftInterval) {
		for id := range ml.drift {
			ml.driftQueue = append(ml.driftQueue, id)
		}
		clear(ml.drift)
		ml.lastDrift = t
	}
	n := min(len(ml.driftQueue), driftPerPoll)
	if n == 0 {
		return nil
	}
	for n > 0 {
		m.yield()
		c := min(n, driftPerPiece)
		n -= c
		ml.youngFrom = ml.young(ml.catalogN, time.Now(), m.opts.Debounce)
		batch := ml.driftQueue[:c]
		ml.driftQueue = ml.driftQueue[c:]
		vecs, pos, err := m.index.ItemVectors(ml.name, batch)
		if err != nil {
			return err
		}
		if err := m.write(ctx, m.score(ctx, ml, batch, vecs, pos), false); err != nil {
			return err
		}
	}
	return nil
}

// yield lets followItems run first when it waits for m.mu, so that a new item waits for at
// most one piece of Run's computation (a Go mutex does not hand itself over to a waiter
// that a re-locking holder would overtake). The caller holds m.mu.
func (m *Materializer) yield() {
	if m.newWaiting.Load() == 0 {
		return
	}
	m.mu.Unlock()
	for m.newWaiting.Load() > 0 {
		runtime.Gosched()
	}
	m.mu.Lock()
}

// score scores the items ids (vectors vecs, catalog positions pos) against every listed
// user of ml, applies the list changes, and returns the writes due at once: those of lists
// that a young item entered (one that joined the catalog within Debounce, also when it
// enters later than its first scoring, as the user's vector or the global row moves).
// Other changes (older items' rows drifted: VBPR moves most of them at every flush, and
// lists at the K-th boundary with them) are exact in memory at once and written within
// Debounce, at most lazyPerPoll lists per poll, so that drift does not rewrite every list
// at every flush.
func (m *Materializer) score(ctx context.Context, ml *modelLists, ids []string, vecs [][]float32, pos []int) []*pendingWrite {
	m.st.ItemBatches++
	changed := ml.scoreItems(ids, vecs, pos, m.opts.K)
	t := time.Now()
	seen := m.readSeen(ctx, ml, changed)
	var writes []*pendingWrite
	for _, c := range changed {
		u := ml.ids[c.slot]
		if c.refresh {
			// A listed item fell below the old K-th: its replacement may be any item, so a
			// full refresh is queued; meanwhile the best known list (new scores, entering
			// items) is written, so that a new item does not wait for the queue.
			ml.schedule(u, t, t)
		}
		list := c.list
		if len(c.entering) > 0 {
			if !m.opts.IncludeSeen {
				s, ok := seen[c.slot]
				if !ok { // leave the list to a full refresh, which reads the set again
					ml.schedule(u, t, t.Add(m.opts.PollInterval))
					continue
				}
				c.entering = slices.DeleteFunc(c.entering, func(e entry) bool { return s[e.item] })
			}
			list = append(list, c.entering...)
			sortEntries(list)
			list = list[:min(len(list), m.opts.K)]
		}
		old := ml.lists[c.slot]
		if slices.Equal(list, old) {
			continue
		}
		ml.lists[c.slot] = list
		m.st.Incremental++
		ml.met.incremental.Inc()
		if !slices.ContainsFunc(c.entering, func(e entry) bool { return int(e.pos) >= ml.youngFrom }) {
			ml.markLazy(c.slot, t)
			continue
		}
		ml.unmarkLazy(c.slot)
		writes = append(writes, &pendingWrite{ml: ml, slot: c.slot, since: t})
	}
	return writes
}

// sameItems tells whether a and b list the same items in the same order.
func sameItems(a, b []entry) bool {
	return slices.EqualFunc(a, b, func(x, y entry) bool { return x.pos == y.pos })
}

// seenParallel is how many seen sets are read at once.
const seenParallel = 32

// readSeen returns the seen sets of the users that have entering items (none with
// IncludeSeen): from ml's cache, or read seenParallel at a time and cached. A user whose
// read failed is left out (and logged).
func (m *Materializer) readSeen(ctx context.Context, ml *modelLists, changed []listChange) map[int]map[string]bool {
	out := make(map[int]map[string]bool)
	if m.opts.IncludeSeen {
		return out
	}
	t := time.Now()
	defer func() {
		for slot, set := range out {
			if ml.seen[slot] == nil {
				ml.seen[slot], ml.seenAt[slot] = set, t
			}
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, seenParallel)
	for _, c := range changed {
		if len(c.entering) == 0 {
			continue
		}
		if set := ml.seen[c.slot]; set != nil {
			mu.Lock()
			out[c.slot] = set
			mu.Unlock()
			continue
		}
		u, slot := ml.ids[c.slot], c.slot
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			members, err := m.store.SetMembers(ctx, m.seen, u)
			if err != nil {
				m.opts.Logger.Warn("toplists: read seen items", zap.String("user", u), zap.Error(err))
				return
			}
			set := make(map[string]bool, len(members))
			for _, it := range members {
				set[it] = true
			}
			mu.Lock()
			out[slot] = set
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// driftInterval (or Debounce when shorter) is the least time between two scorings of the
// collected changes of existing items.
const driftInterval = 200 * time.Millisecond

// driftPerPoll bounds the changed existing items scored in one poll, driftPerPiece at a
// time (new items may go first between two pieces).
const driftPerPoll, driftPerPiece = 64, 16

// lazyPerPoll bounds the score-only list writes of one poll.
const lazyPerPoll = 256

// lazyWrites returns the writes of the lists whose scores alone changed at least Debounce
// ago, oldest first, at most lazyPerPoll.
func (m *Materializer) lazyWrites(ml *modelLists, now time.Time) []*pendingWrite {
	var out []*pendingWrite
	for len(ml.lazy) > 0 && len(out) < lazyPerPoll {
		l := ml.lazy[0]
		if l.since.Add(m.opts.Debounce).After(now) {
			break
		}
		ml.lazy = ml.lazy[1:]
		if since, ok := ml.lazySet[l.slot]; !ok || !since.Equal(l.since) {
			continue // written since, or marked again later
		}
		delete(ml.lazySet, l.slot)
		out = append(out, &pendingWrite{ml: ml, slot: l.slot, since: l.since})
	}
	return out
}

const writeBatch = 256 // lists per MSET round trip

// pendingWrite is a list to write: the list in memory when it is flushed, so that a later
// change of the same list in the same step is never overwritten by an older one.
type pendingWrite struct {
	ml    *modelLists
	slot  int
	since time.Time // when the change that caused it was seen
}

// writeParallel is how many write batches of Run's loop are in flight at once: their
// round trips overlap. The lists that new items enter go all at once (freshParallel).
const writeParallel = 4

// freshParallel bounds the write batches of new items in flight at once: every batch of a
// new item's lists goes at once (a new item enters thousands of lists), within a client's
// default pool (10 connections per CPU).
const freshParallel = 16

// listWrite is one list's prepared write: the list and its key, taken under m.mu so that
// the round trip reads no shared state.
type listWrite struct {
	w    *pendingWrite
	list []entry
	key  string
}

// flush writes lists, writeBatch per round trip in one MSET (all in the slot {ns}), each
// whole, as its document with its write time (see AppendList), so a reader sees a list
// before or after a write, never a mix. A list that Redis holds already (ml.stored) is
// skipped, and a list is written once per flush.
//
// The lists go in waves: with fresh (new items' lists) every batch at once (freshParallel
// at most in flight), else writeParallel batches per wave, the lists as they are when the
// wave starts. The caller holds m.mu; flush releases it while a wave of Run's loop is in
// flight (the commands are made before), so that new items never wait for the loop's
// round trips (new items' own writes keep it, see flushWave). A list with a write in
// flight (ml.inflight) is not written again until that write is done: its next write
// waits, so that the writes of one list reach Redis in order (an older list never
// overwrites a newer one). New
// items' lists have priority: while they are written, Run's loop sends no writes; those
// that overlap the loop's writes in flight go in a second wave, when these have landed.
func (m *Materializer) flush(ctx context.Context, ws []*pendingWrite, fresh bool) error {
	type slotKey struct {
		ml   *modelLists
		slot int
	}
	have := make(map[slotKey]bool, len(ws))
	wave, parallel := writeParallel*writeBatch, writeParallel
	if fresh {
		wave, parallel = len(ws), freshParallel
		// New items' lists go first: Run's loop sends no writes until they are written.
		// Those that overlap its writes in flight follow in a second wave, once these land.
		m.freshPending = true
		defer func() { m.freshPending = false; m.landed.Broadcast() }()
	}
	var first error
	for len(ws) > 0 {
		for !fresh && m.freshPending {
			m.landed.Wait()
		}
		var todo []listWrite
		var later []*pendingWrite
		for _, w := range ws {
			ml, slot := w.ml, w.slot
			switch {
			case have[slotKey{ml, slot}]:
				continue
			case len(todo) >= wave || ml.inflight[slot]:
				later = append(later, w)
				continue
			}
			list := ml.lists[slot]
			if ml.storedOK[slot] && slices.Equal(ml.stored[slot], list) {
				continue
			}
			have[slotKey{ml, slot}] = true
			todo = append(todo, m.prepare(w, list))
		}
		ws = later
		if len(todo) == 0 {
			if len(ws) > 0 {
				m.landed.Wait() // the rest are in flight elsewhere: wait for a write to land
			}
			continue
		}
		first = cmp.Or(first, m.flushWave(ctx, todo, parallel, !fresh))
	}
	return first
}

// prepare makes w's write of list; the caller holds m.mu.
func (m *Materializer) prepare(w *pendingWrite, list []entry) listWrite {
	ml, slot := w.ml, w.slot
	if ml.keys[slot] == "" { // made once per user: a new item enters thousands of lists
		ml.keys[slot] = ListKey(m.opts.Namespace, ml.name, ml.ids[slot])
	}
	return listWrite{w: w, list: list, key: ml.keys[slot]}
}

// flushWave writes todo, writeBatch lists per round trip, parallel round trips at a time,
// with m.mu released meanwhile when unlock (the lists are marked in flight), and records
// them. New items' lists keep the lock: Run's loop then does not compete with them for the
// CPU (2 cores here), which measured faster than letting it compute meanwhile.
func (m *Materializer) flushWave(ctx context.Context, todo []listWrite, parallel int, unlock bool) error {
	for _, lw := range todo {
		lw.w.ml.inflight[lw.w.slot] = true
	}
	nb := (len(todo) + writeBatch - 1) / writeBatch
	errs := make([]error, nb)
	times := make([]time.Time, nb)
	if unlock {
		m.mu.Unlock()
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for b := range nb {
		batch := todo[b*writeBatch : min((b+1)*writeBatch, len(todo))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			times[b] = time.Now()
			errs[b] = m.writeBatch(ctx, batch, times[b])
		}()
	}
	wg.Wait()
	if unlock {
		m.mu.Lock()
	}
	defer m.landed.Broadcast()
	var first error
	for b := range nb {
		batch := todo[b*writeBatch : min((b+1)*writeBatch, len(todo))]
		for _, lw := range batch {
			lw.w.ml.inflight[lw.w.slot] = false
		}
		if errs[b] != nil {
			for _, lw := range batch {
				lw.w.ml.storedOK[lw.w.slot] = false // unknown: replaced at its next write
			}
			first = cmp.Or(first, fmt.Errorf("toplists: write %d lists: %w", len(batch), errs[b]))
			continue
		}
		for _, lw := range batch {
			ml := lw.w.ml
			ml.stored[lw.w.slot], ml.storedOK[lw.w.slot] = lw.list, true
			m.st.Writes++
			ml.met.writes.Inc()
			ml.met.lag.Observe(times[b].Sub(lw.w.since).Seconds())
		}
	}
	return first
}

// writeBatch writes prepared lists with one MSET (every key is in the slot {ns}), each as
// its document (see AppendList) with write time now; it touches no shared state.
func (m *Materializer) writeBatch(ctx context.Context, batch []listWrite, now time.Time) error {
	args := make([]any, 0, 2*len(batch))
	var buf []byte
	for _, lw := range batch {
		start := len(buf)
		buf = appendList(buf, now, lw.list, func(e entry) (string, float32) { return e.item, e.score })
		args = append(args, lw.key, buf[start:len(buf):len(buf)])
	}
	return m.client.MSet(ctx, args...).Err()
}

// entry is a listed item.
type entry struct {
	item  string
	pos   int32
	score float32
}

// better is ranking's order: higher score first, ties by catalog order.
func better(a, b entry) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.pos < b.pos
}

func sortEntries(l []entry) {
	slices.SortFunc(l, func(a, b entry) int {
		switch {
		case better(a, b):
			return -1
		case better(b, a):
			return 1
		}
		return 0
	})
}

// scoreItems scores the changed items against every listed user and returns the users
// whose lists change, with the new list (re-sorted scores of listed items) and the entering
// items, and refresh when a listed item fell below the old K-th entry (the list is then the
// best known one, not necessarily exact). The users' vectors
// are column-major blocks, scored against each item with ranking's kernel.
func (ml *modelLists) scoreItems(ids []string, vecs [][]float32, pos []int, k int) []listChange {
	const br = ranking.BlockRows
	nc := len(ids)
	col := make(map[int32]int, nc) // catalog position → changed item
	maxPos := 0
	for i, p := range pos {
		col[int32(p)] = i
		maxPos = max(maxPos, p)
	}
	changedPos := make([]uint64, maxPos/64+1) // bit set of the changed positions
	for _, p := range pos {
		changedPos[p/64] |= 1 << (p % 64)
	}
	isChanged := func(p int32) bool {
		return int(p) <= maxPos && changedPos[p/64]&(1<<(p%64)) != 0
	}
	scores := make([]float32, nc*br) // scores[c*br + r]: item c, user r of the block
	bar := make([]float32, br)       // each user's old K-th score (-Inf: a short list)
	var out []listChange
	for bi, blk := range ml.ublocks {
		lo := bi * br
		rows := min(br, len(ml.ids)-lo)
		for c, v := range vecs {
			ranking.ScoreColumns(scores[c*br:(c+1)*br], blk, v)
		}
		for r := range rows {
			old := ml.lists[lo+r]
			if len(old) >= k {
				bar[r] = old[k-1].score
			} else {
				bar[r] = float32(math.Inf(-1))
			}
		}
		changes := make(map[int]*listChange) // by slot, this block only
		get := func(slot int) *listChange {
			c, ok := changes[slot]
			if !ok {
				c = &listChange{slot: slot, list: slices.Clone(ml.lists[slot])}
				changes[slot] = c
			}
			return c
		}
		// Listed items whose score changed: re-sorted, or a refresh when one fell below
		// the old K-th entry.
		for r := range rows {
			slot := lo + r
			old := ml.lists[slot]
			for i, e := range old {
				if !isChanged(e.pos) {
					continue
				}
				ns := scores[col[e.pos]*br+r]
				if ns == e.score {
					continue
				}
				ne := entry{item: e.item, pos: e.pos, score: ns}
				c := get(slot)
				if len(old) >= k && better(old[k-1], ne) { // fell below the old K-th: its replacement may be any item
					c.refresh = true
				}
				c.list[i] = ne
			}
		}
		// Unlisted items that beat a user's old K-th entry enter (ties: catalog order).
		for c, p := range pos {
			sc := scores[c*br : c*br+rows]
			for r, s := range sc {
				if s < bar[r] {
					continue
				}
				slot := lo + r
				old := ml.lists[slot]
				e := entry{item: ids[c], pos: int32(p), score: s}
				if len(old) >= k && !better(e, old[k-1]) {
					continue
				}
				if inList(old, e.pos) {
					continue
				}
				lc := get(slot)
				lc.entering = append(lc.entering, e)
			}
		}
		for r := range rows {
			if c, ok := changes[lo+r]; ok {
				sortEntries(c.list)
				out = append(out, *c)
			}
		}
	}
	return out
}

func inList(l []entry, pos int32) bool {
	for _, e := range l {
		if e.pos == pos {
			return true
		}
	}
	return false
}

type listChange struct {
	slot     int
	list     []entry
	entering []entry
	refresh  bool
}
