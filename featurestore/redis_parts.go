package featurestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Tx with more than RedisOptions.CommitPart row writes is committed in parts, so that no
// single script blocks Redis for long (Redis runs one script at a time, and every other
// client waits): see Redis, "Commits in parts".

// opCheck is an op of the stage of a commit in parts: it checks a row op (kind of) as the
// script would, from the length of its blob (n bytes), without writing.
const opCheck = opChange + 1

// opVerified is an op of the stage of a commit in parts: the checks of table name's rows ran
// ahead (checkAhead) when its change log stood at version n, so the stage checks again only
// the rows logged since.
const opVerified = opCheck + 1

// The parts of a commit in parts wait in the hash {ns}:redo:<commit id> (field: the part's
// number, 4 digits; value: its script call, encodeCall), and the commit's id in the set
// {ns}:redo:pending, from the stage until the last part applies.
func (r *Redis) redoKey(id string) string { return r.key("redo", id) }
func (r *Redis) pendingKey() string       { return r.key("redo", "pending") }

// stagedTTL bounds the life of parts written ahead of a stage that never ran (the writer
// died in between); the stage makes them permanent.
const stagedTTL = time.Hour

// rowRecords counts the row writes of ops.
func rowRecords(ops []op) int {
	n := 0
	for i := range ops {
		switch ops[i].kind {
		case opSetVector, opAddVector, opMergeVector, opDeleteVector:
			n++
		}
	}
	return n
}

// blobBytes is the length of the blob that the script receives for row op o.
func blobBytes(o *op) int64 {
	switch o.kind {
	case opSetVector:
		return 4 * int64(len(o.vec))
	case opAddVector:
		return 8 * int64(len(o.delta))
	case opMergeVector:
		return 4 * int64(len(o.base))
	}
	return 0
}

// commitInParts commits ops (which hold every kind but AddToSet, with their ranks set; addOps
// are the AddVector and MergeVector ops by rank) as parts and a stage:
//
//   - the rows are checked first, r.part rows per read-only script (checkAhead);
//   - the parts' script calls go to the redo hash of the commit, with plain HSETs (a script
//     would pay for every byte of them);
//   - the stage, one script, is the commit point: the other checks of the whole Tx
//     (fencing, key types) and again those of the rows written since they were checked,
//     the counters and the offsets, and the commit joins the pending set;
//   - the parts, one script each, in order: the row writes (r.part per part, grouped by
//     table) and their change log; the catalog appends go with the last part, after every
//     row. A part deletes its redo entry as it applies, and applies only while the entry is
//     there, so that the writer and Recover may race over a part and it lands once.
func (r *Redis) commitInParts(ctx context.Context, ops []op, addOps []*op) ([][]float32, error) {
	var rows, catalog, checks, stage []op
	for _, o := range ops {
		switch o.kind {
		case opSetVector, opAddVector, opMergeVector, opDeleteVector:
			rows = append(rows, o)
			checks = append(checks, op{kind: opCheck, of: o.kind, name: o.name, id: o.id, n: blobBytes(&o)})
		case opAppendCatalog:
			catalog = append(catalog, o)
		default: // SetOffset, IncrCounter
			stage = append(stage, o)
		}
	}
	slices.SortStableFunc(rows, func(a, b op) int { return strings.Compare(a.name, b.name) })
	var parts [][]op
	for lo := 0; lo < len(rows); lo += r.part {
		parts = append(parts, slices.Clip(rows[lo:min(lo+r.part, len(rows))]))
	}
	parts[len(parts)-1] = append(parts[len(parts)-1], catalog...)
	verified, err := r.checkAhead(ctx, checks)
	if err != nil {
		return nil, err
	}
	stage = append(append(stage, checks...), verified...)

	type call struct {
		keys     []string
		args     []any
		addOrder []int
		field    string
	}
	id := fmt.Sprintf("%016x%08x", time.Now().UnixNano(), rand.Uint32()) // sorts by time
	redo := r.redoKey(id)
	calls := make([]call, len(parts))
	pipe := r.c.Pipeline()
	for i, p := range parts {
		keys, args, addOrder := r.encodeCommit(withChangeLog(p))
		calls[i] = call{keys, args, addOrder, fmt.Sprintf("%04d", i)}
		pipe.HSet(ctx, redo, calls[i].field, encodeCall(keys, args))
	}
	pipe.Expire(ctx, redo, stagedTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("featurestore: commit: write parts: %w", err)
	}
	if r.afterChecks != nil {
		if err := r.afterChecks(); err != nil {
			return nil, err
		}
	}
	keys, args, _ := r.encodeCommit(stage)
	keys, args = r.withRedoRun(keys, args, "r", id, id)
	res, err := r.script.Run(ctx, r.c, keys, args...).Slice()
	if err != nil && !isReply(err) {
		// Whether the stage ran is unknown: if it did, the commit stands and Recover applies
		// its parts; if not, they expire.
		return nil, fmt.Errorf("featurestore: commit: stage: %w", err)
	}
	if err != nil {
		err = fmt.Errorf("featurestore: commit: stage: %w", err)
	} else {
		err = scriptStatus(res)
	}
	if err != nil { // the stage refused: nothing was committed
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		r.c.Del(dctx, redo) // best effort: else they expire
		return nil, err
	}

	merged := make([][]float32, len(addOps))
	for i, c := range calls {
		res, done, err := r.applyPart(ctx, c.keys, c.args, id, c.field)
		if err != nil {
			return nil, fmt.Errorf("featurestore: commit: part %d of %d (the commit stands: Recover applies the rest): %w", i+1, len(calls), err)
		}
		if r.afterPart != nil {
			if err := r.afterPart(i); err != nil {
				return nil, err
			}
		}
		if !done {
			if err := mergedRows(res, c.addOrder, addOps, merged); err != nil {
				return nil, err
			}
			continue
		}
		// Recover applied the part meanwhile: its merged rows are the stored ones.
		for _, o := range parts[i] {
			if o.kind != opAddVector && o.kind != opMergeVector {
				continue
			}
			v, err := r.Vectors(ctx, o.name, []string{o.id})
			if err != nil {
				return nil, fmt.Errorf("featurestore: commit: part %d of %d: %w", i+1, len(calls), err)
			}
			merged[o.rank] = v[0]
		}
	}
	return merged, nil
}

// checkAhead runs the row checks of a commit in parts (checks: opCheck ops) ahead of its
// stage, r.part rows per script, so that no single script blocks Redis for long: reading
// thousands of stored rows to check their lengths was most of a stage's time. It returns
// the stage's opVerified ops: each table's change-log version read before the checks, so
// that the stage checks again only the rows that a commit wrote since (the change log lists
// every row write). A check that fails refuses the commit, before anything is written.
func (r *Redis) checkAhead(ctx context.Context, checks []op) ([]op, error) {
	var tables []string
	seen := make(map[string]bool)
	for _, c := range checks {
		if !seen[c.name] {
			seen[c.name] = true
			tables = append(tables, c.name)
		}
	}
	pipe := r.c.Pipeline()
	tops := make([]*redis.ZSliceCmd, len(tables))
	for i, t := range tables {
		tops[i] = pipe.ZRangeWithScores(ctx, r.key(opCode[opChange].kind, t), -1, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("featurestore: commit: read change logs: %w", err)
	}
	verified := make([]op, len(tables))
	for i, t := range tables {
		v := int64(0)
		if z := tops[i].Val(); len(z) > 0 {
			v = int64(z[0].Score)
		}
		verified[i] = op{kind: opVerified, name: t, n: v}
	}
	// Pieces of about r.part rows; every check of one row goes in the same piece, in order
	// (a row written twice in a Tx is checked as a sequence).
	pieceOf := make(map[[2]string]int)
	var pieces [][]op
	rowsIn := 0
	for _, c := range checks {
		p, ok := pieceOf[[2]string{c.name, c.id}]
		if !ok {
			if len(pieces) == 0 || rowsIn >= r.part {
				pieces, rowsIn = append(pieces, nil), 0
			}
			p = len(pieces) - 1
			pieceOf[[2]string{c.name, c.id}] = p
			rowsIn++
		}
		pieces[p] = append(pieces[p], c)
	}
	for _, piece := range pieces {
		keys, args, _ := r.encodeCommit(piece)
		res, err := r.script.Run(ctx, r.c, keys, args...).Slice()
		if err == nil {
			err = scriptStatus(res)
		}
		if err != nil {
			return nil, fmt.Errorf("featurestore: commit: check: %w", err)
		}
	}
	return verified, nil
}

// isReply tells whether err is an error reply of Redis (rather than a transport error, after
// which a call may or may not have run).
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// withRedoRun returns a script call (keys, args) with the redo hash of commit id (type 'h')
// and the pending set (type 's') added to its keys, and a run of op code with one record:
// first, the pending set's key index, then rest.
func (r *Redis) withRedoRun(keys []string, args []any, code, id, first string, rest ...string) ([]string, []any) {
	k := append(slices.Clip(keys), r.redoKey(id), r.pendingKey())
	a := make([]any, 0, len(args)+6)
	a = append(a, args[0].(string)+"hs")
	a = append(a, args[1:]...)
	a = append(a, code, strconv.Itoa(len(k)-1), "1", first, strconv.Itoa(len(k)))
	for _, x := range rest {
		a = append(a, x)
	}
	return k, a
}

// applyPart runs one part's script call (keys, args: as stored in the redo hash) guarded by
// its entry field in the redo hash of commit id. done: the entry was gone, so the part had
// been applied already.
func (r *Redis) applyPart(ctx context.Context, keys []string, args []any, id, field string) (res []any, done bool, err error) {
	if len(args) == 0 {
		return nil, false, errors.New("featurestore: part without arguments")
	}
	if kinds, ok := args[0].(string); !ok || len(kinds) != len(keys) {
		return nil, false, errors.New("featurestore: part with malformed key types")
	}
	k, a := r.withRedoRun(keys, args, "w", id, field, id)
	if res, err = r.script.Run(ctx, r.c, k, a...).Slice(); err != nil {
		return nil, false, err
	}
	if len(res) == 1 && res[0] == "done" {
		return nil, true, nil
	}
	return res, false, scriptStatus(res)
}

// Recover implements Store: it applies the parts of the pending commits, oldest commit
// first, each commit's parts in order.
func (r *Redis) Recover(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	ids, err := r.c.SMembers(ctx, r.pendingKey()).Result()
	if err != nil {
		return fmt.Errorf("featurestore: recover: %w", err)
	}
	slices.Sort(ids) // by time
	for _, id := range ids {
		redo := r.redoKey(id)
		fields, err := r.c.HKeys(ctx, redo).Result()
		if err != nil {
			return fmt.Errorf("featurestore: recover %s: %w", redo, err)
		}
		slices.Sort(fields)
		for _, f := range fields {
			payload, err := r.c.HGet(ctx, redo, f).Result()
			if errors.Is(err, redis.Nil) {
				continue // applied meanwhile
			}
			if err != nil {
				return fmt.Errorf("featurestore: recover %s %s: %w", redo, f, err)
			}
			keys, args, err := decodeCall(payload)
			if err == nil {
				_, _, err = r.applyPart(ctx, keys, args, id, f)
			}
			if err != nil {
				return fmt.Errorf("featurestore: recover %s part %s (it stays until it applies): %w", redo, f, err)
			}
		}
		if len(fields) == 0 { // its hash is gone (by hand): nothing to apply
			if err := r.c.SRem(ctx, r.pendingKey(), id).Err(); err != nil {
				return fmt.Errorf("featurestore: recover: %w", err)
			}
		}
	}
	return nil
}

// encodeCall packs a script call: the key count, each key, the argument count, each
// argument (a string or []byte), every count and length as a uvarint.
func encodeCall(keys []string, args []any) []byte {
	size := 2 * binary.MaxVarintLen64
	for _, k := range keys {
		size += binary.MaxVarintLen64 + len(k)
	}
	for _, a := range args {
		switch v := a.(type) {
		case string:
			size += binary.MaxVarintLen64 + len(v)
		case []byte:
			size += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	b = binary.AppendUvarint(b, uint64(len(args)))
	for _, a := range args {
		var s string
		switch v := a.(type) {
		case string:
			s = v
		case []byte:
			s = string(v)
		default:
			panic(fmt.Sprintf("featurestore: script argument of type %T", a)) // encodeCommit makes none
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// errBadCall is returned by decodeCall for a payload that encodeCall did not make.
var errBadCall = errors.New("featurestore: malformed redo entry")

// decodeCall reverses encodeCall; the arguments come back as strings.
func decodeCall(s string) (keys []string, args []any, err error) {
	// uvarint reads a count or a length; every entry takes a byte at least, so neither can
	// exceed what is left.
	uvarint := func() (int, bool) {
		n, w := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if w <= 0 || n > uint64(len(s)-w) {
			return 0, false
		}
		s = s[w:]
		return int(n), true
	}
	next := func() (string, bool) {
		n, ok := uvarint()
		if !ok {
			return "", false
		}
		v := s[:n]
		s = s[n:]
		return v, true
	}
	list := func() ([]string, bool) {
		n, ok := uvarint()
		out := make([]string, n)
		for i := 0; ok && i < n; i++ {
			out[i], ok = next()
		}
		return out, ok
	}
	keys, ok1 := list()
	strs, ok2 := list()
	if !ok1 || !ok2 {
		return nil, nil, errBadCall
	}
	args = make([]any, len(strs))
	for i, a := range strs {
		args[i] = a
	}
	if len(s) != 0 {
		return nil, nil, errBadCall
	}
	return keys, args, nil
}
