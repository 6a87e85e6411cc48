package serving

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// items returned). ok is false when there is nothing to serve: no list, no write time,
	// or fewer than k items. err is for a failed read only.
	TopList(ctx context.Context, model, user string, k int) (list []Scored, written time.Time, ok bool, err error)
}

// RedisLists reads the lists of one namespace with one round trip per request: a MULTI/EXEC
// block of ZREVRANGE and HGET, so that the write time is the one of the list read (the
// materializer replaces a list and its time in one MULTI/EXEC block too).
type RedisLists struct {
	c  redis.UniversalClient
	ns string
}

// NewRedisLists reads the lists of namespace ns through c (which the caller keeps and closes).
func NewRedisLists(c redis.UniversalClient, ns string) *RedisLists { return &RedisLists{c: c, ns: ns} }

// TopList implements ListSource.
func (l *RedisLists) TopList(ctx context.Context, model, user string, k int) ([]Scored, time.Time, bool, error) {
	if k < 1 {
		return nil, time.Time{}, false, nil
	}
	var zr *redis.ZSliceCmd
	var ts *redis.StringCmd
	_, err := l.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		zr = p.ZRevRangeWithScores(ctx, toplists.ListKey(l.ns, model, user), 0, int64(k-1))
		ts = p.HGet(ctx, toplists.FreshnessKey(l.ns, model), user)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, time.Time{}, false, fmt.Errorf("read list of %q: %w", clip(user), err)
	}
	z := zr.Val()
	if len(z) < k || ts.Err() != nil {
		return nil, time.Time{}, false, nil
	}
	ms, err := strconv.ParseInt(ts.Val(), 10, 64)
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("list write time of %q is %q, not Unix ms", clip(user), clip(ts.Val()))
	}
	out := make([]Scored, len(z))
	for i, m := range z {
		id, _ := m.Member.(string)
		out[i] = Scored{Item: id, Score: float32(m.Score)} // a widened float32: exact
	}
	return out, time.UnixMilli(ms), true, nil
}
