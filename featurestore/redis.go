package featurestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Redis is the production Store, on Redis 7 or later (Commit is a Lua script with a
// shebang, and it needs Redis Lua's struct library).
//
// # Key layout
//
// Every key of a namespace ns (RedisOptions.Namespace) starts with the hash tag {ns}, so a
// namespace lives in one Redis Cluster slot. That is what makes Commit atomic on a cluster
// too: one script on one node touches every key it needs. The price is that one namespace
// is served by one node; run several namespaces to spread load.
//
//	{ns}:v:T          hash   rows of table T: field id → little-endian float32 blob
//	{ns}:c:T          hash   counters of table T: field id → decimal int64 (HINCRBY)
//	{ns}:cat:N        zset   catalog N: member id, score = insertion sequence 0, 1, 2, ...
//	                         (ZADD NX, score = highest score + 1, which is ZCARD unless
//	                         members were removed by hand; ZRANGE {ns}:cat:N 0 -1 lists
//	                         the ids in insertion order)
//	{ns}:off:<topic>  hash   offsets of topic: field partition (decimal) → next offset (decimal)
//	{ns}:chg:T        zset   change log of table T: member id, score = the table's version at
//	                         the row's last write (each commit that writes T adds 1; the
//	                         highest score is T's version)
//	{ns}:set:N:id     set    set id of family N (AddToSet), e.g. {visrec}:set:seen:u42
//	{ns}:redo:pending set    ids of the commits whose parts are not all applied (Commits in parts)
//	{ns}:redo:<id>    hash   their parts: field part number (4 digits) → the part's script call
//
// For example: redis-cli HGETALL '{visrec}:off:visrec.events'.
//
// # Commit
//
// Commit sends the whole Tx (or, for a large one, each of its parts: see below) as one Lua
// script (commit.lua; EVALSHA, falling back to EVAL), with every key it touches in KEYS. The script first checks every SetOffset
// (ErrFenced), key types, blob and delta lengths and the stored rows that deltas land on,
// and writes only when all checks pass; counters that still fail at HINCRBY (overflow, a
// non-integer field) are undone before the script returns the error. So a Commit that the
// script rejects wrote nothing, with one exception: the AddToSet members go ahead of the
// script, in one pipeline of SADDs, because adding is idempotent and thousands of small sets
// per flush would otherwise lengthen the time the script blocks Redis.
//
// Redis runs a script atomically and, since 7.0, replicates its effects as one MULTI/EXEC
// block. State and offsets share a slot, so a failover that loses the last acknowledged
// writes (replication is asynchronous) loses the state and the offsets together: the
// updater that takes over reads the older offsets and re-applies exactly the lost events.
// Effectively-once therefore holds on a cluster, with respect to what Redis kept.
//
// A script blocks Redis while it runs: a row costs it a few µs (MergeVector's cheap case,
// SetVector: about 5 µs for 65 floats, arguments and change log included) to about 10 µs
// (AddVector, or a MergeVector whose row another writer moved: unpack, add, repack). Every
// other client waits meanwhile: the serving lookups, and the small commits of new items
// whose freshness counts in milliseconds. Hence:
//
// # Commits in parts
//
// A Tx with more than RedisOptions.CommitPart row writes (default 250) is committed in a
// stage script and part scripts of at most CommitPart row writes each (redis_parts.go):
//
//   - The rows are checked ahead, CommitPart rows per read-only script (blob lengths, and
//     the lengths of the stored rows that deltas land on: reading those rows was most of a
//     stage's time), after the change log of each table written has been read. A check that
//     fails refuses the Tx; nothing is written.
//   - The parts' script calls are written, with plain HSETs (a script would pay for every
//     byte of them), to {ns}:redo:<commit id>, which expires in an hour unless:
//   - the stage runs the other checks of the whole Tx (fencing, key types) and checks again
//     the rows that a commit wrote since they were checked ahead (those their table's
//     change log lists since the version read before: it lists every row write), applies
//     the counters and the offsets, makes the parts permanent and adds the commit's id to
//     {ns}:redo:pending. It is the commit point: a Tx that it rejects wrote nothing (its
//     parts are deleted), and one that it accepts stands, whatever happens to the writer
//     afterwards.
//   - Each part writes its rows and their change log and deletes its field, in one script
//     that does nothing if the field is gone (so that a part lands once, whoever applies it);
//     the last one takes the id out of the pending set. The catalog appends go with the last
//     part, after every row.
//
// Recover applies the parts of the pending commits (a writer died or lost its connection
// between them): oldest commit first, each commit's parts in order. The updater calls it
// when it loads, a snapshot installation after it has frozen the model. Readers see a
// commit's parts one by one, each advancing the versions of the tables it writes.
//
// redis-cli SMEMBERS '{visrec}:redo:pending' lists the commits not yet applied (none, but
// for the few milliseconds of a commit in flight). A part that cannot apply (a key of the
// wrong type, made by hand) stays, and Recover reports it, until the cause is fixed.
//
// A Commit that fails in transport (a timeout, a cancelled ctx, a dropped connection) may
// or may not have been applied: re-read Offsets to learn which.
//
// # Concurrency
//
// Redis is safe for concurrent use. Reads are single commands (HMGET, HSCAN, ZRANGE,
// HGETALL) and see committed state only; ScanVectors is not a snapshot.
type Redis struct {
	c      redis.UniversalClient
	ns     string
	script *redis.Script
	part   int // row writes per script call of a commit in parts; 0: never in parts
	closed atomic.Bool

	afterPart   func(part int) error // tests: runs after each part of a commit; an error stops it
	afterChecks func() error         // tests: runs between a commit's checks ahead and its stage
}

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Namespace prefixes every key (as the hash tag {Namespace}); default "visrec". It must
	// not contain '{' or '}'.
	Namespace string
	// CommitPart is the most row writes (SetVector, AddVector, MergeVector, DeleteVector)
	// that one script call of Commit applies: a Tx with more is committed in parts (see
	// Commits in parts). 0 means the default, DefaultCommitPart; a negative value commits
	// every Tx in one script.
	CommitPart int
}

// DefaultCommitPart is RedisOptions.CommitPart's default: a part of 250 row writes blocks
// Redis for about 1-3 ms (500 measured 3.6-4.1 ms at the median under bench freshness's
// load, and a new item's p99 to a list was lower with 250 in 6 of 8 alternated pairs:
// docs/benchmarks.md, Commits in parts).
const DefaultCommitPart = 250

// DefaultRedisOptions returns the defaults: namespace "visrec", CommitPart DefaultCommitPart.
func DefaultRedisOptions() RedisOptions {
	return RedisOptions{Namespace: "visrec", CommitPart: DefaultCommitPart}
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store on client, which may be a single-node, sentinel or cluster
// client. The store takes ownership of client: Close closes it.
func NewRedis(client redis.UniversalClient, opts RedisOptions) (*Redis, error) {
	if client == nil {
		return nil, errors.New("featurestore: NewRedis: nil client")
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultRedisOptions().Namespace
	}
	if strings.ContainsAny(opts.Namespace, "{}") {
		return nil, fmt.Errorf("featurestore: NewRedis: namespace %q contains a brace", opts.Namespace)
	}
	part := opts.CommitPart
	switch {
	case part == 0:
		part = DefaultCommitPart
	case part < 0:
		part = 0
	}
	return &Redis{c: client, ns: opts.Namespace, script: redis.NewScript(commitScript), part: part}, nil
}

// Namespace returns the store's namespace.
func (r *Redis) Namespace() string { return r.ns }

// key returns the key of kind ("v", "c", "cat", "off") and name.
func (r *Redis) key(kind, name string) string {
	return "{" + r.ns + "}:" + kind + ":" + name
}

// Offsets implements Store.
func (r *Redis) Offsets(ctx context.Context, topic string) (map[int]int64, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	m, err := r.c.HGetAll(ctx, r.key("off", topic)).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(m))
	for p, o := range m {
		pi, err1 := strconv.Atoi(p)
		oi, err2 := strconv.ParseInt(o, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("featurestore: offsets of %s: corrupt entry %q=%q: %w", topic, p, o, err)
		}
		out[pi] = oi
	}
	return out, nil
}

// Vectors implements Store with one HMGET.
func (r *Redis) Vectors(ctx context.Context, table string, ids []string) ([][]float32, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	out := make([][]float32, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := r.c.HMGet(ctx, r.key("v", table), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: vectors of %s: %w", table, err)
	}
	if len(vals) != len(ids) {
		return nil, fmt.Errorf("featurestore: vectors of %s: HMGET returned %d values for %d ids", table, len(vals), len(ids))
	}
	// One backing array for all rows, each row capped, saves an allocation per row.
	total := 0
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if len(s)%4 != 0 {
				return nil, fmt.Errorf("featurestore: vectors of %s: row %q: %w", table, ids[i], errCorrupt(len(s)))
			}
			total += len(s) / 4
		}
	}
	buf := make([]float32, total)
	for i, v := range vals {
		if s, ok := v.(string); ok {
			n := len(s) / 4
			out[i] = decodeF32Into(buf[:n:n], s)
			buf = buf[n:]
		}
	}
	return out, nil
}

// ScanVectors implements Store with HSCAN (COUNT 1000). HSCAN may return a field twice;
// ScanVectors remembers the ids it has passed to fn so that fn sees each id once, which
// costs memory for every id of the table. An error from fn stops the scan and is returned as
// it is.
func (r *Redis) ScanVectors(ctx context.Context, table string, fn func(id string, v []float32) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	key := r.key("v", table)
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		kv, next, err := r.c.HScan(ctx, key, cursor, "", 1000).Result()
		if err != nil {
			return fmt.Errorf("featurestore: scan %s: %w", table, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			id := kv[i]
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			v, err := decodeF32(kv[i+1])
			if err != nil {
				return fmt.Errorf("featurestore: scan %s: row %q: %w", table, id, err)
			}
			if err := fn(id, v); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Counters implements Store with one HMGET.
func (r *Redis) Counters(ctx context.Context, table string, ids []string) ([]int64, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	out := make([]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := r.c.HMGet(ctx, r.key("c", table), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: counters of %s: %w", table, err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if out[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("featurestore: counters of %s: %q: %w", table, ids[i], err)
		}
	}
	return out, nil
}

// Catalog implements Store with ZRANGE 0 -1.
func (r *Redis) Catalog(ctx context.Context, name string) ([]string, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	ids, err := r.c.ZRange(ctx, r.key("cat", name), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: catalog %s: %w", name, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// CatalogFrom implements Store with ZRANGE start -1.
func (r *Redis) CatalogFrom(ctx context.Context, name string, start int) ([]string, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	ids, err := r.c.ZRange(ctx, r.key("cat", name), int64(max(start, 0)), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: catalog %s: %w", name, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// Changed implements Store: the table's version and the ids scored above since in its
// change log, read in one MULTI so that they agree.
func (r *Redis) Changed(ctx context.Context, table string, since int64) ([]string, int64, error) {
	if r.closed.Load() {
		return nil, 0, ErrClosed
	}
	key := r.key("chg", table)
	var top *redis.ZSliceCmd
	var ids *redis.StringSliceCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		top = p.ZRangeWithScores(ctx, key, -1, -1)
		ids = p.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(since, 10), Max: "+inf"})
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("featurestore: changes of %s: %w", table, err)
	}
	var version int64
	if z := top.Val(); len(z) == 1 {
		version = int64(z[0].Score)
	}
	if version <= since {
		return nil, version, nil
	}
	return ids.Val(), version, nil
}

// setKey is the key of set id of family name.
func (r *Redis) setKey(name, id string) string { return r.key("set", name+":"+id) }

// SetMembers implements Store with SMEMBERS.
func (r *Redis) SetMembers(ctx context.Context, name, id string) ([]string, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	m, err := r.c.SMembers(ctx, r.setKey(name, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("featurestore: set %s/%s: %w", name, id, err)
	}
	return m, nil
}

// Begin implements Store.
func (r *Redis) Begin() Tx { return &redisTx{r: r} }

// Close implements Store: it closes the client. Later calls return ErrClosed; closing twice
// is a no-op.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("featurestore: close: %w", err)
	}
	return nil
}
