package ranking

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
)

// A ranking request is split into parts, each a contiguous range of blocks with its own
// scratch row of scores and its own top-k heap; the heaps are merged at the end. Part 0 runs
// on the caller's goroutine; the others are handed to idle workers (Run's pool), or run on
// the caller too when no worker is idle — under many concurrent requests each request then
// runs on its own goroutine, which is the most efficient split anyway.

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

type part struct {
	sp     *spec
	lo, hi int // blocks
	scores []float32
	top    topK
	wg     *sync.WaitGroup
}

type job struct {
	parts []part
	wg    sync.WaitGroup
	top   topK
}

// run scores the part's blocks and keeps its best k.
func (p *part) run() {
	sp := p.sp
	m := sp.mat
	p.top.reset(sp.k)
	if cap(p.scores) < blockRows {
		p.scores = make([]float32, blockRows)
	}
	for bi := p.lo; bi < p.hi; bi++ {
		b := m.blocks[bi]
		rows := min(blockRows, m.n-bi*blockRows)
		sc := p.scores[:rows]
		matvec(sc, b.data, sp.x, m.dim)
		base := int32(bi * blockRows)
		for r, s := range sc {
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
			e := entry{score: s, pos: base + int32(r)}
			if p.top.full() && !better(e, p.top.worst()) {
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
			p.top.push(e)
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

// rank returns the best sp.k rows of sp.mat, best first. The result is valid until the job
// is returned to the pool with x.jobs.Put.
func (x *Index) rank(sp *spec) (*job, []entry) {
	j, _ := x.jobs.Get().(*job)
	if j == nil {
		j = &job{}
	}
	nb := (sp.mat.n + blockRows - 1) / blockRows
	np := max(1, min(x.opts.Workers, nb))
	if cap(j.parts) < np {
		j.parts = make([]part, np)
	}
	j.parts = j.parts[:np]
	for i := range j.parts {
		p := &j.parts[i]
		p.sp, p.lo, p.hi, p.wg = sp, i*nb/np, (i+1)*nb/np, &j.wg
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
	j.top.reset(sp.k)
	for i := range j.parts {
		for _, e := range j.parts[i].top.h {
			j.top.push(e)
		}
		j.parts[i].sp = nil
	}
	return j, j.top.sorted()
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
	sp := &spec{mat: mat, x: uv, self: -1, skip: skip, k: k}
	j, top := x.rank(sp)
	out := x.scored(s, top)
	x.jobs.Put(j)
	return out, nil
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
		t.push(entry{score: dot(mat.row(int(p)), uv), pos: p})
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
		out[i] = dot(mat.row(int(p)), uv)
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
	xv := slices.Clone(mat.row(int(p)))
	sp := &spec{mat: mat, x: xv, cosine: true, xnorm: mat.rowNorm(int(p)), onlyHas: by == ByImage, self: p, k: k}
	j, top := x.rank(sp)
	out := x.scored(s, top)
	x.jobs.Put(j)
	return out, nil
}

var _ = math.Inf
