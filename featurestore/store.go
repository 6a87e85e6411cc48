// Package featurestore keeps visrec's state: model parameter rows (float32 vectors), counters,
// ordered item catalogs and the Kafka offsets that the state corresponds to. Two
// implementations share one contract and one test suite: Redis (production) and memory (the
// embedded demo and unit tests).
//
// Effectively-once rests on Tx: a consumer writes the state produced by a batch of events and
// the offsets after that batch in one Tx, and Commit applies all of it or none of it. The
// offset check in SetOffset fences out a writer that lost its partitions. A store may apply
// a large Tx in parts after one atomic commit point; a writer that died between them leaves
// the rest to Recover, which writers call before they read state that they will write.
package featurestore

import (
	"context"
	"errors"
)

// ErrFenced is returned by Commit when a partition's stored offset is not the one the writer
// expected: another writer has advanced it, so nothing was written.
var ErrFenced = errors.New("featurestore: stored offset moved; another writer owns the partition")

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("featurestore: closed")

// NoOffset is the prev value for a partition that has no stored offset yet.
const NoOffset int64 = -1

// Store is safe for concurrent use by many goroutines. Rows returned by reads belong to the
// caller.
type Store interface {
	// Offsets returns the stored next offset of every partition of topic that has one.
	Offsets(ctx context.Context, topic string) (map[int]int64, error)

	// Vectors returns the rows of ids in table, in order; a missing id yields a nil row.
	Vectors(ctx context.Context, table string, ids []string) ([][]float32, error)

	// ScanVectors calls fn once for every row of table, in no particular order. fn may keep v.
	ScanVectors(ctx context.Context, table string, fn func(id string, v []float32) error) error

	// Counters returns the counters of ids in table, in order; a missing id yields 0.
	Counters(ctx context.Context, table string, ids []string) ([]int64, error)

	// Catalog returns the members of the named catalog in the order they were first appended.
	Catalog(ctx context.Context, name string) ([]string, error)

	// CatalogFrom returns the members of the named catalog from position start on, that is
	// Catalog(name)[start:] (empty when start is at or past the end).
	CatalogFrom(ctx context.Context, name string, start int) ([]string, error)

	// Changed returns the ids of the rows of table written (by SetVector, AddVector or
	// DeleteVector) in
	// commits after version since, in no particular order, and the table's version now.
	// Each commit that writes rows of a table advances its version by one (a commit that
	// the store applies in parts, see Recover: by one per part that writes the table); a
	// table never written is at version 0. Readers that mirror a table poll Changed with the version it
	// returned last and re-read those rows: nothing is missed, whatever the polling rate. A
	// version below since means that the table was reset: reload it whole.
	Changed(ctx context.Context, table string, since int64) (ids []string, version int64, err error)

	// SetMembers returns the members of set id of the named family (written by AddToSet), in
	// no particular order; a missing set is empty.
	SetMembers(ctx context.Context, name, id string) ([]string, error)

	// Begin starts a write transaction. Nothing is sent before Commit.
	Begin() Tx

	// Recover finishes the commits that a writer left half-applied: a store may apply a
	// large Tx in parts after its commit point (the Redis store does), and a writer that
	// dies, or whose Commit fails, between them leaves the rest for Recover. A writer calls
	// it before it reads the state that it will write (the updater when it loads), and
	// after it has fenced out the other writers whose rows it overwrites (a snapshot
	// installation). Readers need not: they may see a commit's parts one by one.
	Recover(ctx context.Context) error

	// Close releases the store's connections.
	Close() error
}

// Tx buffers writes that land together at Commit. A Tx is used by one goroutine. The slices
// passed in are copied when the call returns, so the caller may reuse them.
type Tx interface {
	// SetVector replaces a row (used for state with a single writer: user rows).
	SetVector(table, id string, v []float32)

	// AddVector merges a delta into a shared row: stored[i] = float32(float64(stored[i]) +
	// delta[i]), a missing row counting as zeros. Deltas in float64 make a single writer's
	// merge exact in practice: float64(new) - float64(old) of two float32 values is exact
	// unless their exponents differ by more than 29 bits, so old+delta rounds back to new.
	AddVector(table, id string, delta []float64)

	// MergeVector moves a shared row from base to value: when the stored row equals base bit
	// for bit (no other writer changed it), it becomes value; otherwise it gets the change,
	// exactly as AddVector with delta[i] = float64(value[i]) - float64(base[i]). A missing row
	// counts as zeros. For a single writer it is AddVector's cheap case: the store compares
	// and replaces instead of adding element by element. base and value have one length.
	MergeVector(table, id string, base, value []float32)

	// DeleteVector removes a row (a missing row is no error); later reads see it missing, a
	// later AddVector starts from zeros, and the change log lists it like a write (a
	// mirror's re-read yields nil). Used by snapshot installations (snapshots.Install).
	DeleteVector(table, id string)

	// IncrCounter adds n to a counter.
	IncrCounter(table, id string, n int64)

	// AppendCatalog appends id to the named catalog unless it is already a member.
	AppendCatalog(name, id string)

	// AddToSet adds members to set id of the named family (for example the items a user has
	// seen); members already there are ignored. Adding is idempotent, so it is the one write
	// that Commit may apply even when it fails: the Redis store adds the members ahead of the
	// atomic step. A replay of the events adds the same members again, which changes nothing.
	AddToSet(name, id string, members ...string)

	// SetOffset records next as the offset of topic/partition, provided that the stored offset
	// is prev now (NoOffset: none stored). Otherwise Commit fails with ErrFenced.
	SetOffset(topic string, partition int, prev, next int64)

	// Commit applies every write, or none (on any error before the commit point; AddToSet
	// aside). Every check (fencing, key types, row lengths) runs before the commit point;
	// a store that applies a large Tx in parts (Redis: RedisOptions.CommitPart) does so after
	// it, so that readers may see some parts before others, and an error from a later part
	// (a dropped connection) leaves the commit standing, its rest to Recover. It returns the
	// rows touched by AddVector and MergeVector after the merge, in the order of those calls,
	// so that a cache can pick up other writers' deltas (for a part that Recover applied
	// meanwhile: the row as stored when Commit read it back).
	Commit(ctx context.Context) ([][]float32, error)

	// Rollback discards the buffered writes. Calling it after Commit is a no-op.
	Rollback()
}
