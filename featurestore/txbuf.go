package featurestore

import (
	"errors"
	"fmt"
)

// errTxDone is returned by Commit on a Tx that was already committed or rolled back.
var errTxDone = errors.New("featurestore: transaction already committed or rolled back")

// opKind says which Tx method buffered an op.
type opKind uint8

const (
	opSetVector opKind = iota + 1
	opAddVector
	opIncrCounter
	opAppendCatalog
	opSetOffset
	opAddToSet
	opDeleteVector
	opMergeVector
)

// op is one buffered write. name is the table, catalog or topic; the slices are the Tx's own
// copies.
type op struct {
	kind      opKind
	name      string
	id        string
	partition int
	members   []string  // AddToSet
	vec       []float32 // SetVector; MergeVector: value
	base      []float32 // MergeVector
	delta     []float64 // AddVector
	n         int64     // IncrCounter: increment; SetOffset: prev
	next      int64     // SetOffset
	rank      int       // AddVector, MergeVector: call ordinal among them (Redis Commit)
	of        opKind    // opCheck: the row op checked (Redis Commit in parts)
}

// txBuf buffers the writes of a Tx in call order. It is shared by the implementations; it
// copies every slice it is given, so callers may reuse theirs at once. Calls after the Tx is
// done are ignored.
type txBuf struct {
	ops  []op
	done bool
}

func (b *txBuf) SetVector(table, id string, v []float32) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opSetVector, name: table, id: id, vec: append(make([]float32, 0, len(v)), v...)})
}

func (b *txBuf) AddVector(table, id string, delta []float64) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opAddVector, name: table, id: id, delta: append(make([]float64, 0, len(delta)), delta...)})
}

func (b *txBuf) MergeVector(table, id string, base, value []float32) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opMergeVector, name: table, id: id,
		base: append(make([]float32, 0, len(base)), base...), vec: append(make([]float32, 0, len(value)), value...)})
}

func (b *txBuf) DeleteVector(table, id string) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opDeleteVector, name: table, id: id})
}

func (b *txBuf) IncrCounter(table, id string, n int64) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opIncrCounter, name: table, id: id, n: n})
}

func (b *txBuf) AppendCatalog(name, id string) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opAppendCatalog, name: name, id: id})
}

func (b *txBuf) AddToSet(name, id string, members ...string) {
	if b.done || len(members) == 0 {
		return
	}
	b.ops = append(b.ops, op{kind: opAddToSet, name: name, id: id, members: append([]string(nil), members...)})
}

func (b *txBuf) SetOffset(topic string, partition int, prev, next int64) {
	if b.done {
		return
	}
	b.ops = append(b.ops, op{kind: opSetOffset, name: topic, partition: partition, n: prev, next: next})
}

// Rollback discards the buffered writes and finishes the Tx.
func (b *txBuf) Rollback() {
	b.ops = nil
	b.done = true
}

// finish marks the Tx done and hands over its ops, checking what can be checked without the
// stored state. It is the first step of every Commit.
func (b *txBuf) finish() ([]op, error) {
	if b.done {
		return nil, errTxDone
	}
	ops := b.ops
	b.ops, b.done = nil, true
	for i := range ops {
		o := &ops[i]
		if o.kind == opMergeVector && len(o.base) != len(o.vec) {
			return nil, fmt.Errorf("featurestore: MergeVector %s/%s: base has %d values, value %d", o.name, o.id, len(o.base), len(o.vec))
		}
		if o.kind != opSetOffset {
			continue
		}
		if o.partition < 0 {
			return nil, fmt.Errorf("featurestore: SetOffset %s/%d: negative partition", o.name, o.partition)
		}
		if o.n < NoOffset || o.next < 0 {
			return nil, fmt.Errorf("featurestore: SetOffset %s/%d: bad offsets prev=%d next=%d", o.name, o.partition, o.n, o.next)
		}
	}
	return ops, nil
}
