package toplists

import (
	"container/heap"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visrec/visrec/ranking"
)

// modelLists is one model's users: their vectors (one row-major matrix, a slot per user),
// lists, and the refresh queue. Run's goroutines touch it under Materializer.mu.
type modelLists struct {
	name    string
	dim     int
	slots   map[string]int
	ids     []string
	ublocks [][]float32 // user vectors, column-major blocks of ranking.BlockRows users (slot/BlockRows)
	lists   [][]entry
	// stored is the list as last written to Redis, when storedOK (a failed or no write
	// yet: unknown), so that a list Redis holds already is not written again.
	stored   [][]entry
	storedOK []bool
	inflight []bool   // a write of the list is in flight, the lock released (see flush)
	keys     []string // the list's key, once written ("" before)
	// seen caches the user's seen items as its last full refresh read them (sets only
	// grow, so it is a subset of the stored set): an item the user interacted with since
	// may enter its list through an item change until the user's own refresh (due
	// Debounce after its activity) reads the set again. Reading every active user's set
	// at every change would cost more than the scoring itself.
	seen        []map[string]bool
	seenAt      []time.Time // when seen was read
	lastRefresh []time.Time

	usersSince int64           // version of "<model>:users" polled up to
	itemsSince uint64          // index version whose item changes are applied
	catalogN   int             // the index's catalog length before the last item changes were read
	youngFrom  int             // positions from here on joined the catalog within Debounce
	fresh      []freshItem     // new items scored since the last read of the users' change log began
	catalogLog []catalogMark   // catalog lengths over the last Debounce, oldest first
	drift      map[string]bool // existing items whose vectors changed, not yet scored
	driftQueue []string        // drifted items being scored, driftPerPoll per poll
	lastDrift  time.Time       // when drift was last scored

	globalDirty bool              // a global row was applied since the last sweep
	lazy        []lazyMark        // lists whose scores alone changed, unwritten, oldest first
	lazySet     map[int]time.Time // slot → its mark in lazy (the live one)
	lastSweep   time.Time         // when the last sweep queued every user

	queue  refreshQueue
	queued map[string]int // user → index in queue

	met modelMetrics
}

func newModelLists(name string, dim int) *modelLists {
	return &modelLists{name: name, dim: dim, slots: make(map[string]int), queued: make(map[string]int),
		lazySet: make(map[int]time.Time), drift: make(map[string]bool)}
}

// freshItem is an item new to the catalog, as scored in this step.
type freshItem struct {
	item    string
	pos     int32
	vec     []float32
	version uint64 // the index version it was read at (it is in every snapshot after)
}

type catalogMark struct {
	t time.Time
	n int
}

// young records the catalog length n at t and returns the length it had Debounce ago (or
// at the oldest record): positions from there on are items that joined within Debounce.
func (ml *modelLists) young(n int, t time.Time, debounce time.Duration) int {
	if len(ml.catalogLog) == 0 || ml.catalogLog[len(ml.catalogLog)-1].n != n {
		ml.catalogLog = append(ml.catalogLog, catalogMark{t, n})
	}
	for len(ml.catalogLog) > 1 && t.Sub(ml.catalogLog[1].t) >= debounce {
		ml.catalogLog = ml.catalogLog[1:]
	}
	return ml.catalogLog[0].n
}

type lazyMark struct {
	slot  int
	since time.Time
}

// markLazy records that slot's list changed in its scores alone at t (a list already
// marked keeps its earlier mark).
func (ml *modelLists) markLazy(slot int, t time.Time) {
	if _, ok := ml.lazySet[slot]; ok {
		return
	}
	ml.lazySet[slot] = t
	ml.lazy = append(ml.lazy, lazyMark{slot, t})
}

// unmarkLazy forgets slot's mark: its list is being written in full.
func (ml *modelLists) unmarkLazy(slot int) { delete(ml.lazySet, slot) }

// set stores user's vector and list and returns its slot.
func (ml *modelLists) set(user string, uv []float32, list []entry) int {
	slot, ok := ml.slots[user]
	if !ok {
		slot = len(ml.ids)
		ml.slots[user] = slot
		ml.ids = append(ml.ids, user)
		if slot%ranking.BlockRows == 0 {
			ml.ublocks = append(ml.ublocks, make([]float32, ml.dim*ranking.BlockRows))
		}
		ml.lists = append(ml.lists, nil)
		ml.stored = append(ml.stored, nil)
		ml.storedOK = append(ml.storedOK, false)
		ml.inflight = append(ml.inflight, false)
		ml.keys = append(ml.keys, "")
		ml.seen = append(ml.seen, nil)
		ml.seenAt = append(ml.seenAt, time.Time{})
		ml.lastRefresh = append(ml.lastRefresh, time.Time{})
	}
	ranking.PutRow(ml.ublocks[slot/ranking.BlockRows], slot%ranking.BlockRows, uv[:ml.dim])
	ml.lists[slot] = list
	return slot
}

// notBefore is the earliest time user may be refreshed again: Debounce after the last one.
func (ml *modelLists) notBefore(user string, debounce time.Duration, now time.Time) time.Time {
	if slot, ok := ml.slots[user]; ok {
		if t := ml.lastRefresh[slot].Add(debounce); t.After(now) {
			return t
		}
	}
	return now
}

// schedule queues a full refresh of user at due; a user already queued keeps its place
// (the earlier due time) and the earlier since.
func (ml *modelLists) schedule(user string, since, due time.Time) {
	if i, ok := ml.queued[user]; ok {
		q := &ml.queue[i]
		if due.Before(q.due) {
			q.due = due
			heap.Fix(&queueHeap{ml}, i)
		}
		return
	}
	heap.Push(&queueHeap{ml}, queued{user: user, since: since, due: due})
}

// pop removes and returns the refresh due first.
func (ml *modelLists) pop() queued { return heap.Pop(&queueHeap{ml}).(queued) }

type queued struct {
	user  string
	since time.Time // when the first change behind it was seen (for the lag metric)
	due   time.Time
}

type refreshQueue []queued

// queueHeap is ml's queue as a heap by due time, keeping ml.queued in step.
type queueHeap struct{ ml *modelLists }

func (h *queueHeap) Len() int           { return len(h.ml.queue) }
func (h *queueHeap) Less(i, j int) bool { return h.ml.queue[i].due.Before(h.ml.queue[j].due) }
func (h *queueHeap) Swap(i, j int) {
	q := h.ml.queue
	q[i], q[j] = q[j], q[i]
	h.ml.queued[q[i].user] = i
	h.ml.queued[q[j].user] = j
}
func (h *queueHeap) Push(x any) {
	q := x.(queued)
	h.ml.queued[q.user] = len(h.ml.queue)
	h.ml.queue = append(h.ml.queue, q)
}
func (h *queueHeap) Pop() any {
	q := h.ml.queue
	x := q[len(q)-1]
	h.ml.queue = q[:len(q)-1]
	delete(h.ml.queued, x.user)
	return x
}

type metrics struct {
	refreshes, incremental, writes *prometheus.CounterVec
	queued                         prometheus.Gauge
	lag                            *prometheus.HistogramVec
}

// modelMetrics are one model's series of metrics, looked up once.
type modelMetrics struct {
	refreshes, incremental, writes prometheus.Counter
	lag                            prometheus.Observer
}

func (m *metrics) model(name string) modelMetrics {
	return modelMetrics{refreshes: m.refreshes.WithLabelValues(name), incremental: m.incremental.WithLabelValues(name),
		writes: m.writes.WithLabelValues(name), lag: m.lag.WithLabelValues(name)}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "visrec_lists_refreshes_total",
			Help: "Full recomputations of a user's list."}, []string{"model"}),
		incremental: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "visrec_lists_incremental_total",
			Help: "Lists changed by scoring changed items only."}, []string{"model"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "visrec_lists_writes_total",
			Help: "Lists written to Redis."}, []string{"model"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "visrec_lists_queued",
			Help: "Users waiting for a full refresh."}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "visrec_lists_lag_seconds",
			Help:    "From seeing a change to writing the list it caused.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"model"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refreshes, m.incremental, m.writes, m.queued, m.lag} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
