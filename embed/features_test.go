package embed

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/visrec/visrec/datasets"
)

func randomRows(n, dim int) ([]string, [][]float32) {
	rng := rand.New(rand.NewPCG(7, uint64(n*dim)))
	ids := make([]string, n)
	rows := make([][]float32, n)
	for i := range rows {
		ids[i] = fmt.Sprintf("B%09d", rng.IntN(1e9)) // 10 bytes, an ASIN's length
		rows[i] = make([]float32, dim)
		for j := range rows[i] {
			rows[i][j] = float32(rng.NormFloat64())
		}
	}
	rows[0][0] = float32(math.SmallestNonzeroFloat32) // an extreme value that must survive
	return ids, rows
}

func checkImported(t *testing.T, name string, ids []string, m *datasets.Matrix, wantIDs []string, rows [][]float32) {
	t.Helper()
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("%s: ids %v, want %v", name, ids, wantIDs)
	}
	if m.Rows != len(rows) || m.Cols != len(rows[0]) {
		t.Fatalf("%s: %d×%d matrix, want %d×%d", name, m.Rows, m.Cols, len(rows), len(rows[0]))
	}
	for i := range rows {
		if !slices.Equal(m.Row(i), rows[i]) {
			t.Fatalf("%s: row %d differs", name, i)
		}
	}
}

func TestRawRoundTrip(t *testing.T) {
	ids, rows := randomRows(5, 7)
	p := filepath.Join(t.TempDir(), "x.f32")
	w, err := NewRawWriter(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if err := w.Write(ids[i], rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists before Close: %v", p, err)
	}
	if err := w.Write("short", rows[0][:3]); err == nil {
		t.Fatal("row of another length: no error")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gotIDs, m, err := ImportFeatures(p, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, "raw", gotIDs, m, ids, rows)
	gotIDs, m, err = datasets.LoadRawFeatures(p, IDsPath(p), 7)
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, "raw via datasets", gotIDs, m, ids, rows)
}

func TestRawAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRawWriter(filepath.Join(dir, "x.f32"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write("1", []float32{1, 2}) //nolint:errcheck
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after Abort: %v", ents)
	}
}

func TestNPYRoundTrip(t *testing.T) {
	ids, rows := randomRows(4, 9)
	p := filepath.Join(t.TempDir(), "x.npy")
	w := NewNPYWriter(p)
	for i := range ids {
		if err := w.Write(ids[i], rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gotIDs, m, err := ImportFeatures(p, ImportOptions{Dim: 9})
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, "npy", gotIDs, m, ids, rows)
	if _, _, err := ImportFeatures(p, ImportOptions{Dim: 8}); err == nil {
		t.Error("wrong dim: no error")
	}
	if err := os.WriteFile(IDsPath(p), []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ImportFeatures(p, ImportOptions{}); !errors.Is(err, datasets.ErrMalformed) {
		t.Errorf("2 ids for 4 rows: %v", err)
	}
	os.Remove(IDsPath(p))
	if _, _, err := ImportFeatures(p, ImportOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no ids file: %v", err)
	}
}

func TestVBPRRoundTrip(t *testing.T) {
	ids, rows := randomRows(3, 16)
	var buf bytes.Buffer
	if err := datasets.WriteVBPRFeatures(&buf, ids, rows); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "image_features_x.b")
	if err := os.WriteFile(plain, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gotIDs, m, err := ImportFeatures(plain, ImportOptions{Dim: 16})
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, "vbpr", gotIDs, m, ids, rows)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes()) //nolint:errcheck // bytes.Buffer
	zw.Close()
	gotIDs, m, err = ReadVBPR(&gz, "x.b.gz", 16)
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, "vbpr gz", gotIDs, m, ids, rows)

	// A short ASIN is padded; a truncated record and a NaN are errors with an offset.
	var short bytes.Buffer
	short.WriteString("A1\x00\x00\x00\x00\x00\x00\x00\x00")
	short.Write(bytes.Repeat([]byte{0, 0, 128, 63}, 16)) // 1.0
	gotIDs, m, err = ReadVBPR(bytes.NewReader(short.Bytes()), "short", 16)
	if err != nil || gotIDs[0] != "A1" || m.Row(0)[5] != 1 {
		t.Fatalf("padded ASIN: %v %v", gotIDs, err)
	}
	if _, _, err := ReadVBPR(bytes.NewReader(buf.Bytes()[:buf.Len()-3]), "trunc", 16); !errors.Is(err, datasets.ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
	bad := slices.Clone(buf.Bytes())
	copy(bad[10+4*16+10+8:], []byte{0, 0, 0xc0, 0x7f}) // NaN in record 1
	if _, _, err := ReadVBPR(bytes.NewReader(bad), "nan", 16); !errors.Is(err, datasets.ErrMalformed) {
		t.Errorf("NaN: %v", err)
	}
}

func TestIDsPath(t *testing.T) {
	for in, want := range map[string]string{"a/x.f32": "a/x.ids", "x.npy": "x.ids", "x.bin": "x.bin.ids"} {
		if got := IDsPath(in); got != want {
			t.Errorf("IDsPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzReadVBPR(f *testing.F) {
	ids, rows := randomRows(2, 4)
	var buf bytes.Buffer
	datasets.WriteVBPRFeatures(&buf, ids, rows) //nolint:errcheck
	f.Add(buf.Bytes())
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, m, err := ReadVBPR(bytes.NewReader(data), "fuzz", 4)
		if err == nil && (len(ids) != m.Rows || len(m.Data) != m.Rows*4) {
			t.Fatalf("%d ids, %d rows, %d values", len(ids), m.Rows, len(m.Data))
		}
	})
}
