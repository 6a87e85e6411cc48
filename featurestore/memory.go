package featurestore

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// Memory is the in-memory Store: the embedded demo's store and the reference that the Redis
// store is tested against. It has exactly the Redis store's semantics (the float64 delta merge
// rounds the same way, a row length mismatch fails Commit, SetOffset fences, Commit is all or
// nothing) but keeps nothing across processes.
//
// Memory is safe for concurrent use; one mutex guards all state, and Commit holds it for the
// whole transaction, so a Commit is atomic with respect to every other call. Rows go in and
// come out as copies: nothing the caller passes in or gets back is shared with the store.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	rows     map[string]map[string][]float32           // table → id → row
	counters map[string]map[string]int64               // table → id → counter
	catalogs map[string]*memCatalog                    // name → members
	offsets  map[string]map[int]int64                  // topic → partition → next offset
	versions map[string]int64                          // table → version (commits that wrote rows)
	changed  map[string]map[string]int64               // table → id → version of its last write
	sets     map[string]map[string]map[string]struct{} // family → id → members
}

type memCatalog struct {
	ids    []string
	member map[string]struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		rows:     make(map[string]map[string][]float32),
		counters: make(map[string]map[string]int64),
		catalogs: make(map[string]*memCatalog),
		offsets:  make(map[string]map[int]int64),
		versions: make(map[string]int64),
		changed:  make(map[string]map[string]int64),
		sets:     make(map[string]map[string]map[string]struct{}),
	}
}

// Offsets implements Store.
func (m *Memory) Offsets(ctx context.Context, topic string) (map[int]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := make(map[int]int64, len(m.offsets[topic]))
	for p, o := range m.offsets[topic] {
		out[p] = o
	}
	return out, nil
}

// Vectors implements Store.
func (m *Memory) Vectors(ctx context.Context, table string, ids []string) ([][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	t := m.rows[table]
	out := make([][]float32, len(ids))
	total := 0
	for _, id := range ids {
		total += len(t[id])
	}
	buf := make([]float32, total) // one backing array, each row capped
	for i, id := range ids {
		if r, ok := t[id]; ok {
			out[i] = buf[:len(r):len(r)]
			copy(out[i], r)
			buf = buf[len(r):]
		}
	}
	return out, nil
}

// ScanVectors implements Store. It copies the table under the lock and calls fn without it,
// so fn may call the store; writes committed meanwhile are not seen. An error from fn stops
// the scan and is returned as it is.
func (m *Memory) ScanVectors(ctx context.Context, table string, fn func(id string, v []float32) error) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	type row struct {
		id string
		v  []float32
	}
	rows := make([]row, 0, len(m.rows[table]))
	for id, r := range m.rows[table] {
		rows = append(rows, row{id, append(make([]float32, 0, len(r)), r...)})
	}
	m.mu.Unlock()
	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("featurestore: scan %s: %w", table, err)
		}
		if err := fn(r.id, r.v); err != nil {
			return err
		}
	}
	return nil
}

// Counters implements Store.
func (m *Memory) Counters(ctx context.Context, table string, ids []string) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = m.counters[table][id]
	}
	return out, nil
}

// Catalog implements Store.
func (m *Memory) Catalog(ctx context.Context, name string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	c := m.catalogs[name]
	if c == nil {
		return []string{}, nil
	}
	return append(make([]string, 0, len(c.ids)), c.ids...), nil
}

// CatalogFrom implements Store.
func (m *Memory) CatalogFrom(ctx context.Context, name string, start int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	c := m.catalogs[name]
	if c == nil || start >= len(c.ids) {
		return []string{}, nil
	}
	return append(make([]string, 0, len(c.ids)-max(start, 0)), c.ids[max(start, 0):]...), nil
}

// Changed implements Store. It walks every row of table that was ever written.
func (m *Memory) Changed(ctx context.Context, table string, since int64) ([]string, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, ErrClosed
	}
	v := m.versions[table]
	var ids []string
	if v > since {
		for id, at := range m.changed[table] {
			if at > since {
				ids = append(ids, id)
			}
		}
	}
	return ids, v, nil
}

// SetMembers implements Store.
func (m *Memory) SetMembers(ctx context.Context, name, id string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	set := m.sets[name][id]
	out := make([]string, 0, len(set))
	for member := range set {
		out = append(out, member)
	}
	return out, nil
}

// Begin implements Store.
func (m *Memory) Begin() Tx { return &memTx{m: m} }

// Recover implements Store: a memory commit is never left half-applied.
func (m *Memory) Recover(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Store: it drops the state; later calls return ErrClosed. Closing twice is
// a no-op.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.rows, m.counters, m.catalogs, m.offsets = nil, nil, nil, nil
	m.versions, m.changed, m.sets = nil, nil, nil
	return nil
}

// memTx is the Memory store's Tx; see Tx for the contract.
type memTx struct {
	txBuf
	m *Memory
}

// Commit implements Tx. It checks every SetOffset first (ErrFenced), then every row length
// and counter overflow, and only then writes, all under the store's lock.
func (tx *memTx) Commit(ctx context.Context) ([][]float32, error) {
	ops, err := tx.finish()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("featurestore: commit: %w", err)
	}
	m := tx.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if err := m.check(ops); err != nil {
		return nil, err
	}
	return m.apply(ops), nil
}

type rowKey struct{ table, id string }

type partKey struct {
	topic     string
	partition int
}

// check runs the Tx against the stored state without writing: fencing first, then row
// lengths and counter overflow. m.mu is held.
func (m *Memory) check(ops []op) error {
	offs := make(map[partKey]int64)
	for _, o := range ops {
		if o.kind != opSetOffset {
			continue
		}
		k := partKey{o.name, o.partition}
		cur, ok := offs[k]
		if !ok {
			cur = NoOffset
			if s, ok := m.offsets[o.name][o.partition]; ok {
				cur = s
			}
		}
		if cur != o.n {
			return fmt.Errorf("%w (%s/%d: stored %d, expected %d)", ErrFenced, o.name, o.partition, cur, o.n)
		}
		offs[k] = o.next
	}
	lens := make(map[rowKey]int)     // length after the ops so far; -1: missing
	counts := make(map[rowKey]int64) // counter after the ops so far
	for _, o := range ops {
		k := rowKey{o.name, o.id}
		switch o.kind {
		case opSetVector:
			lens[k] = len(o.vec)
		case opDeleteVector:
			lens[k] = -1
		case opAddVector, opMergeVector:
			n, what := len(o.delta), "AddVector"
			if o.kind == opMergeVector {
				n, what = len(o.vec), "MergeVector"
			}
			cur, ok := lens[k]
			if !ok {
				cur = -1
				if r, ok := m.rows[o.name][o.id]; ok {
					cur = len(r)
				}
			}
			if cur >= 0 && cur != n {
				return fmt.Errorf("featurestore: %s %s/%s: delta has %d values, row has %d", what, o.name, o.id, n, cur)
			}
			lens[k] = n
		case opIncrCounter:
			cur, ok := counts[k]
			if !ok {
				cur = m.counters[o.name][o.id]
			}
			if (o.n > 0 && cur > math.MaxInt64-o.n) || (o.n < 0 && cur < math.MinInt64-o.n) {
				return fmt.Errorf("featurestore: IncrCounter %s/%s: %d%+d would overflow", o.name, o.id, cur, o.n)
			}
			counts[k] = cur + o.n
		}
	}
	return nil
}

// apply writes checked ops in call order and returns the merged AddVector rows. The ops' own
// slices become the store's. m.mu is held.
func (m *Memory) apply(ops []op) [][]float32 {
	var merged [][]float32
	written := make(map[string]int64) // table → its version after this commit
	noteWrite := func(table, id string) {
		v, ok := written[table]
		if !ok {
			v = m.versions[table] + 1
			m.versions[table] = v
			written[table] = v
			if m.changed[table] == nil {
				m.changed[table] = make(map[string]int64)
			}
		}
		m.changed[table][id] = v
	}
	for _, o := range ops {
		switch o.kind {
		case opAddToSet:
			fam := m.sets[o.name]
			if fam == nil {
				fam = make(map[string]map[string]struct{})
				m.sets[o.name] = fam
			}
			set := fam[o.id]
			if set == nil {
				set = make(map[string]struct{}, len(o.members))
				fam[o.id] = set
			}
			for _, member := range o.members {
				set[member] = struct{}{}
			}
		case opSetVector:
			noteWrite(o.name, o.id)
			t := m.table(o.name)
			t[o.id] = o.vec
		case opDeleteVector:
			noteWrite(o.name, o.id)
			delete(m.rows[o.name], o.id)
		case opAddVector:
			noteWrite(o.name, o.id)
			t := m.table(o.name)
			r, ok := t[o.id]
			if !ok {
				r = make([]float32, len(o.delta))
				t[o.id] = r
			}
			for i, d := range o.delta {
				r[i] = float32(float64(r[i]) + d)
			}
			merged = append(merged, append(make([]float32, 0, len(r)), r...))
		case opMergeVector:
			noteWrite(o.name, o.id)
			t := m.table(o.name)
			r, ok := t[o.id]
			if !ok {
				r = make([]float32, len(o.vec))
			}
			if bitsEqual(r, o.base) {
				r = o.vec
			} else {
				for i, v := range o.vec {
					r[i] = float32(float64(r[i]) + (float64(v) - float64(o.base[i])))
				}
			}
			t[o.id] = r
			merged = append(merged, append(make([]float32, 0, len(r)), r...))
		case opIncrCounter:
			t := m.counters[o.name]
			if t == nil {
				t = make(map[string]int64)
				m.counters[o.name] = t
			}
			t[o.id] += o.n
		case opAppendCatalog:
			c := m.catalogs[o.name]
			if c == nil {
				c = &memCatalog{member: make(map[string]struct{})}
				m.catalogs[o.name] = c
			}
			if _, ok := c.member[o.id]; !ok {
				c.member[o.id] = struct{}{}
				c.ids = append(c.ids, o.id)
			}
		case opSetOffset:
			t := m.offsets[o.name]
			if t == nil {
				t = make(map[int]int64)
				m.offsets[o.name] = t
			}
			t[o.partition] = o.next
		}
	}
	return merged
}

// table returns the rows of the named table, creating it. m.mu is held.
func (m *Memory) table(name string) map[string][]float32 {
	t := m.rows[name]
	if t == nil {
		t = make(map[string][]float32)
		m.rows[name] = t
	}
	return t
}

// bitsEqual tells whether a and b hold the same float32 bit patterns (so -0 differs from 0
// and a NaN equals itself), as the Redis store's byte comparison does.
func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
