package nn

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func testParams() []*Param {
	a := NewParamFrom("layer.W", randn(1, 3, 4))
	b := NewParamFrom("layer.b", randn(2, 4))
	c := NewParamFrom("ε/embedding", randn(3, 2, 1, 2, 3))
	// Special values must survive bit-exactly, NaN payloads included.
	b.Value.Data[0] = math.Float32frombits(0x7fc00123)
	b.Value.Data[1] = float32(math.Inf(-1))
	b.Value.Data[2] = float32(math.Copysign(0, -1))
	b.Value.Data[3] = math.Float32frombits(1) // smallest subnormal
	empty := NewParam("empty", 0, 5)
	return []*Param{a, b, c, empty}
}

func encode(t *testing.T, ps []*Param) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteParams(&buf, ps); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParamsRoundTrip(t *testing.T) {
	ps := testParams()
	data := encode(t, ps)
	ts, err := ReadTensors(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(ps) {
		t.Fatalf("%d tensors, want %d", len(ts), len(ps))
	}
	for i, nt := range ts {
		p := ps[i]
		if nt.Name != p.Name || !nt.Tensor.SameShape(p.Value) {
			t.Fatalf("tensor %d: %q %v, want %q %v", i, nt.Name, nt.Tensor.Shape, p.Name, p.Value.Shape)
		}
		for j, v := range nt.Tensor.Data {
			if math.Float32bits(v) != math.Float32bits(p.Value.Data[j]) {
				t.Fatalf("%s[%d]: bits %08x, want %08x", p.Name, j, math.Float32bits(v), math.Float32bits(p.Value.Data[j]))
			}
		}
	}
	// ReadParams into fresh parameters, then write again: identical bytes.
	fresh := testParams()
	for _, p := range fresh {
		p.Value.Zero()
	}
	if err := ReadParams(bytes.NewReader(data), fresh); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, fresh), data) {
		t.Fatal("re-encoding after a load differs")
	}
	// The file helpers.
	path := filepath.Join(t.TempDir(), "model.params")
	if err := SaveParams(path, ps); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("saved file differs (%v)", err)
	}
	if err := LoadParams(path, fresh); err != nil {
		t.Fatal(err)
	}
	if err := LoadParams(filepath.Join(t.TempDir(), "missing"), fresh); err == nil {
		t.Fatal("loading a missing file succeeded")
	}
}

func TestParamsFormatLayout(t *testing.T) {
	p := NewParamFrom("w", FromData([]float32{1, -2}, 2))
	data := encode(t, []*Param{p})
	want := []byte("VRNNPARM")
	want = append(want, 1, 0, 0, 0, 1, 0, 0, 0)   // version 1, one tensor
	want = append(want, 1, 0, 'w', 1, 2, 0, 0, 0) // name "w", 1 dimension of 2
	want = append(want, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0)
	if !bytes.Equal(data[:len(data)-4], want) {
		t.Fatalf("layout\n% x\nwant\n% x", data[:len(data)-4], want)
	}
}

func TestReadTensorsRejectsTruncated(t *testing.T) {
	data := encode(t, testParams())
	for n := 0; n < len(data); n++ {
		_, err := ReadTensors(bytes.NewReader(data[:n]))
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix of %d/%d bytes: %v, want ErrTruncated", n, len(data), err)
		}
	}
}

func TestReadTensorsRejectsCorrupt(t *testing.T) {
	data := encode(t, testParams())
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), data...)
			bad[i] ^= bit
			if _, err := ReadTensors(bytes.NewReader(bad)); err == nil {
				t.Fatalf("flipping bit %02x of byte %d went unnoticed", bit, i)
			}
		}
	}
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrCorrupt},
		{"version", func(b []byte) []byte { b[8] = 2; return b }, ErrVersion},
		{"huge count", func(b []byte) []byte { b[15] = 0xff; return b }, ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := ReadTensors(bytes.NewReader(c.mod(append([]byte(nil), data...)))); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReadParamsMismatch(t *testing.T) {
	data := encode(t, testParams())
	cases := []struct {
		name string
		ps   []*Param
	}{
		{"missing tensor", append(testParams(), NewParam("extra", 1))},
		{"extra tensor", testParams()[:2]},
		{"shape", []*Param{NewParam("layer.W", 4, 3), NewParam("layer.b", 4), NewParam("ε/embedding", 2, 1, 2, 3), NewParam("empty", 0, 5)}},
	}
	for _, c := range cases {
		before := make([]*Tensor, len(c.ps))
		for i, p := range c.ps {
			before[i] = p.Value.Clone()
		}
		err := ReadParams(bytes.NewReader(data), c.ps)
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("%s: %v, want ErrMismatch", c.name, err)
		}
		for i, p := range c.ps {
			for j, v := range p.Value.Data {
				if math.Float32bits(v) != math.Float32bits(before[i].Data[j]) {
					t.Fatalf("%s: a failed load modified %s", c.name, p.Name)
				}
			}
		}
	}
}

func TestWriteParamsRejectsBadNames(t *testing.T) {
	for _, ps := range [][]*Param{
		{NewParam("", 1)},
		{NewParam("a", 1), NewParam("a", 2)},
		{NewParam("\xff", 1)},
	} {
		if err := WriteParams(&bytes.Buffer{}, ps); err == nil {
			t.Fatalf("WriteParams accepted %v", ps)
		}
	}
}

// FuzzReadTensors: the reader never panics, never accepts a file whose checksum does not
// match, and what it accepts re-encodes to the same bytes.
func FuzzReadTensors(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteParams(&buf, testParams()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:40])
	f.Add([]byte("VRNNPARM\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ReadTensors(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		ps := make([]*Param, len(ts))
		for i, nt := range ts {
			ps[i] = NewParamFrom(nt.Name, nt.Tensor)
		}
		var out bytes.Buffer
		if err := WriteParams(&out, ps); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data[:out.Len()]) {
			t.Fatal("re-encoding differs from the accepted input")
		}
	})
}
