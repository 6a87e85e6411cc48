package ranking

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// A ranking is split into parts, each a contiguous range of blocks with its own scratch row
// of scores and its own top-k heap; the heaps are merged at the end. Part 0 runs on the
// caller's goroutine; the others are handed to idle workers (Run's pool), or run on the
// caller too when no worker is idle.
//
// Concurrent rankings over the same matrix are batched: the item matrix (26 MB at 100,000
// items of 65 floats) does not fit in L2, so one ranking is bound by the bandwidth of L3,
// while the kernel scores rows that sit in L1 several times faster (docs/benchmarks.md).
// A batch therefore reads each block once, 128 rows at a time, scoring them against every
// user vector of the batch (scoreBlockMulti). There is no waiting for a batch to fill: a ranking that finds none running starts at
// once, alone; rankings that arrive meanwhile queue, and when it ends the first of them
// leads the next batch with all those queued (at most maxBatch). Each ranking is still exact
// and its own: batching changes only when the work is done.

// maxBatch bounds the rankings scored together.
const maxBatch = 16

// spec says what to rank: the rows of mat scored against x.
type spec struct {
	mat     *matrix
	x       []float32
	cosine  bool    // divide each score by ‖x‖·‖row‖ (0 when either is 0)
	xnorm   float32 // ‖x‖, with cosine
	onlyHas bool    // skip rows never set (items without an embedding)
	self    int32   // a position to leave out, or -1
	skip    map[int32]struct{}
	k       int
}

// part ranks blocks [lo, hi) of the matrix for every spec of a batch.
type part struct {
	specs  []*spec
	lo, hi int         // blocks
	scores [][]float32 // one row of blockRows scores per spec
	xs     [][]float32 // the specs' vectors
	tops   []topK      // one per spec
	wg     *sync.WaitGroup
}

type job struct {
	parts []part
	wg    sync.WaitGroup
	top   topK
}

// run scores the part's blocks against every spec, block by block (and within a block
// chunk by chunk, see scoreBlockMulti), so that the block is read once for the batch.
func (p *part) run() {
	for len(p.scores) < len(p.specs) {
		p.scores = append(p.scores, make([]float32, blockRows))
	}
	p.xs = p.xs[:0]
	for _, sp := range p.specs {
		p.xs = append(p.xs, sp.x)
	}
	for len(p.tops) < len(p.specs) {
		p.tops = append(p.tops, topK{})
	}
	for i, sp := range p.specs {
		p.tops[i].reset(sp.k)
	}
	m := p.specs[0].mat
	for bi := p.lo; bi < p.hi; bi++ {
		b := m.blocks[bi]
		rows := min(blockRows, m.n-bi*blockRows)
		base := int32(bi * blockRows)
		m.scoreBlockMulti(p.scores[:len(p.specs)], bi, p.xs)
		for i, sp := range p.specs {
			top := &p.tops[i]
			sc := p.scores[i][:rows]
			// bar is the worst kept score once k are kept. A score equal to it loses the
			// tie: every entry kept by this part comes earlier in catalog order (rows are
			// visited in order), so only a higher score can enter — one comparison per row.
			full, bar := top.full(), float32(0)
			if full {
				bar = top.worst().score
			}
			plain := !sp.onlyHas && !sp.cosine
			for r := 0; r < len(sc); r++ {
				if full && plain {
					if r += firstAbove(sc[r:], bar); r >= len(sc) {
						break
					}
				}
				s := sc[r]
				if sp.onlyHas && !b.has[r] {
					continue
				}
				if sp.cosine {
					if d := sp.xnorm * b.norms[r]; d > 0 {
						s /= d
					} else {
						s = 0
					}
				}
				if full && s <= bar {
					continue
				}
				e := entry{score: s, pos: base + int32(r)}
				if full && !better(e, top.worst()) { // NaN scores, a NaN bar
					continue
				}
				if e.pos == sp.self {
					continue
				}
				if sp.skip != nil {
					if _, skip := sp.skip[e.pos]; skip {
						continue
					}
				}
				top.push(e)
				if top.full() {
					full, bar = true, top.worst().score
				}
			}
		}
	}
}

// work runs parts handed to it until ctx is done.
func (x *Index) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-x.tasks:
			p.run()
			p.wg.Done()
		}
	}
}

// rankBatch ranks specs, which share one matrix, and calls emit with each spec's best
// entries, best first (the slice is reused after emit returns).
func (x *Index) rankBatch(specs []*spec, emit func(i int, top []entry)) {
	j, _ := x.jobs.Get().(*job)
	if j == nil {
		j = &job{}
	}
	mat := specs[0].mat
	nb := (mat.n + blockRows - 1) / blockRows
	np := max(1, min(x.opts.Workers, nb))
	for len(j.parts) < np {
		j.parts = append(j.parts, part{})
	}
	for i := range np {
		p := &j.parts[i]
		p.specs, p.lo, p.hi, p.wg = specs, i*nb/np, (i+1)*nb/np, &j.wg
	}
	for i := 1; i < np; i++ {
		j.wg.Add(1)
		select {
		case x.tasks <- &j.parts[i]:
		default:
			j.parts[i].run()
			j.wg.Done()
		}
	}
	j.parts[0].run()
	j.wg.Wait()
	for si, sp := range specs {
		j.top.reset(sp.k)
		for i := range np {
			for _, e := range j.parts[i].tops[si].h {
				j.top.push(e)
			}
		}
		emit(si, j.top.sorted())
	}
	for i := range np {
		j.parts[i].specs = nil
		clear(j.parts[i].xs) // keep no caller's vector alive in the pool
	}
	x.jobs.Put(j)
}

// ticket is one ranking waiting for a batch.
type ticket struct {
	sp   *spec
	res  []entry
	wake chan []*ticket // nil: res is ready; a batch: lead it
}

// batches tracks the batches running per matrix and the rankings queued behind them.
type batches struct {
	mu    sync.Mutex
	busy  map[*matrix]bool
	queue map[*matrix][]*ticket
}

// rank returns the best sp.k rows of sp.mat, best first, batched with concurrent rankings
// of the same matrix.
func (x *Index) rank(sp *spec) []entry {
	t := &ticket{sp: sp}
	b := &x.batches
	b.mu.Lock()
	if b.busy == nil {
		b.busy, b.queue = make(map[*matrix]bool), make(map[*matrix][]*ticket)
	}
	if b.busy[sp.mat] {
		t.wake = make(chan []*ticket, 1)
		b.queue[sp.mat] = append(b.queue[sp.mat], t)
		b.mu.Unlock()
		batch := <-t.wake
		if batch == nil {
			return t.res
		}
		return x.lead(t, batch)
	}
	b.busy[sp.mat] = true
	b.mu.Unlock()
	return x.lead(t, []*ticket{t})
}

// lead runs batch (self among it), hands the results out, and hands the next batch, if any
// queued meanwhile, to its first ticket.
func (x *Index) lead(self *ticket, batch []*ticket) []entry {
	specs := make([]*spec, len(batch))
	for i, t := range batch {
		specs[i] = t.sp
	}
	x.rankBatch(specs, func(i int, top []entry) { batch[i].res = slices.Clone(top) })
	for _, t := range batch {
		if t != self {
			t.wake <- nil
		}
	}
	mat := self.sp.mat
	b := &x.batches
	b.mu.Lock()
	q := b.queue[mat]
	if len(q) == 0 {
		delete(b.busy, mat)
		delete(b.queue, mat)
		b.mu.Unlock()
		return self.res
	}
	n := min(len(q), maxBatch)
	next := q[:n:n]
	b.queue[mat] = slices.Clone(q[n:])
	b.mu.Unlock()
	next[0].wake <- next
	return self.res
}

// Recommend returns the user's best k items for model, best first (fewer when fewer
// items are candidates). It fails with ErrNotReady, ErrUnknownModel, ErrUnknownUser (the
// store has no row for the user: serve Popular instead), ErrUnknownItem (a candidate not in
// the catalog) or ErrInvalidArgument (k < 1).
func (x *Index) Recommend(ctx context.Context, model, user string, k int, o RecOptions) ([]Scored, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want at least 1", ErrInvalidArgument, k)
	}
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	uv, err := x.userVector(ctx, s, mi, user)
	if err != nil {
		return nil, err
	}
	var skip map[int32]struct{}
	if o.ExcludeSeen {
		seen, err := x.store.SetMembers(ctx, seenSet, user)
		if err != nil {
			return nil, fmt.Errorf("ranking: read items seen by %q: %w", user, err)
		}
		skip = make(map[int32]struct{}, len(seen))
		for _, id := range seen {
			if p, ok := x.position(s, id); ok {
				skip[p] = struct{}{}
			}
		}
	}
	mat := s.models[mi].items
	if o.Candidates != nil {
		return x.rankCandidates(s, mat, uv, o.Candidates, skip, k)
	}
	return x.scored(s, x.rank(&spec{mat: mat, x: uv, self: -1, skip: skip, k: k})), nil
}

// rankCandidates ranks the given items only, on the caller's goroutine.
func (x *Index) rankCandidates(s *snapshot, mat *matrix, uv []float32, ids []string, skip map[int32]struct{}, k int) ([]Scored, error) {
	var t topK
	t.reset(k)
	done := make(map[int32]struct{}, len(ids))
	for _, id := range ids {
		p, ok := x.position(s, id)
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownItem, id)
		}
		if _, dup := done[p]; dup {
			continue
		}
		done[p] = struct{}{}
		if _, sk := skip[p]; sk {
			continue
		}
		t.push(entry{score: mat.dot(int(p), uv), pos: p})
	}
	return x.scored(s, t.sorted()), nil
}

func (x *Index) scored(s *snapshot, es []entry) []Scored {
	out := make([]Scored, len(es))
	for i, e := range es {
		out[i] = Scored{Item: s.ids[e.pos], Score: e.score}
	}
	return out
}

// Scores returns model's score of each item for user, in the order of items. It fails like
// Recommend; an item not in the catalog fails the call with ErrUnknownItem.
func (x *Index) Scores(ctx context.Context, model, user string, items []string) ([]float32, error) {
	s, mi, err := x.ready(model)
	if err != nil {
		return nil, err
	}
	pos := make([]int32, len(items))
	for i, id := range items {
		p, ok := x.position(s, id)
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownItem, id)
		}
		pos[i] = p
	}
	uv, err := x.userVector(ctx, s, mi, user)
	if err != nil {
		return nil, err
	}
	mat := s.models[mi].items
	out := make([]float32, len(items))
	for i, p := range pos {
		out[i] = mat.dot(int(p), uv)
	}
	return out, nil
}

// Similarity measures of Similar.
const (
	ByCF    = "cf"    // cosine of the model's item vectors
	ByImage = "image" // cosine of the image embeddings (the model is not used)
)

// Similar returns the k items most similar to item, best first, the item itself left out.
// by is ByCF (cosine of model's item vectors, the serving vectors of models.Servable, bias
// terms included) or ByImage (cosine of the image embeddings; items without one are left
// out, and an item without one fails with ErrNoEmbedding). A zero vector has cosine 0 with
// everything. Ties are broken by catalog order.
func (x *Index) Similar(ctx context.Context, model, item string, k int, by string) ([]Scored, error) {
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want at least 1", ErrInvalidArgument, k)
	}
	var s *snapshot
	var mat *matrix
	switch by {
	case ByCF:
		ss, mi, err := x.ready(model)
		if err != nil {
			return nil, err
		}
		s, mat = ss, ss.models[mi].items
	case ByImage:
		s = x.snap.Load()
		if s == nil {
			return nil, ErrNotReady
		}
		if model != "" {
			if _, ok := x.byName[model]; !ok {
				return nil, fmt.Errorf("%w %q", ErrUnknownModel, model)
			}
		}
		mat = s.emb
	default:
		return nil, fmt.Errorf("%w: similarity %q (want %q or %q)", ErrInvalidArgument, by, ByCF, ByImage)
	}
	p, ok := x.position(s, item)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownItem, item)
	}
	if by == ByImage && (mat.n <= int(p) || !mat.has(int(p))) {
		return nil, fmt.Errorf("%w: %q", ErrNoEmbedding, item)
	}
	if mat.n == 0 {
		return []Scored{}, nil
	}
	xv := slices.Clone(mat.row(make([]float32, mat.dim), int(p)))
	sp := &spec{mat: mat, x: xv, cosine: true, xnorm: mat.rowNorm(int(p)), onlyHas: by == ByImage, self: p, k: k}
	return x.scored(s, x.rank(sp)), nil
}
