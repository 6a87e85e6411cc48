package serving

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// fake is a Backend test double: a dot-product model over fixed vectors, ranked by brute
// force, with a switch for readiness and an optional delay that honours the context.
type fake struct {
	ready   atomic.Bool
	delay   time.Duration
	models  []string
	users   map[string][]float32
	items   []string
	vecs    map[string][]float32
	emb     map[string][]float32
	seen    map[string][]string
	events  map[string]int64
	version uint64
}

func newFake() *fake {
	f := &fake{
		models: []string{"bpr", "mf"},
		users:  map[string][]float32{"u1": {1, 0}, "u2": {0, 1}},
		items:  []string{"a", "b", "c", "d"},
		vecs:   map[string][]float32{"a": {3, 0}, "b": {2, 1}, "c": {1, 2}, "d": {0, 3}},
		emb:    map[string][]float32{"a": {1, 0}, "b": {1, 0.1}, "c": {0, 1}},
		seen:   map[string][]string{"u1": {"a"}},
		events: map[string]int64{"a": 1, "b": 5, "c": 3, "d": 0},
	}
	f.version = 7
	f.ready.Store(true)
	return f
}

func (f *fake) Ready() bool      { return f.ready.Load() }
func (f *fake) Models() []string { return slices.Clone(f.models) }
func (f *fake) Version() uint64  { return f.version }

func (f *fake) wait(ctx context.Context) error {
	if f.delay == 0 {
		return nil
	}
	select {
	case <-time.After(f.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fake) check(model string) error {
	if !slices.Contains(f.models, model) {
		return fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	return nil
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func topK(list []Scored, k int) []Scored {
	slices.SortStableFunc(list, func(a, b Scored) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	return list[:min(k, len(list))]
}

func (f *fake) Recommend(ctx context.Context, model, user string, k int, o RecOptions) ([]Scored, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if err := f.check(model); err != nil {
		return nil, err
	}
	u, ok := f.users[user]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, user)
	}
	cands := f.items
	if o.Candidates != nil {
		cands = o.Candidates
	}
	var list []Scored
	for _, it := range cands {
		v, ok := f.vecs[it]
		if !ok || (o.ExcludeSeen && slices.Contains(f.seen[user], it)) {
			continue
		}
		list = append(list, Scored{Item: it, Score: dot(u, v)})
	}
	return topK(list, k), nil
}

func (f *fake) Scores(ctx context.Context, model, user string, items []string) ([]float32, error) {
	if err := f.check(model); err != nil {
		return nil, err
	}
	u, ok := f.users[user]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, user)
	}
	out := make([]float32, len(items))
	for i, it := range items {
		v, ok := f.vecs[it]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownItem, it)
		}
		out[i] = dot(u, v)
	}
	return out, nil
}

func (f *fake) Similar(ctx context.Context, model, item string, k int, by string) ([]Scored, error) {
	if err := f.check(model); err != nil {
		return nil, err
	}
	src := f.vecs
	if by == "image" {
		src = f.emb
	}
	if _, ok := f.vecs[item]; !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownItem, item)
	}
	q, ok := src[item]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoEmbedding, item)
	}
	var list []Scored
	for _, it := range f.items {
		if v, ok := src[it]; ok && it != item {
			list = append(list, Scored{Item: it, Score: dot(q, v)})
		}
	}
	return topK(list, k), nil
}

func (f *fake) Item(id string) (ItemInfo, bool) {
	i := slices.Index(f.items, id)
	if i < 0 {
		return ItemInfo{}, false
	}
	_, emb := f.emb[id]
	return ItemInfo{ID: id, Position: i, Events: f.events[id], HasEmbedding: emb}, true
}

func (f *fake) Popular(k int, exclude map[string]bool) []Scored {
	var list []Scored
	for _, it := range f.items {
		if !exclude[it] {
			list = append(list, Scored{Item: it, Score: float32(f.events[it])})
		}
	}
	return topK(list, k)
}
