package models

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
)

// Snapshot is a trained model in a model-neutral form: what a retrain publishes and an
// updater or server loads. WriteSnapshot and ReadSnapshot carry it bit-exactly: every
// float32 comes back with the same bits (NaN payloads included), every string byte for
// byte.
//
// A Snapshot is a plain value: it may alias the model it came from (see the model's
// Snapshot method); any number of goroutines may read it while none modifies it.
type Snapshot struct {
	Model   string            // the model's name, e.g. "wmf"; not empty
	Version int               // the model's own layout version, checked by its loader
	Meta    map[string]string // hyper-parameters and provenance (e.g. offsets covered)
	Tables  []Table           // distinct, non-empty names
}

// Table is a dense row-major float32 matrix with optional external ids per row.
type Table struct {
	Name       string
	Rows, Cols int
	Data       []float32 // len Rows·Cols
	IDs        []string  // nil, or one external id per row (len Rows)
}

// Table returns the table called name.
func (s *Snapshot) Table(name string) (Table, bool) {
	for _, t := range s.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// Snapshotter is a trained model that can be written as a Snapshot. Each model has a
// matching loader, e.g. WMFFromSnapshot.
type Snapshotter interface {
	Snapshot() Snapshot
}

// Errors of the snapshot codec, returned wrapped.
var (
	// ErrSnapshotCorrupt: ReadSnapshot found no snapshot or a damaged one: bad magic,
	// truncated input (also wrapping io.ErrUnexpectedEOF), a CRC mismatch, a size beyond
	// the limits, or a field no writer produces.
	ErrSnapshotCorrupt = errors.New("models: corrupt snapshot")
	// ErrSnapshotVersion: the snapshot's format version is not one this build reads.
	ErrSnapshotVersion = errors.New("models: unsupported snapshot format version")
	// ErrSnapshotInvalid: WriteSnapshot refuses a Snapshot that breaks the format's rules,
	// or a model's loader refuses one that is not a valid snapshot of that model.
	ErrSnapshotInvalid = errors.New("models: invalid snapshot")
)

// SnapshotFormatVersion is the format version WriteSnapshot writes and ReadSnapshot reads.
const SnapshotFormatVersion = 1

const snapshotMagic = "VRSNAP"

// Limits of the format, checked by both WriteSnapshot and ReadSnapshot.
const (
	MaxSnapshotString = 1 << 20 // bytes in a model name, table name, meta key or value, id
	MaxSnapshotMeta   = 1 << 16 // meta entries
	MaxSnapshotTables = 1 << 12 // tables
	MaxSnapshotDim    = math.MaxInt32
	// MaxSnapshotValues bounds Rows·Cols of one table (16 GiB of float32).
	MaxSnapshotValues = 1 << 32
)

// The layout, all integers little-endian, a string being a uint32 byte length and the
// bytes:
//
//	magic "VRSNAP" | format uint16 (=1) | model string | version int64
//	meta count uint32 | per entry, keys strictly ascending: key string, value string
//	table count uint32 | per table: name string, rows uint32, cols uint32,
//	    rows·cols float32 (IEEE 754 bits), ids flag uint8 (0 nil, 1 present),
//	    when present rows strings
//	CRC-32C (Castagnoli) uint32 of every byte before it
//
// The encoding is canonical: a Snapshot has exactly one, and ReadSnapshot accepts nothing
// else, so read-then-write reproduces the bytes read.

// WriteSnapshot writes s to w in the format above. It checks s first (non-empty model
// name; tables with distinct non-empty names, non-negative Rows and Cols, len(Data) =
// Rows·Cols, IDs nil or Rows long; everything within the limits) and writes nothing when
// a check fails (ErrSnapshotInvalid). Meta is written in key order, so equal snapshots give
// equal bytes. Writes to w are buffered in chunks of 64 KiB; w's own errors are returned
// wrapped. s is only read.
func WriteSnapshot(w io.Writer, s Snapshot) error {
	if err := checkSnapshot(&s); err != nil {
		return err
	}
	sw := &snapWriter{w: w, buf: make([]byte, 0, 64<<10), tab: crc32.MakeTable(crc32.Castagnoli)}
	sw.buf = append(sw.buf, snapshotMagic...)
	sw.buf = binary.LittleEndian.AppendUint16(sw.buf, SnapshotFormatVersion)
	sw.str(s.Model)
	sw.buf = binary.LittleEndian.AppendUint64(sw.buf, uint64(int64(s.Version)))
	keys := make([]string, 0, len(s.Meta))
	for k := range s.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	sw.u32(uint32(len(keys)))
	for _, k := range keys {
		sw.str(k)
		sw.str(s.Meta[k])
	}
	sw.u32(uint32(len(s.Tables)))
	for _, t := range s.Tables {
		sw.str(t.Name)
		sw.u32(uint32(t.Rows))
		sw.u32(uint32(t.Cols))
		for _, v := range t.Data {
			sw.buf = binary.LittleEndian.AppendUint32(sw.buf, math.Float32bits(v))
			sw.maybeFlush()
		}
		if t.IDs == nil {
			sw.buf = append(sw.buf, 0)
		} else {
			sw.buf = append(sw.buf, 1)
			for _, id := range t.IDs {
				sw.str(id)
			}
		}
	}
	sw.flush()
	if sw.err != nil {
		return sw.err
	}
	var crc [4]byte
	binary.LittleEndian.PutUint32(crc[:], sw.crc)
	if _, err := w.Write(crc[:]); err != nil {
		return fmt.Errorf("models: write snapshot: %w", err)
	}
	return nil
}

func checkSnapshot(s *Snapshot) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSnapshotInvalid, fmt.Sprintf(format, args...))
	}
	if s.Model == "" || len(s.Model) > MaxSnapshotString {
		return bad("model name of %d bytes", len(s.Model))
	}
	if len(s.Meta) > MaxSnapshotMeta {
		return bad("%d meta entries > %d", len(s.Meta), MaxSnapshotMeta)
	}
	for k, v := range s.Meta {
		if len(k) > MaxSnapshotString || len(v) > MaxSnapshotString {
			return bad("meta entry of %d+%d bytes > %d", len(k), len(v), MaxSnapshotString)
		}
	}
	if len(s.Tables) > MaxSnapshotTables {
		return bad("%d tables > %d", len(s.Tables), MaxSnapshotTables)
	}
	names := make(map[string]bool, len(s.Tables))
	for n, t := range s.Tables {
		switch {
		case t.Name == "" || len(t.Name) > MaxSnapshotString:
			return bad("table %d: name of %d bytes", n, len(t.Name))
		case names[t.Name]:
			return bad("table %q twice", t.Name)
		case t.Rows < 0 || t.Cols < 0 || t.Rows > MaxSnapshotDim || t.Cols > MaxSnapshotDim ||
			uint64(t.Rows)*uint64(t.Cols) > MaxSnapshotValues:
			return bad("table %q: %d×%d", t.Name, t.Rows, t.Cols)
		case len(t.Data) != t.Rows*t.Cols:
			return bad("table %q: %d values for %d×%d", t.Name, len(t.Data), t.Rows, t.Cols)
		case t.IDs != nil && len(t.IDs) != t.Rows:
			return bad("table %q: %d ids for %d rows", t.Name, len(t.IDs), t.Rows)
		}
		for _, id := range t.IDs {
			if len(id) > MaxSnapshotString {
				return bad("table %q: id of %d bytes", t.Name, len(id))
			}
		}
		names[t.Name] = true
	}
	return nil
}

type snapWriter struct {
	w   io.Writer
	buf []byte
	tab *crc32.Table
	crc uint32
	err error
}

func (sw *snapWriter) u32(v uint32) { sw.buf = binary.LittleEndian.AppendUint32(sw.buf, v) }

func (sw *snapWriter) str(s string) {
	sw.u32(uint32(len(s)))
	for len(s) > 0 {
		n := min(len(s), cap(sw.buf)-len(sw.buf))
		if n == 0 {
			sw.flush()
			continue
		}
		sw.buf = append(sw.buf, s[:n]...)
		s = s[n:]
	}
	sw.maybeFlush()
}

func (sw *snapWriter) maybeFlush() {
	if len(sw.buf) >= cap(sw.buf)-64 {
		sw.flush()
	}
}

func (sw *snapWriter) flush() {
	if sw.err == nil && len(sw.buf) > 0 {
		sw.crc = crc32.Update(sw.crc, sw.tab, sw.buf)
		if _, err := sw.w.Write(sw.buf); err != nil {
			sw.err = fmt.Errorf("models: write snapshot: %w", err)
		}
	}
	sw.buf = sw.buf[:0]
}

// ReadSnapshot reads one snapshot from r. It reads exactly the snapshot's bytes and no
// further, so snapshots may be concatenated or embedded in a stream; it issues many small
// reads, so pass a buffered reader for a file. Damaged input is an error wrapping
// ErrSnapshotCorrupt (truncation also wraps io.ErrUnexpectedEOF, empty input included), an
// unknown format version one wrapping ErrSnapshotVersion; r's own errors are returned
// wrapped. Memory grows with the bytes actually read, never with a size a header claims:
// a corrupt length cannot allocate more than about twice the input. An empty Data or Meta
// comes back nil.
func ReadSnapshot(r io.Reader) (Snapshot, error) {
	sr := &snapReader{r: r, tab: crc32.MakeTable(crc32.Castagnoli)}
	s, err := sr.snapshot()
	if err != nil {
		return Snapshot{}, err
	}
	var crc [4]byte
	if _, err := io.ReadFull(r, crc[:]); err != nil {
		return Snapshot{}, sr.readErr("CRC", err)
	}
	if got := binary.LittleEndian.Uint32(crc[:]); got != sr.crc {
		return Snapshot{}, fmt.Errorf("%w: CRC-32C %08x, computed %08x", ErrSnapshotCorrupt, got, sr.crc)
	}
	return s, nil
}

type snapReader struct {
	r       io.Reader
	tab     *crc32.Table
	crc     uint32
	scratch [8]byte
	chunk   []byte
}

// readErr wraps a read error: end of input is truncation.
func (sr *snapReader) readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated in %s: %w", ErrSnapshotCorrupt, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("models: read snapshot %s: %w", what, err)
}

func (sr *snapReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshotCorrupt, fmt.Sprintf(format, args...))
}

// full reads len(b) bytes into b and adds them to the CRC.
func (sr *snapReader) full(b []byte, what string) error {
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return sr.readErr(what, err)
	}
	sr.crc = crc32.Update(sr.crc, sr.tab, b)
	return nil
}

func (sr *snapReader) u32(what string) (uint32, error) {
	if err := sr.full(sr.scratch[:4], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(sr.scratch[:4]), nil
}

// str reads a length-prefixed string, allocating as the bytes arrive.
func (sr *snapReader) str(what string) (string, error) {
	n, err := sr.u32(what)
	if err != nil {
		return "", err
	}
	if n > MaxSnapshotString {
		return "", sr.corrupt("%s of %d bytes > %d", what, n, MaxSnapshotString)
	}
	const step = 4 << 10
	if n <= step {
		b := make([]byte, n)
		if err := sr.full(b, what); err != nil {
			return "", err
		}
		return string(b), nil
	}
	var b []byte
	for left := int(n); left > 0; {
		c := min(left, step)
		b = slices.Grow(b, c)
		if err := sr.full(b[len(b):len(b)+c], what); err != nil {
			return "", err
		}
		b = b[:len(b)+c]
		left -= c
	}
	return string(b), nil
}

func (sr *snapReader) snapshot() (Snapshot, error) {
	var s Snapshot
	head := make([]byte, len(snapshotMagic)+2)
	if err := sr.full(head, "header"); err != nil {
		return s, err
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return s, sr.corrupt("bad magic %q", head[:len(snapshotMagic)])
	}
	if v := binary.LittleEndian.Uint16(head[len(snapshotMagic):]); v != SnapshotFormatVersion {
		return s, fmt.Errorf("%w: %d (this build reads %d)", ErrSnapshotVersion, v, SnapshotFormatVersion)
	}
	var err error
	if s.Model, err = sr.str("model name"); err != nil {
		return s, err
	}
	if s.Model == "" {
		return s, sr.corrupt("empty model name")
	}
	if err := sr.full(sr.scratch[:8], "model version"); err != nil {
		return s, err
	}
	v := int64(binary.LittleEndian.Uint64(sr.scratch[:8]))
	if int64(int(v)) != v {
		return s, sr.corrupt("model version %d overflows int", v)
	}
	s.Version = int(v)

	nMeta, err := sr.u32("meta count")
	if err != nil {
		return s, err
	}
	if nMeta > MaxSnapshotMeta {
		return s, sr.corrupt("%d meta entries > %d", nMeta, MaxSnapshotMeta)
	}
	prev := ""
	for n := range int(nMeta) {
		k, err := sr.str("meta key")
		if err != nil {
			return s, err
		}
		if n > 0 && k <= prev {
			return s, sr.corrupt("meta key %q after %q: keys must ascend", k, prev)
		}
		val, err := sr.str("meta value")
		if err != nil {
			return s, err
		}
		if s.Meta == nil {
			s.Meta = make(map[string]string, min(int(nMeta), 64))
		}
		s.Meta[k] = val
		prev = k
	}

	nTables, err := sr.u32("table count")
	if err != nil {
		return s, err
	}
	if nTables > MaxSnapshotTables {
		return s, sr.corrupt("%d tables > %d", nTables, MaxSnapshotTables)
	}
	for range int(nTables) {
		t, err := sr.table()
		if err != nil {
			return s, err
		}
		if _, dup := s.Table(t.Name); dup {
			return s, sr.corrupt("table %q twice", t.Name)
		}
		s.Tables = append(s.Tables, t)
	}
	return s, nil
}

func (sr *snapReader) table() (Table, error) {
	var t Table
	var err error
	if t.Name, err = sr.str("table name"); err != nil {
		return t, err
	}
	if t.Name == "" {
		return t, sr.corrupt("empty table name")
	}
	rows, err := sr.u32("table rows")
	if err != nil {
		return t, err
	}
	cols, err := sr.u32("table cols")
	if err != nil {
		return t, err
	}
	n := uint64(rows) * uint64(cols)
	if rows > MaxSnapshotDim || cols > MaxSnapshotDim || n > MaxSnapshotValues || n > math.MaxInt/4 {
		return t, sr.corrupt("table %q: %d×%d beyond the limits", t.Name, rows, cols)
	}
	t.Rows, t.Cols = int(rows), int(cols)
	if t.Data, err = sr.floats(int(n), t.Name); err != nil {
		return t, err
	}
	if err := sr.full(sr.scratch[:1], "ids flag"); err != nil {
		return t, err
	}
	switch sr.scratch[0] {
	case 0:
	case 1:
		t.IDs = make([]string, 0, min(t.Rows, 4096))
		for range t.Rows {
			id, err := sr.str("id")
			if err != nil {
				return t, err
			}
			t.IDs = append(t.IDs, id)
		}
	default:
		return t, sr.corrupt("table %q: ids flag %d", t.Name, sr.scratch[0])
	}
	return t, nil
}

// floats reads n float32 values in chunks, growing the result as they arrive.
func (sr *snapReader) floats(n int, table string) ([]float32, error) {
	if n == 0 {
		return nil, nil
	}
	const step = 16 << 10 // values per read
	if c := 4 * min(n, step); len(sr.chunk) < c {
		sr.chunk = make([]byte, c)
	}
	out := make([]float32, 0, min(n, step))
	for left := n; left > 0; {
		c := min(left, step)
		b := sr.chunk[:4*c]
		if err := sr.full(b, "table "+table); err != nil {
			return nil, err
		}
		out = slices.Grow(out, c)
		for k := 0; k < c; k++ {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:])))
		}
		left -= c
	}
	return out, nil
}

// parseMeta reads a snapshot's "seed" and float32 hyper-parameters from its Meta.
func parseMeta(model string, meta map[string]string, seed *uint64, floats map[string]*float32) error {
	for _, key := range slices.Sorted(maps.Keys(floats)) {
		v, err := strconv.ParseFloat(meta[key], 32)
		if err != nil {
			return fmt.Errorf("%w: %s meta %q: %w", ErrSnapshotInvalid, model, key, err)
		}
		*floats[key] = float32(v)
	}
	v, err := strconv.ParseUint(meta["seed"], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s meta \"seed\": %w", ErrSnapshotInvalid, model, err)
	}
	*seed = v
	return nil
}
