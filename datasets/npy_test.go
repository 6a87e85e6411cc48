package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// npyBytes builds a .npy file by hand, following numpy.lib.format: magic, version, header
// length (2 bytes in 1.0, 4 in 2.0/3.0), the dict padded with spaces and '\n' to a
// multiple of 64, then data.
func npyBytes(major byte, dict string, data []byte) []byte {
	lenBytes := 2
	if major >= 2 {
		lenBytes = 4
	}
	pre := 6 + 2 + lenBytes
	hdr := dict
	for (pre+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	out := []byte("\x93NUMPY")
	out = append(out, major, 0)
	if lenBytes == 2 {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(hdr)))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(hdr)))
	}
	out = append(out, hdr...)
	return append(out, data...)
}

func f32le(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func f64(order binary.AppendByteOrder, vs ...float64) []byte {
	var b []byte
	for _, v := range vs {
		b = order.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func TestReadNPY(t *testing.T) {
	vals := []float32{1, -2.5, 3.25, 0, 1e-3, 42}
	be32 := []byte{}
	for _, v := range vals {
		be32 = binary.BigEndian.AppendUint32(be32, math.Float32bits(v))
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"v1.0 <f4", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32le(vals...))},
		{"v2.0 <f8", npyBytes(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f64(binary.LittleEndian, 1, -2.5, 3.25, 0, 1e-3, 42))},
		{"v3.0 >f8", npyBytes(3, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3)}", f64(binary.BigEndian, 1, -2.5, 3.25, 0, 1e-3, 42))},
		{">f4, double quotes, key order, L", npyBytes(1, `{"shape": (2L, 3L), "fortran_order": False, "descr": ">f4"}`, be32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ReadNPY(bytes.NewReader(tt.file), "x.npy")
			if err != nil {
				t.Fatal(err)
			}
			if m.Rows != 2 || m.Cols != 3 {
				t.Fatalf("shape %d×%d", m.Rows, m.Cols)
			}
			for i, v := range vals {
				if m.Data[i] != v {
					t.Errorf("value %d = %v, want %v", i, m.Data[i], v)
				}
			}
			if r := m.Row(1); r[0] != 0 || len(r) != 3 || cap(r) != 3 {
				t.Errorf("row 1 = %v (cap %d)", r, cap(r))
			}
		})
	}
}

func TestNPYRoundTrip(t *testing.T) {
	m := &Matrix{Rows: 3, Cols: 5, Data: make([]float32, 15)}
	for i := range m.Data {
		m.Data[i] = float32(i) * 0.37
	}
	var buf bytes.Buffer
	if err := WriteNPY(&buf, m); err != nil {
		t.Fatal(err)
	}
	want := npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", f32le(m.Data...))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteNPY wrote\n%q\nwant\n%q", buf.Bytes()[:80], want[:80])
	}
	if (buf.Len()-4*15)%64 != 0 {
		t.Errorf("data starts at %d, not a multiple of 64", buf.Len()-4*15)
	}
	p := filepath.Join(t.TempDir(), "m.npy")
	os.WriteFile(p, buf.Bytes(), 0o644)
	got, err := LoadNPY(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 3 || got.Cols != 5 || !equalF32(got.Data, m.Data) {
		t.Errorf("read back %+v", got)
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadNPYRejects(t *testing.T) {
	ok := "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"
	data := f32le(1, 2)
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "not a .npy file"},
		{"bad magic", append([]byte("\x93NUMPZ\x01\x00"), make([]byte, 60)...), "magic"},
		{"version 4.0", func() []byte { b := npyBytes(1, ok, data); b[6] = 4; return b }(), "byte offset 6: .npy format version 4.0 is not supported"},
		{"version 1.1", func() []byte { b := npyBytes(1, ok, data); b[7] = 1; return b }(), "version 1.1"},
		{"int64", npyBytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", f64(binary.LittleEndian, 1, 2)), `dtype "<i8" is not supported`},
		{"structured", npyBytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", data), "structured dtypes"},
		{"fortran", npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", data), "fortran_order is True"},
		{"1-D", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data), "1 dimensions, want 2"},
		{"3-D", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2), }", data), "3 dimensions"},
		{"truncated data", npyBytes(1, ok, data[:6]), "truncated: shape [1 2] needs 8 data bytes, the file has 6"},
		{"trailing bytes", npyBytes(1, ok, append(data, 0)), "trailing bytes"},
		{"truncated header", npyBytes(1, ok, data)[:30], "truncated header"},
		{"missing key", npyBytes(1, "{'descr': '<f4', 'shape': (1, 2)}", data), "want the keys"},
		{"extra key", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}", data), `unexpected key "x"`},
		{"negative dim", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", data), "dimension"},
		{"huge shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000000000), }", data), "too large"},
		{"not a dict", npyBytes(1, "[1, 2]", data), "dict literal"},
		{"garbage after dict", npyBytes(1, ok+" x", data), "text after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadNPY(bytes.NewReader(tt.file), "feat.npy")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "feat.npy: byte offset ") {
				t.Fatalf("err = %v, want feat.npy: byte offset ... %q", err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v does not match ErrMalformed", err)
			}
		})
	}
}

func FuzzNPYHeader(f *testing.F) {
	f.Add(npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", f32le(1, 2)))
	f.Add(npyBytes(2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", f64(binary.LittleEndian, 1)))
	f.Add(npyBytes(1, `{"shape": (2L,), "fortran_order": True, "descr": ">f4"}`, nil))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseNPYHeader(b); err == nil && h.DataOffset > len(b) {
			t.Fatalf("data offset %d beyond %d bytes", h.DataOffset, len(b))
		}
		m, err := ReadNPY(bytes.NewReader(b), "fuzz.npy")
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if len(m.Data) != m.Rows*m.Cols {
			t.Fatalf("%d values for %d×%d", len(m.Data), m.Rows, m.Cols)
		}
	})
}
