package datasets

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/visrec/visrec/events"
)

// ErrNoTimestamp is wrapped by the error of WriteEventsJSONL for an interaction without a
// timestamp (TS <= 0), which the event schema requires.
var ErrNoTimestamp = errors.New("interaction without a timestamp")

// JSONLOptions say how WriteEventsJSONL writes a data set.
type JSONLOptions struct {
	// StartMillis, when positive, replaces every timestamp: interaction i (in the data
	// set's order) gets StartMillis + i, one millisecond apart. For sources without
	// timestamps (UIR with 2 or 3 columns), whose events the event schema cannot carry.
	StartMillis int64
}

// Event returns interaction i as an event-schema-v1 interaction with external ids. A rating
// carries its value; other types carry it only when it is not the implicit 1.
func (d *Dataset) Event(i int) events.Interaction { return d.EventOf(d.Interactions[i]) }

// EventOf is Event for an interaction of d held elsewhere (a split's train or test part).
func (d *Dataset) EventOf(x Interaction) events.Interaction {
	e := events.Interaction{Type: x.Type, User: d.Users[x.User], Item: d.Items[x.Item], Timestamp: x.TS, Value: x.Value}
	e.HasValue = x.Type == events.Rating || x.Value != 1
	if !e.HasValue {
		e.Value = 0
	}
	return e
}

// WriteEventsJSONL writes the interactions, in order, as JSON lines of the event schema v1
// (what producers' JSONL reader and visrec replay read) and returns how many it wrote. An
// interaction the schema rejects (for example one without a timestamp when StartMillis is
// 0) stops the write with an error naming its index.
func WriteEventsJSONL(w io.Writer, d *Dataset, opts JSONLOptions) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	var buf []byte
	for i := range d.Interactions {
		e := d.Event(i)
		if opts.StartMillis > 0 {
			e.Timestamp = opts.StartMillis + int64(i)
		}
		if e.Timestamp <= 0 {
			return i, fmt.Errorf("%s: interaction %d (user %q, item %q): %w (the source has no timestamps)", d.Name, i, e.User, e.Item, ErrNoTimestamp)
		}
		if err := e.Validate(); err != nil {
			return i, fmt.Errorf("%s: interaction %d (user %q, item %q): %w", d.Name, i, e.User, e.Item, err)
		}
		buf = append(e.AppendJSON(buf[:0]), '\n')
		if _, err := bw.Write(buf); err != nil {
			return i, err
		}
	}
	return len(d.Interactions), bw.Flush()
}
