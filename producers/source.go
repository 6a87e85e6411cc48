package producers

import (
	"iter"

	"github.com/visrec/visrec/events"
)

// Source is a stream of interactions in non-decreasing timestamp order.
//
// Next returns the next event and true, or a zero event and false at the end of the stream
// or on the first error; after false, Err says which (nil at a clean end). A Source is used
// by one goroutine at a time.
type Source interface {
	Next() (events.Interaction, bool)
	Err() error
}

// Sized is implemented by sources that know how many events they will deliver in all; the
// replayer uses it for the progress bar. Len returns -1 when the count is unknown.
type Sized interface {
	Len() int64
}

// SliceSource delivers the events of a slice in slice order. It does not copy the slice.
type SliceSource struct {
	evs []events.Interaction
	pos int
}

// NewSliceSource returns a Source over evs, which must already be in timestamp order.
func NewSliceSource(evs []events.Interaction) *SliceSource { return &SliceSource{evs: evs} }

// Next implements Source.
func (s *SliceSource) Next() (events.Interaction, bool) {
	if s.pos >= len(s.evs) {
		return events.Interaction{}, false
	}
	s.pos++
	return s.evs[s.pos-1], true
}

// Err implements Source; a slice never fails.
func (s *SliceSource) Err() error { return nil }

// Len implements Sized.
func (s *SliceSource) Len() int64 { return int64(len(s.evs)) }

// All adapts a Source to a range-over-func iterator. Check src.Err() after the loop.
func All(src Source) iter.Seq[events.Interaction] {
	return func(yield func(events.Interaction) bool) {
		for {
			e, ok := src.Next()
			if !ok || !yield(e) {
				return
			}
		}
	}
}

// Collect drains src into a slice. limit > 0 stops after limit events.
func Collect(src Source, limit int) ([]events.Interaction, error) {
	var out []events.Interaction
	if n, ok := src.(Sized); ok && n.Len() > 0 {
		c := n.Len()
		if limit > 0 && int64(limit) < c {
			c = int64(limit)
		}
		out = make([]events.Interaction, 0, c)
	}
	for limit <= 0 || len(out) < limit {
		e, ok := src.Next()
		if !ok {
			break
		}
		out = append(out, e)
	}
	return out, src.Err()
}
