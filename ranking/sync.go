package ranking

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/visrec/visrec/updater"
)

// syncer is Run's state: the raw rows that item vectors are derived from and the versions
// of the tables already mirrored. Only Run's goroutine touches it.
type syncer struct {
	x     *Index
	raw   [][]float32 // per model: item rows by catalog position, ItemDim each
	since map[string]int64

	pending     [][]float32 // per model: a global row read from the store, not yet applied
	hasPending  []bool
	lastGlobal  []time.Time
	lastPopular time.Time
	popularDue  bool // the catalog grew since the last popularity ranking
	events      []int64
}

// readChunk is the number of ids per HMGET: Redis runs one command at a time, and 1,000
// rows hold it for about a millisecond, short enough not to stall serving reads.
const readChunk = 1_000

func newSyncer(x *Index) *syncer {
	n := len(x.ms)
	return &syncer{x: x, since: make(map[string]int64), raw: make([][]float32, n),
		pending: make([][]float32, n), hasPending: make([]bool, n), lastGlobal: make([]time.Time, n)}
}

// tables lists the tables whose change logs the syncer follows.
func (s *syncer) tables() []string {
	var out []string
	for _, m := range s.x.ms {
		out = append(out, itemsTable(m), globalTable(m))
	}
	return append(out, updater.TableEmbeddings)
}

// vectors reads rows of ids in chunks.
func (s *syncer) vectors(ctx context.Context, table string, ids []string) ([][]float32, error) {
	out := make([][]float32, 0, len(ids))
	for lo := 0; lo < len(ids); lo += readChunk {
		rows, err := s.x.store.Vectors(ctx, table, ids[lo:min(lo+readChunk, len(ids))])
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// global reads model mi's global row (nil for models without one; zeros when not stored).
func (s *syncer) global(ctx context.Context, mi int) ([]float32, error) {
	m := s.x.ms[mi]
	if m.GlobalDim() == 0 {
		return nil, nil
	}
	rows, err := s.x.store.Vectors(ctx, globalTable(m), []string{globalRowID})
	if err != nil {
		return nil, err
	}
	g := rows[0]
	if g == nil {
		return make([]float32, m.GlobalDim()), nil
	}
	if len(g) != m.GlobalDim() {
		return nil, fmt.Errorf("%s: global row has width %d, model wants %d", globalTable(m), len(g), m.GlobalDim())
	}
	return g, nil
}

// load reads everything and publishes the first (or a replacing) snapshot. The tables'
// versions are taken before the reads, so a write that lands during the load is read again
// by the next poll (re-reading a row is harmless).
func (s *syncer) load(ctx context.Context) error {
	x := s.x
	for _, t := range s.tables() {
		_, v, err := x.store.Changed(ctx, t, math.MaxInt64)
		if err != nil {
			return err
		}
		s.since[t] = v
	}
	ids, err := x.store.Catalog(ctx, updater.CatalogItems)
	if err != nil {
		return err
	}
	embs, err := s.vectors(ctx, updater.TableEmbeddings, ids)
	if err != nil {
		return err
	}
	snap := &snapshot{n: len(ids), ids: ids, pos: new(sync.Map), models: make([]*served, len(x.ms))}
	eb := newBuilder(&matrix{dim: embDim(embs)})
	s.setEmbeddings(eb, 0, embs)
	snap.emb = eb.done()
	for mi, m := range x.ms {
		g, err := s.global(ctx, mi)
		if err != nil {
			return err
		}
		rows, err := s.vectors(ctx, itemsTable(m), ids)
		if err != nil {
			return err
		}
		s.raw[mi] = make([]float32, 0, len(ids)*m.ItemDim())
		if err := s.appendRaw(mi, ids, rows); err != nil {
			return err
		}
		b := newBuilder(&matrix{dim: m.ServeDim(), colMajor: true})
		b.grow(len(ids))
		sv := &served{global: g}
		s.recompute(mi, b, sv.global, snap.emb, 0, len(ids))
		sv.items = b.done()
		snap.models[mi] = sv
		s.hasPending[mi] = false
		s.lastGlobal[mi] = time.Now()
	}
	for i, id := range ids {
		snap.pos.Store(id, int32(i))
	}
	if err := s.refreshPopular(ctx, snap); err != nil {
		return err
	}
	x.publish(snap, nil, nil, true)
	return nil
}

// embDim is the length of the first non-nil embedding (0 when there is none).
func embDim(rows [][]float32) int {
	for _, r := range rows {
		if r != nil {
			return len(r)
		}
	}
	return 0
}

// setEmbeddings writes the embeddings of positions from, from+1, ... into b, growing it.
// Embeddings of another length than the matrix's are left out (the updater checks the
// length against its configured EmbeddingDim; a mismatch here means mixed producers).
func (s *syncer) setEmbeddings(b *builder, from int, rows [][]float32) {
	if b.m.dim == 0 {
		return
	}
	b.grow(from + len(rows))
	for i, r := range rows {
		if r != nil && len(r) == b.m.dim {
			b.set(from+i, r)
		}
	}
}

// appendRaw appends item rows (nil: zeros, as the updater starts them) to model mi's raw rows.
func (s *syncer) appendRaw(mi int, ids []string, rows [][]float32) error {
	m := s.x.ms[mi]
	w := m.ItemDim()
	for i, r := range rows {
		if r != nil && len(r) != w {
			return fmt.Errorf("%s row %q has width %d, model wants %d", itemsTable(m), ids[i], len(r), w)
		}
		n := len(s.raw[mi])
		s.raw[mi] = append(s.raw[mi], make([]float32, w)...)
		copy(s.raw[mi][n:], r)
	}
	return nil
}

// recompute writes the item vectors of positions [lo, hi) of model mi into b, a builder
// whose blocks over [lo, hi) are all its own (fresh from grow): the work is split by
// blocks over Workers goroutines (the Servable's vector methods are pure, and each
// goroutine writes only its own blocks, so b's bookkeeping is only read).
func (s *syncer) recompute(mi int, b *builder, global []float32, emb *matrix, lo, hi int) {
	m := s.x.ms[mi]
	w := m.ItemDim()
	part := func(lo, hi int) {
		v := make([]float32, m.ServeDim())
		for i := lo; i < hi; i++ {
			s.vector(m, v, s.raw[mi][i*w:(i+1)*w], global, emb, i)
			b.set(i, v)
		}
	}
	workers := min(s.x.opts.Workers, (hi-lo+blockRows-1)/blockRows)
	if workers <= 1 {
		part(lo, hi)
		return
	}
	for bi := lo / blockRows; bi*blockRows < hi; bi++ {
		if !b.copied[bi] {
			panic("ranking: recompute into a shared block") // not reached: callers pass fresh blocks
		}
	}
	next := make(chan int, (hi-lo)/blockRows+2)
	for start := lo; start < hi; start = (start/blockRows + 1) * blockRows {
		next <- start
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range next {
				part(start, min(hi, (start/blockRows+1)*blockRows))
			}
		}()
	}
	wg.Wait()
}

func (s *syncer) vector(m interface {
	ItemVector(dst, item, global, features []float32)
}, dst, row, global []float32, emb *matrix, i int) {
	var f []float32
	if emb.n > i && emb.has(i) {
		f = emb.row(nil, i)
	}
	clear(dst)
	m.ItemVector(dst, row, global, f)
}

// reading is what one poll read from the store, planned on the snapshot base: the change
// logs' versions, the changed rows of base's items, the catalog's items after base, their
// rows, and the global rows that changed. Reads come first, all of them; a failed read
// leaves the served state and the mirrored versions as they were, so the next poll retries
// the same changes.
type reading struct {
	base    *snapshot
	next    map[string]int64 // versions of the change logs read; nil for a new-items look
	reset   bool             // a table was reset: reload everything
	newIDs  []string         // catalog items after base.n
	embPos  []int            // positions in base whose embeddings changed
	embRows [][]float32      // their embeddings, then the new items'
	models  []modelChange
	globals [][]float32 // per model: a global row read (nil: unchanged)
}

// modelChange is the item rows of one model that a poll read.
type modelChange struct {
	pos  []int       // positions in the base snapshot whose rows changed
	rows [][]float32 // their rows, then the new items' rows
}

// read reads the changes after base: with newOnly, only the items new to the catalog (one
// ZRANGE when there is none; the change logs, global rows and popularity are left to the
// full polls, which read those items' rows again if they changed meanwhile). It touches no
// syncer state but since, which only apply writes, so a full poll's read runs on a goroutine
// of its own while Run goes on looking for new items.
func (s *syncer) read(ctx context.Context, base *snapshot, since map[string]int64, newOnly bool) (*reading, error) {
	x := s.x
	r := &reading{base: base}
	changed := make(map[string][]string)
	if !newOnly {
		r.next = make(map[string]int64)
		for _, t := range s.tables() {
			ids, v, err := x.store.Changed(ctx, t, since[t])
			if err != nil {
				return nil, err
			}
			if v < since[t] { // the table was reset: start over
				r.reset = true
				return r, nil
			}
			r.next[t], changed[t] = v, ids
		}
	}
	// The catalog is read after the change logs, so every changed item that is in the
	// catalog at all is in it by now.
	newIDs, err := x.store.CatalogFrom(ctx, updater.CatalogItems, base.n)
	if err != nil || (newOnly && len(newIDs) == 0) {
		return nil, err
	}
	r.newIDs = newIDs
	isNew := make(map[string]bool, len(newIDs))
	for _, id := range newIDs {
		isNew[id] = true
	}
	// positions (in base) whose rows changed, per table
	oldPos := func(ids []string) ([]string, []int) {
		var out []string
		var ps []int
		for _, id := range ids {
			if isNew[id] {
				continue
			}
			if p, ok := x.position(base, id); ok {
				out, ps = append(out, id), append(ps, int(p))
			}
		}
		return out, ps
	}
	embIDs, embPos := oldPos(changed[updater.TableEmbeddings])
	if r.embRows, err = s.vectors(ctx, updater.TableEmbeddings, append(embIDs, newIDs...)); err != nil {
		return nil, err
	}
	r.embPos = embPos
	r.models, r.globals = make([]modelChange, len(x.ms)), make([][]float32, len(x.ms))
	for mi, m := range x.ms {
		ids, ps := oldPos(changed[itemsTable(m)])
		all := append(ids, newIDs...)
		rows, err := s.vectors(ctx, itemsTable(m), all)
		if err != nil {
			return nil, err
		}
		for k, row := range rows {
			if row != nil && len(row) != m.ItemDim() {
				return nil, fmt.Errorf("%s row %q has width %d, model wants %d", itemsTable(m), all[k], len(row), m.ItemDim())
			}
		}
		r.models[mi] = modelChange{pos: ps, rows: rows}
		if !newOnly && r.next[globalTable(m)] != since[globalTable(m)] {
			if r.globals[mi], err = s.global(ctx, mi); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// apply builds the next snapshot from the served one and r, and publishes it when anything
// changed. Items that a new-items look served after r's base was taken are in both: they
// count as changed rows here (r read them later, or as late).
func (s *syncer) apply(ctx context.Context, r *reading) error {
	x := s.x
	if r.reset {
		x.opts.Logger.Info("ranking: a table was reset; reloading everything")
		return s.load(ctx)
	}
	old := x.snap.Load()
	if old != r.base {
		// Only new-items looks publish between a read and its apply: old extends base
		// by served[0:have] of r.newIDs (the catalog is append-only).
		have := min(old.n-r.base.n, len(r.newIDs))
		for i := range have {
			r.embPos = append(r.embPos, r.base.n+i)
			for mi := range r.models {
				r.models[mi].pos = append(r.models[mi].pos, r.base.n+i)
			}
		}
		// The rows are laid out changed-then-new: the first have new ones move over to
		// the changed ones by the positions just added, in the same order.
		r.newIDs = r.newIDs[have:]
	}
	newIDs := r.newIDs
	n := old.n + len(newIDs)
	changedEmb := len(r.embPos)
	embRows := r.embRows
	// Every read succeeded: build the next snapshot. The new ids are appended in place when
	// the backing array has room: older snapshots read only their first old.n elements,
	// which the append does not touch.
	snap := &snapshot{n: n, ids: append(old.ids[:old.n], newIDs...), pos: old.pos, models: make([]*served, len(x.ms)),
		events: old.events, popular: old.popular}
	eb := newBuilder(old.emb)
	if eb.m.dim == 0 {
		if d := embDim(embRows); d > 0 {
			eb = newBuilder(&matrix{dim: d})
			eb.grow(old.n)
		}
	}
	embChanged := make(map[int]bool)
	if eb.m.dim > 0 {
		eb.grow(n)
		for i, row := range embRows {
			p := 0
			if i < changedEmb {
				p = r.embPos[i]
			} else {
				p = old.n + i - changedEmb
			}
			if row != nil && len(row) == eb.m.dim {
				eb.set(p, row)
				embChanged[p] = true
			}
		}
	}
	snap.emb = eb.done()
	changedAny := len(newIDs) > 0 || len(embChanged) > 0
	now := time.Now()
	logItems, logGlobal := make([][]int32, len(x.ms)), make([]bool, len(x.ms))
	for mi, m := range x.ms {
		c := r.models[mi]
		w := m.ItemDim()
		for k, p := range c.pos {
			dst := s.raw[mi][p*w : (p+1)*w]
			clear(dst)
			copy(dst, c.rows[k])
		}
		if err := s.appendRaw(mi, newIDs, c.rows[len(c.pos):]); err != nil {
			return err // not reached: read checked the widths
		}
		if r.globals[mi] != nil {
			s.pending[mi], s.hasPending[mi] = r.globals[mi], true
		}
		sv := &served{global: old.models[mi].global}
		// The positions whose own vectors changed: logged in either branch, so that a
		// follower (toplists) scores new and changed items at once even when a new global
		// row was applied with them.
		redo := make(map[int]bool, len(c.pos)+len(embChanged)+n-old.n)
		for _, p := range c.pos {
			redo[p] = true
		}
		for p := range embChanged {
			redo[p] = true
		}
		for p := old.n; p < n; p++ {
			redo[p] = true
		}
		for p := range redo {
			logItems[mi] = append(logItems[mi], int32(p))
		}
		if r.next != nil && s.hasPending[mi] && now.Sub(s.lastGlobal[mi]) >= x.opts.GlobalRefresh {
			// Bounded staleness: the new global row changes every item vector; recompute
			// them all, at most once per GlobalRefresh.
			sv.global = s.pending[mi]
			s.hasPending[mi], s.pending[mi] = false, nil
			s.lastGlobal[mi] = now
			b := newBuilder(&matrix{dim: m.ServeDim(), colMajor: true})
			b.grow(n)
			s.recompute(mi, b, sv.global, snap.emb, 0, n)
			sv.items = b.done()
			changedAny = true
			logGlobal[mi] = true
		} else {
			b := newBuilder(old.models[mi].items)
			b.grow(n)
			v := make([]float32, m.ServeDim())
			for p := range redo {
				s.vector(m, v, s.raw[mi][p*w:(p+1)*w], sv.global, snap.emb, p)
				b.set(p, v)
			}
			sv.items = b.done()
			if len(c.pos) > 0 {
				changedAny = true
			}
		}
		snap.models[mi] = sv
	}
	for t, v := range r.next {
		s.since[t] = v
	}
	for i, id := range newIDs {
		snap.pos.Store(id, int32(old.n+i))
	}
	if len(newIDs) > 0 {
		s.popularDue = true
	}
	if r.next != nil && (now.Sub(s.lastPopular) >= x.opts.PopularRefresh || (s.popularDue && now.Sub(s.lastPopular) >= time.Second)) {
		if err := s.refreshPopular(ctx, snap); err != nil {
			x.opts.Logger.Sugar().Warnf("ranking: popularity refresh: %v", err)
		} else {
			changedAny = true
		}
	}
	if changedAny {
		x.publish(snap, logItems, logGlobal, false)
	}
	return nil
}

// poll reads and applies in a row: a full poll, or with newOnly a look for new items.
func (s *syncer) poll(ctx context.Context, newOnly bool) error {
	r, err := s.read(ctx, s.x.snap.Load(), s.since, newOnly)
	if err != nil || r == nil {
		return err
	}
	return s.apply(ctx, r)
}

// Popularity blend: an item's Popular score is
//
//	popWeight·log(1+events)/log(1+maxEvents) + (1−popWeight)·max(0, 1 − age/FreshItems)
//
// where events is its interaction count (counter table "item_events"), maxEvents the
// largest count in the catalog, and age the number of items added to the catalog after it
// (the newest item has age 0). So the most popular item scores 0.7, a brand-new item with
// no interactions 0.3, and an item stops being fresh after FreshItems newer items arrived.
const popWeight = 0.7

// refreshPopular re-reads the interaction counts and ranks every item of snap by the blend.
func (s *syncer) refreshPopular(ctx context.Context, snap *snapshot) error {
	ids := snap.ids[:snap.n]
	ev := make([]int64, 0, len(ids))
	for lo := 0; lo < len(ids); lo += readChunk {
		c, err := s.x.store.Counters(ctx, updater.CounterItemEvents, ids[lo:min(lo+readChunk, len(ids))])
		if err != nil {
			return err
		}
		ev = append(ev, c...)
	}
	snap.events = ev
	snap.popular = popularRanking(ev, s.x.opts.FreshItems)
	s.lastPopular, s.popularDue = time.Now(), false
	return nil
}

// popularRanking ranks positions by the blend, best first, ties by catalog order.
func popularRanking(ev []int64, fresh int) []entry {
	var maxEv int64
	for _, e := range ev {
		maxEv = max(maxEv, e)
	}
	n := len(ev)
	out := make([]entry, n)
	den := math.Log1p(float64(maxEv))
	for i, e := range ev {
		var sc float64
		if den > 0 && e > 0 {
			sc = popWeight * math.Log1p(float64(e)) / den
		}
		if age := n - 1 - i; age < fresh {
			sc += (1 - popWeight) * (1 - float64(age)/float64(fresh))
		}
		out[i] = entry{score: float32(sc), pos: int32(i)}
	}
	slices.SortFunc(out, func(a, b entry) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// Popular returns the k best items by the popularity blend (see popWeight), leaving out the
// ids in exclude: the fallback for users the store has no row for. Empty before the first
// load.
func (x *Index) Popular(k int, exclude map[string]bool) []Scored {
	s := x.snap.Load()
	if s == nil || k < 1 {
		return []Scored{}
	}
	out := make([]Scored, 0, min(k, len(s.popular)))
	for _, e := range s.popular {
		if len(out) == k {
			break
		}
		id := s.ids[e.pos]
		if exclude[id] {
			continue
		}
		out = append(out, Scored{Item: id, Score: e.score})
	}
	return out
}
