package models_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/visrec/visrec/models"
)

// sameSnapshot reports the first difference between two snapshots, comparing floats by
// their bits; "" when they are identical (nil and empty Meta or Data count as equal, as
// the codec documents).
func sameSnapshot(a, b models.Snapshot) string {
	switch {
	case a.Model != b.Model:
		return "model " + a.Model + " vs " + b.Model
	case a.Version != b.Version:
		return "version"
	case !maps.Equal(a.Meta, b.Meta):
		return "meta"
	case len(a.Tables) != len(b.Tables):
		return "table count"
	}
	for n, ta := range a.Tables {
		tb := b.Tables[n]
		switch {
		case ta.Name != tb.Name || ta.Rows != tb.Rows || ta.Cols != tb.Cols:
			return "table " + ta.Name + " header"
		case len(ta.Data) != len(tb.Data):
			return "table " + ta.Name + " data length"
		case (ta.IDs == nil) != (tb.IDs == nil) || !slices.Equal(ta.IDs, tb.IDs):
			return "table " + ta.Name + " ids"
		}
		for j := range ta.Data {
			if math.Float32bits(ta.Data[j]) != math.Float32bits(tb.Data[j]) {
				return "table " + ta.Name + " data bits"
			}
		}
	}
	return ""
}

func encode(t testing.TB, s models.Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := models.WriteSnapshot(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// oddFloats holds values whose bits a careless codec loses: NaN payloads, −0, infinities,
// subnormals, the extremes.
func oddFloats() []float32 {
	return []float32{
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffbfffff), // quiet NaN payloads
		math.Float32frombits(0x7f800001), // signalling NaN
		float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32,
		1, -1, 0.1, 3.14159,
	}
}

func testSnapshots() map[string]models.Snapshot {
	long := strings.Repeat("x", 70_000) // crosses the writer's 64 KiB buffer and the reader's chunks
	big := make([]float32, 40_000)      // crosses the reader's 16 Ki-value chunks
	for j := range big {
		big[j] = float32(j) * 0.37
	}
	return map[string]models.Snapshot{
		"model only": {Model: "m"},
		"negative version and meta": {Model: "wmf", Version: -3, Meta: map[string]string{
			"alpha": "5", "": "empty key", "z": "", "long": long, "ünïcode": "✓"}},
		"odd floats with ids": {Model: "bpr", Version: 1, Tables: []models.Table{
			{Name: "items", Rows: 5, Cols: 3, Data: oddFloats(), IDs: []string{"a", "", "c", long, "\x00\xff"}},
		}},
		"small": {Model: "wmf", Version: 1, Meta: map[string]string{"alpha": "5", "reg": "0.1"}, Tables: []models.Table{
			{Name: "users", Rows: 2, Cols: 3, Data: oddFloats()[:6], IDs: []string{"u1", ""}},
			{Name: "items", Rows: 3, Cols: 3, Data: oddFloats()[6:15]},
		}},
		"empty tables": {Model: "x", Tables: []models.Table{
			{Name: "none", Rows: 0, Cols: 64},
			{Name: "no cols", Rows: 3, Cols: 0, IDs: []string{"1", "2", "3"}},
			{Name: "empty ids", Rows: 0, Cols: 0, IDs: []string{}},
		}},
		"big": {Model: "big", Version: 7, Meta: map[string]string{"k": "v"}, Tables: []models.Table{
			{Name: "a", Rows: 10_000, Cols: 4, Data: big},
			{Name: "b", Rows: 2, Cols: 3, Data: []float32{1, 2, 3, 4, 5, 6}, IDs: []string{"u1", "u2"}},
		}},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for name, s := range testSnapshots() {
		t.Run(name, func(t *testing.T) {
			b := encode(t, s)
			r := bytes.NewReader(b)
			got, err := models.ReadSnapshot(r)
			if err != nil {
				t.Fatal(err)
			}
			if d := sameSnapshot(s, got); d != "" {
				t.Errorf("round trip differs: %s", d)
			}
			if r.Len() != 0 {
				t.Errorf("%d bytes left unread", r.Len())
			}
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Error("re-encoding what was read gives other bytes")
			}
			if again := encode(t, s); !bytes.Equal(again, b) {
				t.Error("encoding is not deterministic")
			}
		})
	}
}

// TestReadSnapshotStream: the reader stops at the snapshot's end, so snapshots can be
// concatenated.
func TestReadSnapshotStream(t *testing.T) {
	a, b := testSnapshots()["odd floats with ids"], testSnapshots()["big"]
	r := bytes.NewReader(append(encode(t, a), encode(t, b)...))
	for _, want := range []models.Snapshot{a, b} {
		got, err := models.ReadSnapshot(r)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameSnapshot(want, got); d != "" {
			t.Errorf("%s: %s", want.Model, d)
		}
	}
	if _, err := models.ReadSnapshot(r); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, models.ErrSnapshotCorrupt) {
		t.Errorf("at end of stream: %v", err)
	}
}

func TestSnapshotTruncated(t *testing.T) {
	for _, name := range []string{"model only", "small", "empty tables"} {
		b := encode(t, testSnapshots()[name])
		for n := range len(b) {
			_, err := models.ReadSnapshot(bytes.NewReader(b[:n]))
			if !errors.Is(err, models.ErrSnapshotCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s cut to %d of %d bytes: err %v, want corrupt and unexpected EOF", name, n, len(b), err)
			}
		}
	}
	// The large ones (long strings, many floats) at a sample of cuts.
	for _, name := range []string{"negative version and meta", "odd floats with ids", "big"} {
		b := encode(t, testSnapshots()[name])
		for n := 0; n < len(b); n += 1 + n/3 {
			for _, cut := range []int{n, len(b) - 1 - n} {
				_, err := models.ReadSnapshot(bytes.NewReader(b[:max(cut, 0)]))
				if !errors.Is(err, models.ErrSnapshotCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("%s cut to %d of %d bytes: err %v, want corrupt and unexpected EOF", name, cut, len(b), err)
				}
			}
		}
	}
}

// TestSnapshotFlippedBits flips every bit of a snapshot in turn: each must fail, as
// corrupt (most often by the CRC) or as an unknown version.
func TestSnapshotFlippedBits(t *testing.T) {
	b := encode(t, testSnapshots()["small"])
	crcFails := 0
	for n := range len(b) {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[n] ^= 1 << bit
			_, err := models.ReadSnapshot(bytes.NewReader(c))
			if !errors.Is(err, models.ErrSnapshotCorrupt) && !errors.Is(err, models.ErrSnapshotVersion) {
				t.Fatalf("bit %d of byte %d flipped: err %v", bit, n, err)
			}
			if strings.Contains(err.Error(), "CRC") {
				crcFails++
			}
		}
	}
	// Every flip inside the float data or an id can only be caught by the CRC.
	if crcFails < 8*(4*15) {
		t.Errorf("only %d flips caught by the CRC", crcFails)
	}
}

// withCRC appends the CRC-32C of b.
func withCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// header builds the start of a snapshot by hand: magic, format, model "m", version 0.
func header(format uint16) []byte {
	b := append([]byte("VRSNAP"), 0, 0)
	binary.LittleEndian.PutUint16(b[6:], format)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = append(b, 'm')
	return binary.LittleEndian.AppendUint64(b, 0)
}

func u32(b []byte, v ...uint32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func str(b []byte, s string) []byte { return append(u32(b, uint32(len(s))), s...) }

func TestReadSnapshotErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		version bool // ErrSnapshotVersion rather than ErrSnapshotCorrupt
	}{
		{"empty", nil, false},
		{"bad magic", withCRC(u32(u32([]byte("VRSNAQ\x01\x00\x01\x00\x00\x00m"), 0, 0, 0), 0)), false},
		{"format 0", withCRC(u32(header(0), 0, 0)), true},
		{"format 2", withCRC(u32(header(2), 0, 0)), true},
		{"empty model", withCRC(u32(binary.LittleEndian.AppendUint64(u32([]byte("VRSNAP\x01\x00"), 0), 0), 0, 0)), false},
		{"huge model name", u32([]byte("VRSNAP\x01\x00"), math.MaxUint32), false},
		{"huge meta count", u32(header(1), math.MaxUint32), false},
		{"meta keys out of order", withCRC(u32(str(str(str(str(u32(header(1), 2), "b"), "1"), "a"), "2"), 0)), false},
		{"meta key twice", withCRC(u32(str(str(str(str(u32(header(1), 2), "a"), "1"), "a"), "2"), 0)), false},
		{"huge table count", u32(header(1), 0, math.MaxUint32), false},
		{"empty table name", withCRC(append(u32(str(u32(header(1), 0, 1), ""), 0, 0), 0)), false},
		{"table too large", u32(str(u32(header(1), 0, 1), "t"), math.MaxUint32, math.MaxUint32), false},
		{"ids flag 2", withCRC(append(u32(str(u32(header(1), 0, 1), "t"), 0, 0), 2)), false},
		{"table twice", withCRC(append(u32(str(append(u32(str(u32(header(1), 0, 2), "t"), 0, 0), 0), "t"), 0, 0), 0)), false},
		{"bad CRC", append(u32(header(1), 0, 0), 1, 2, 3, 4), false},
		{"missing CRC", u32(header(1), 0, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := models.ReadSnapshot(bytes.NewReader(tc.in))
			want := models.ErrSnapshotCorrupt
			if tc.version {
				want = models.ErrSnapshotVersion
			}
			if !errors.Is(err, want) {
				t.Errorf("err %v, want %v", err, want)
			}
		})
	}
	// The hand-built header itself is valid: an empty snapshot of model "m".
	if s, err := models.ReadSnapshot(bytes.NewReader(withCRC(u32(header(1), 0, 0)))); err != nil || s.Model != "m" {
		t.Errorf("hand-built empty snapshot: %+v, %v", s, err)
	}
}

// TestReadSnapshotBoundedAllocation: headers claiming gigabytes allocate little when the
// input is short.
func TestReadSnapshotBoundedAllocation(t *testing.T) {
	for _, in := range [][]byte{
		u32(str(u32(header(1), 0, 1), "t"), models.MaxSnapshotDim, 2),       // 16 GiB of floats
		u32(str(u32(header(1), 0, 1), "t"), 1<<20, 1<<11),                   // 8 GiB
		append(u32(str(u32(header(1), 0, 1), "t"), 1<<30, 0), 1),            // a billion ids
		str(u32(u32(header(1), 1), models.MaxSnapshotString), "just a bit"), // a 1 MiB key, cut short
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := models.ReadSnapshot(bytes.NewReader(in))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err %v, want truncation", err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 2<<20 {
			t.Errorf("a %d-byte input allocated %d bytes", len(in), d)
		}
	}
}

func TestWriteSnapshotInvalid(t *testing.T) {
	tab := func(edit func(*models.Table)) []models.Table {
		x := models.Table{Name: "t", Rows: 2, Cols: 2, Data: make([]float32, 4)}
		edit(&x)
		return []models.Table{x}
	}
	for _, tc := range []struct {
		name string
		s    models.Snapshot
	}{
		{"empty model", models.Snapshot{}},
		{"model name too long", models.Snapshot{Model: strings.Repeat("m", models.MaxSnapshotString+1)}},
		{"meta value too long", models.Snapshot{Model: "m", Meta: map[string]string{"k": strings.Repeat("v", models.MaxSnapshotString+1)}}},
		{"empty table name", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.Name = "" })}},
		{"negative rows", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.Rows = -2; x.Cols = -2 })}},
		{"short data", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.Data = x.Data[:3] })}},
		{"long data", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.Data = make([]float32, 5) })}},
		{"ids count", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.IDs = []string{"a"} })}},
		{"too many rows", models.Snapshot{Model: "m", Tables: tab(func(x *models.Table) { x.Rows = models.MaxSnapshotDim + 1 })}},
		{"table twice", models.Snapshot{Model: "m", Tables: append(tab(func(*models.Table) {}), tab(func(*models.Table) {})...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := models.WriteSnapshot(&buf, tc.s); !errors.Is(err, models.ErrSnapshotInvalid) {
				t.Errorf("err %v, want ErrSnapshotInvalid", err)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written", buf.Len())
			}
		})
	}
}

type failWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errDiskFull
	}
	w.after--
	return len(p), nil
}

func TestWriteSnapshotWriterError(t *testing.T) {
	s := testSnapshots()["big"] // several buffer flushes
	for after := range 4 {
		if err := models.WriteSnapshot(&failWriter{after: after}, s); !errors.Is(err, errDiskFull) {
			t.Errorf("writer failing after %d writes: err %v", after, err)
		}
	}
}

// TestWMFSnapshot: a trained WMF survives write and read bit-exactly and scores the same.
func TestWMFSnapshot(t *testing.T) {
	p := newWMFProblem(6, 50, 70, 10)
	o := models.WMFOptions{Factors: 7, Iterations: 3, CGSteps: 3, Alpha: 4.5, Reg: 0.3, Seed: 11, Workers: 1}
	m, err := models.TrainWMF(p.nUsers, p.nItems, p.train, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Snapshot()
	s.Tables[0].IDs = make([]string, p.nUsers)
	for u := range s.Tables[0].IDs {
		s.Tables[0].IDs[u] = "user-" + string(rune('A'+u%26))
	}
	got, err := models.ReadSnapshot(bytes.NewReader(encode(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	if d := sameSnapshot(s, got); d != "" {
		t.Fatalf("snapshot round trip: %s", d)
	}
	back, err := models.WMFFromSnapshot(got)
	if err != nil {
		t.Fatal(err)
	}
	bo := back.Options()
	bo.Workers = o.Workers
	if bo != o {
		t.Errorf("options %+v, want %+v", bo, o)
	}
	if back.NumUsers() != p.nUsers || back.NumItems() != p.nItems || back.Factors() != o.Factors {
		t.Errorf("shape %d×%d×%d", back.NumUsers(), back.NumItems(), back.Factors())
	}
	if d := sameSnapshot(m.Snapshot(), back.Snapshot()); d != "" {
		t.Errorf("model → snapshot → model → snapshot: %s", d)
	}
	for u := range int32(p.nUsers) {
		a, b := m.ScoreAll(u, nil), back.ScoreAll(u, nil)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("score(%d, %d): %v, read back %v", u, i, a[i], b[i])
			}
		}
	}
	f1, f2 := m.FoldInUser([]int32{1, 2, 3}, nil), back.FoldInUser([]int32{1, 2, 3}, nil)
	if !slices.Equal(f1, f2) {
		t.Errorf("fold-in after read back: %v vs %v", f2, f1)
	}
}

func TestWMFFromSnapshotInvalid(t *testing.T) {
	p := newWMFProblem(7, 5, 6, 3)
	o := models.WMFOptions{Factors: 3, Iterations: 1, CGSteps: 2, Alpha: 1, Reg: 1, Seed: 1, Workers: 1}
	m, err := models.TrainWMF(p.nUsers, p.nItems, p.train, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	clone := func(edit func(*models.Snapshot)) models.Snapshot {
		s := m.Snapshot()
		s.Meta = maps.Clone(s.Meta)
		s.Tables = slices.Clone(s.Tables)
		for n := range s.Tables {
			s.Tables[n].Data = slices.Clone(s.Tables[n].Data)
		}
		edit(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(*models.Snapshot)
	}{
		{"model", func(s *models.Snapshot) { s.Model = "bpr" }},
		{"version", func(s *models.Snapshot) { s.Version = 2 }},
		{"no factors", func(s *models.Snapshot) { delete(s.Meta, "factors") }},
		{"factors mismatch", func(s *models.Snapshot) { s.Meta["factors"] = "4" }},
		{"bad alpha", func(s *models.Snapshot) { s.Meta["alpha"] = "lots" }},
		{"reg 0", func(s *models.Snapshot) { s.Meta["reg"] = "0" }},
		{"bad seed", func(s *models.Snapshot) { s.Meta["seed"] = "-1" }},
		{"no items", func(s *models.Snapshot) { s.Tables = s.Tables[:1] }},
		{"short data", func(s *models.Snapshot) { s.Tables[1].Data = s.Tables[1].Data[:5] }},
		{"NaN", func(s *models.Snapshot) { s.Tables[0].Data[2] = float32(math.NaN()) }},
		{"Inf", func(s *models.Snapshot) { s.Tables[1].Data[0] = float32(math.Inf(-1)) }},
		{"huge", func(s *models.Snapshot) { s.Tables[1].Data[0] = 1e20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := models.WMFFromSnapshot(clone(tc.edit)); !errors.Is(err, models.ErrSnapshotInvalid) {
				t.Errorf("err %v, want ErrSnapshotInvalid", err)
			}
		})
	}
	if _, err := models.WMFFromSnapshot(clone(func(*models.Snapshot) {})); err != nil {
		t.Errorf("unedited: %v", err)
	}
}

// FuzzReadSnapshot: no input panics, and whatever reads successfully is canonical: writing
// it again gives exactly the bytes consumed. Each input is read as given and, so that the
// fuzzer gets past the CRC to the parser, with a valid CRC-32C appended.
func FuzzReadSnapshot(f *testing.F) {
	for _, name := range []string{"model only", "small", "empty tables"} {
		b := encode(f, testSnapshots()[name])
		f.Add(b)
		f.Add(b[:len(b)-4]) // the body: valid once its CRC is appended
		f.Add(b[:len(b)/2])
	}
	f.Add(u32(header(1), 0, 0))
	f.Add([]byte("VRSNAP"))
	f.Fuzz(func(t *testing.T, in []byte) {
		readCanonical(t, in)
		readCanonical(t, withCRC(bytes.Clone(in)))
	})
}

func readCanonical(t *testing.T, in []byte) {
	t.Helper()
	r := bytes.NewReader(in)
	s, err := models.ReadSnapshot(r)
	if err != nil {
		if !errors.Is(err, models.ErrSnapshotCorrupt) && !errors.Is(err, models.ErrSnapshotVersion) {
			t.Fatalf("error of no known kind: %v", err)
		}
		return
	}
	var buf bytes.Buffer
	if err := models.WriteSnapshot(&buf, s); err != nil {
		t.Fatalf("what was read does not write: %v", err)
	}
	if consumed := in[:len(in)-r.Len()]; !bytes.Equal(buf.Bytes(), consumed) {
		t.Fatalf("re-encoding gives %d bytes, %d consumed", buf.Len(), len(consumed))
	}
}

// BenchmarkSnapshot writes and reads a MovieLens-sized WMF (610 + 9,724 rows × 64) with
// ids; it reports MB/s of snapshot bytes.
func BenchmarkSnapshot(b *testing.B) {
	mk := func(name string, rows int) models.Table {
		t := models.Table{Name: name, Rows: rows, Cols: 64, Data: make([]float32, rows*64), IDs: make([]string, rows)}
		for j := range t.Data {
			t.Data[j] = float32(j%977) * 0.001
		}
		for r := range t.IDs {
			t.IDs[r] = "id-" + string(rune('a'+r%26))
		}
		return t
	}
	s := models.Snapshot{Model: "wmf", Version: 1, Meta: map[string]string{"factors": "64"},
		Tables: []models.Table{mk("users", 610), mk("items", 9724)}}
	data := encode(b, s)
	b.Run("write", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := models.WriteSnapshot(io.Discard, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := models.ReadSnapshot(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
