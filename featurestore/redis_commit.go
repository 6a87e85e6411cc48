package featurestore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// commitScript is the Lua script behind redisTx.Commit; its header documents ARGV.
//
//go:embed commit.lua
var commitScript string

// redisTx is the Redis store's Tx; see Tx for the contract and Redis for what Commit does.
type redisTx struct {
	txBuf
	r *Redis
}

// Commit implements Tx with one script call. A Tx without writes sends nothing.
func (tx *redisTx) Commit(ctx context.Context) ([][]float32, error) {
	ops, err := tx.finish()
	if err != nil {
		return nil, err
	}
	if tx.r.closed.Load() {
		return nil, ErrClosed
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if ops, err = tx.r.addToSets(ctx, ops); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, nil
	}
	var addOps []*op // AddVector and MergeVector ops in call order
	for i := range ops {
		if k := ops[i].kind; k == opAddVector || k == opMergeVector {
			ops[i].rank = len(addOps)
			addOps = append(addOps, &ops[i])
		}
	}
	if p := tx.r.part; p > 0 && rowRecords(ops) > p {
		return tx.r.commitInParts(ctx, ops, addOps)
	}
	keys, args, addOrder := tx.r.encodeCommit(withChangeLog(ops))
	res, err := tx.r.script.Run(ctx, tx.r.c, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("featurestore: commit: %w", err)
	}
	if err := scriptStatus(res); err != nil {
		return nil, err
	}
	if len(addOps) == 0 {
		return nil, nil
	}
	merged := make([][]float32, len(addOps))
	if err := mergedRows(res, addOrder, addOps, merged); err != nil {
		return nil, err
	}
	return merged, nil
}

// scriptStatus turns the first element of a commit script's reply into an error, nil for
// "ok".
func scriptStatus(res []any) error {
	if len(res) == 0 {
		return fmt.Errorf("featurestore: commit: empty script reply")
	}
	switch res[0] {
	case "ok":
		return nil
	case "fenced":
		if len(res) != 4 {
			return fmt.Errorf("featurestore: commit: malformed fenced reply %v", res)
		}
		return fmt.Errorf("%w (%v partition %v: stored %v)", ErrFenced, res[1], res[2], res[3])
	default:
		return fmt.Errorf("featurestore: commit: unexpected script reply %v", res[0])
	}
}

// mergedRows stores the merged rows of an "ok" reply res into merged, indexed by call
// ordinal: addOrder[i] is that of the reply's i-th row, addOps the ops by ordinal.
func mergedRows(res []any, addOrder []int, addOps []*op, merged [][]float32) error {
	if len(res)-1 != len(addOrder) {
		return fmt.Errorf("featurestore: commit: script returned %d merged rows for %d AddVector calls", len(res)-1, len(addOrder))
	}
	for i, v := range res[1:] {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("featurestore: commit: merged row %d is a %T", i, v)
		}
		j := addOrder[i]
		if o := addOps[j]; s == "" && o.kind == opMergeVector {
			// The script replaced the row by the value sent: no copy came back.
			merged[j] = append(make([]float32, 0, len(o.vec)), o.vec...)
			continue
		}
		var err error
		if merged[j], err = decodeF32(s); err != nil {
			return fmt.Errorf("featurestore: commit: merged row %d: %w", i, err)
		}
	}
	return nil
}

// addToSets writes the AddToSet ops of a Tx ahead of its script, in one pipeline, and
// returns the other ops. Adding to a set is idempotent, so it need not be atomic with the
// rest (Tx.AddToSet): outside the script, thousands of small sets (a flush's seen items of
// its users) no longer lengthen the time that the script blocks Redis.
func (r *Redis) addToSets(ctx context.Context, ops []op) ([]op, error) {
	rest := ops[:0:0]
	pipe := r.c.Pipeline()
	for i := range ops {
		o := &ops[i]
		if o.kind != opAddToSet {
			rest = append(rest, *o)
			continue
		}
		key := r.setKey(o.name, o.id)
		for lo := 0; lo < len(o.members); lo += saddChunk {
			ms := o.members[lo:min(lo+saddChunk, len(o.members))]
			args := make([]any, len(ms))
			for k, m := range ms {
				args[k] = m
			}
			pipe.SAdd(ctx, key, args...)
		}
	}
	if pipe.Len() == 0 {
		return ops, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("featurestore: commit: add to sets: %w", err)
	}
	return rest, nil
}

// saddChunk is the number of members per SADD.
const saddChunk = 1000

// opChange is the Redis store's own op: it records in a table's change log ({ns}:chg:T)
// every row of the table that the commit writes (the script lists them itself). Commit adds
// one per table written.
const opChange = opMergeVector + 1

// withChangeLog returns ops followed by an opChange for every table that they write rows of.
func withChangeLog(ops []op) []op {
	logged := make(map[string]bool)
	for i, n := 0, len(ops); i < n; i++ {
		k, name := ops[i].kind, ops[i].name
		if (k == opSetVector || k == opAddVector || k == opMergeVector || k == opDeleteVector) && !logged[name] {
			logged[name] = true
			ops = append(ops, op{kind: opChange, name: name})
		}
	}
	return ops
}

// opCode gives, per op kind, the script's op code and the kind and Redis type of its key
// ('h' hash, 'z' sorted set). AddToSet has none: addToSets writes it ahead of the script.
var opCode = [...]struct {
	code string
	kind string // key kind: "v", "c", "cat", "off", "chg"
	typ  byte
}{
	opSetVector:     {"s", "v", 'h'},
	opAddVector:     {"a", "v", 'h'},
	opIncrCounter:   {"c", "c", 'h'},
	opAppendCatalog: {"l", "cat", 'z'},
	opSetOffset:     {"o", "off", 'h'},
	opDeleteVector:  {"d", "v", 'h'},
	opMergeVector:   {"m", "v", 'h'},
	opChange:        {"g", "chg", 'z'},
}

// spec returns o's entry of opCode: that of the op checked, for an opCheck.
func (o *op) spec() (code, kind string, typ byte) {
	switch o.kind {
	case opCheck:
		c := opCode[o.of]
		return strings.ToUpper(c.code), c.kind, c.typ
	case opVerified:
		return "V", opCode[opChange].kind, opCode[opChange].typ
	}
	c := opCode[o.kind]
	return c.code, c.kind, c.typ
}

// encodeCommit lays ops out as commit.lua reads them: KEYS holds each key once; ARGV[1]
// their types; then runs of consecutive ops of one kind on one key, each run as op code, key
// index, record count, records. Ops are grouped by key, in call order within a key: ops on
// different keys commute, and grouping turns a Tx's ops into few runs, which the script
// writes with few HSETs. addOrder[i] is the call ordinal (among AddVector and MergeVector
// calls) of the i-th merged row in the script's reply.
func (r *Redis) encodeCommit(ops []op) (keys []string, args []any, addOrder []int) {
	index := make(map[string]int)
	var kinds []byte
	keyOf := make([]int, len(ops)) // 0-based index into keys
	perKey := []int(nil)           // ops per key
	size := 0
	for i := range ops {
		o := &ops[i]
		_, kind, typ := o.spec()
		key := r.key(kind, o.name)
		k, ok := index[key]
		if !ok {
			k = len(keys)
			index[key] = k
			keys = append(keys, key)
			perKey = append(perKey, 0)
			kinds = append(kinds, typ)
		}
		keyOf[i] = k
		perKey[k]++
		size += 4*len(o.vec) + 4*len(o.base) + 8*len(o.delta)
	}
	// Counting sort by key, stable.
	start := make([]int, len(keys))
	for k := 1; k < len(keys); k++ {
		start[k] = start[k-1] + perKey[k-1]
	}
	order := make([]int, len(ops))
	adds := 0
	for i := range ops {
		order[start[keyOf[i]]] = i
		start[keyOf[i]]++
		if k := ops[i].kind; k == opAddVector || k == opMergeVector {
			adds++
		}
	}

	blobs := make([]byte, 0, size) // one buffer for every blob; args hold capped sub-slices
	args = make([]any, 1, 1+4*len(ops))
	args[0] = string(kinds)
	addOrder = make([]int, 0, adds)
	prevCode, prevKey, countAt, count := "", -1, 0, 0
	for _, i := range order {
		o := &ops[i]
		code, _, _ := o.spec()
		if code != prevCode || keyOf[i] != prevKey {
			if countAt > 0 {
				args[countAt] = strconv.Itoa(count)
			}
			args = append(args, code, strconv.Itoa(keyOf[i]+1), nil)
			prevCode, prevKey, countAt, count = code, keyOf[i], len(args)-1, 0
		}
		count++
		switch o.kind {
		case opSetVector:
			at := len(blobs)
			blobs = appendF32(blobs, o.vec)
			args = append(args, o.id, blobs[at:len(blobs):len(blobs)])
		case opAddVector:
			at := len(blobs)
			blobs = appendF64(blobs, o.delta)
			args = append(args, o.id, blobs[at:len(blobs):len(blobs)])
			addOrder = append(addOrder, o.rank)
		case opMergeVector:
			at := len(blobs)
			blobs = appendF32(blobs, o.base)
			mid := len(blobs)
			blobs = appendF32(blobs, o.vec)
			args = append(args, o.id, blobs[at:mid:mid], blobs[mid:len(blobs):len(blobs)])
			addOrder = append(addOrder, o.rank)
		case opIncrCounter:
			args = append(args, o.id, strconv.FormatInt(o.n, 10))
		case opAppendCatalog, opDeleteVector:
			args = append(args, o.id)
		case opChange: // the record is the index of the table's key
			args = append(args, strconv.Itoa(index[r.key(opCode[opSetVector].kind, o.name)]+1))
		case opSetOffset:
			args = append(args, strconv.Itoa(o.partition), strconv.FormatInt(o.n, 10), strconv.FormatInt(o.next, 10))
		case opVerified: // the index of the table's key, and the version its checks ran at
			args = append(args, strconv.Itoa(index[r.key(opCode[opSetVector].kind, o.name)]+1), strconv.FormatInt(o.n, 10))
		case opCheck:
			args = append(args, o.id)
			if o.of != opDeleteVector {
				args = append(args, strconv.FormatInt(o.n, 10))
			}
		}
	}
	if countAt > 0 {
		args[countAt] = strconv.Itoa(count)
	}
	return keys, args, addOrder
}
