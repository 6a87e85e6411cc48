package serving

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/toplists"
)

// ListSource reads the materialized top-K lists that `visrec lists` keeps in Redis
// (docs/lists.md). The server answers a plain recommendations request from a list when one
// is long enough and fresh enough (Options.ListMaxAge), and ranks exactly otherwise.
// Implementations must be safe for concurrent use.
type ListSource interface {
	// TopList returns the first k items of the list of user for model, best first, and the
	// time at which that list was written, read together (the write time belongs to the
	// items returned). ok is false when there is nothing to serve: no list, or fewer than k
	// items. err is for a failed read or a list that cannot be read as one (no write time,
	// say).
	TopList(ctx context.Context, model, user string, k int) (list []Scored, written time.Time, ok bool, err error)
}

// RedisLists reads the lists of one namespace with one round trip per request: a GET of the
// user's list key, a Redis string holding one JSON document with the items and the time the
// materializer wrote them (toplists.DecodeList). The write time is inside the document, so it
// always belongs to the items read.
type RedisLists struct {
	c  redis.UniversalClient
	ns string
}

// NewRedisLists reads the lists of namespace ns through c (which the caller keeps and closes).
func NewRedisLists(c redis.UniversalClient, ns string) *RedisLists { return &RedisLists{c: c, ns: ns} }

// TopList implements ListSource. A missing list is not an error (ok is false); a document
// that does not decode is.
func (l *RedisLists) TopList(ctx context.Context, model, user string, k int) ([]Scored, time.Time, bool, error) {
	if k < 1 {
		return nil, time.Time{}, false, nil
	}
	st, err := toplists.ReadList(ctx, l.c, toplists.ListKey(l.ns, model, user))
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("list of %q: %w", clip(user), err)
	}
	if len(st.Items) < k {
		return nil, time.Time{}, false, nil
	}
	out := make([]Scored, k)
	for i, e := range st.Items[:k] {
		out[i] = Scored{Item: e.Item, Score: e.Score}
	}
	return out, st.Written, true, nil
}
