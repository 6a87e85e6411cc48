package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The .npy format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version
// byte, the header length (uint16 little-endian in version 1.0, uint32 in 2.0 and 3.0),
// and the header, an ASCII (3.0: UTF-8) Python dict literal with the keys 'descr',
// 'fortran_order' and 'shape', padded with spaces and a final '\n' so that the data that
// follows starts at a multiple of 64 bytes (16 in old files). The data is the array's raw
// values in C order ('fortran_order': False).

const (
	npyMagic = "\x93NUMPY"
	// maxNPYHeader bounds the header; numpy itself refuses headers over 10,000 bytes
	// unless told otherwise.
	maxNPYHeader = 1 << 20
	// maxNPYBytes bounds the data a header may announce (1 TiB), so that a corrupt shape
	// cannot overflow the size computation.
	maxNPYBytes = 1 << 40
)

// npyHeader is a parsed .npy preamble.
type npyHeader struct {
	Major, Minor byte
	Descr        string // e.g. "<f4"
	Fortran      bool
	Shape        []int
	DataOffset   int // bytes from the start of the file to the data
}

// order and size of an element: the dtypes accepted are float32 and float64 in either
// byte order.
func (h *npyHeader) dtype() (binary.ByteOrder, int, error) {
	switch h.Descr {
	case "<f4":
		return binary.LittleEndian, 4, nil
	case "<f8":
		return binary.LittleEndian, 8, nil
	case ">f4":
		return binary.BigEndian, 4, nil
	case ">f8":
		return binary.BigEndian, 8, nil
	}
	return nil, 0, fmt.Errorf("dtype %q is not supported: want float32 or float64 ('<f4', '<f8', '>f4', '>f8')", h.Descr)
}

// LoadNPY reads a 2-D float32 or float64 C-order .npy file (float64 values are rounded to
// float32). Version 1.0, 2.0 and 3.0 headers are accepted; other versions, other dtypes,
// Fortran order, other ranks, a truncated file and trailing bytes are errors naming the
// file and byte offset.
func LoadNPY(path string) (*Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open .npy: %w", err)
	}
	defer f.Close()
	return ReadNPY(f, path)
}

// ReadNPY is LoadNPY from a reader; name is used in errors. Memory grows with the data
// actually read, never with what a corrupt header claims.
func ReadNPY(r io.Reader, name string) (*Matrix, error) {
	h, err := readNPYHeader(r, name)
	if err != nil {
		return nil, err
	}
	order, size, err := h.dtype()
	if err != nil {
		return nil, offsetErr(name, 0, "%w", err)
	}
	if h.Fortran {
		return nil, offsetErr(name, 0, "fortran_order is True: only C-order arrays are supported (save with np.ascontiguousarray)")
	}
	if len(h.Shape) != 2 {
		return nil, offsetErr(name, 0, "shape %v has %d dimensions, want 2 (rows, columns)", h.Shape, len(h.Shape))
	}
	rows, cols := h.Shape[0], h.Shape[1]
	if cols > 0 && rows > maxNPYBytes/size/cols {
		return nil, offsetErr(name, 0, "shape %v is too large", h.Shape)
	}
	n := rows * cols
	m := &Matrix{Rows: rows, Cols: cols, Data: make([]float32, 0, min(n, 1<<22))}
	buf := make([]byte, 1<<20)
	off := int64(h.DataOffset)
	for len(m.Data) < n {
		want := min(len(buf), (n-len(m.Data))*size)
		got, err := io.ReadFull(r, buf[:want])
		for i := 0; i+size <= got; i += size {
			if size == 4 {
				m.Data = append(m.Data, math.Float32frombits(order.Uint32(buf[i:])))
			} else {
				m.Data = append(m.Data, float32(math.Float64frombits(order.Uint64(buf[i:]))))
			}
		}
		off += int64(got)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, offsetErr(name, off, "truncated: shape %v needs %d data bytes, the file has %d", h.Shape, int64(n)*int64(size), off-int64(h.DataOffset))
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if k, _ := io.ReadFull(r, buf[:1]); k > 0 {
		return nil, offsetErr(name, off, "trailing bytes after the %v array", h.Shape)
	}
	return m, nil
}

// readNPYHeader reads and parses the preamble.
func readNPYHeader(r io.Reader, name string) (npyHeader, error) {
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		return npyHeader{}, offsetErr(name, 0, "not a .npy file: shorter than the 8 bytes of magic and version")
	}
	if string(pre[:6]) != npyMagic {
		return npyHeader{}, offsetErr(name, 0, "not a .npy file: magic %q, want %q", pre[:6], npyMagic)
	}
	lenBytes := 2
	switch {
	case pre[6] == 1 && pre[7] == 0:
	case (pre[6] == 2 || pre[6] == 3) && pre[7] == 0:
		lenBytes = 4
	default:
		return npyHeader{}, offsetErr(name, 6, ".npy format version %d.%d is not supported (want 1.0, 2.0 or 3.0)", pre[6], pre[7])
	}
	if _, err := io.ReadFull(r, pre[8:8+lenBytes]); err != nil {
		return npyHeader{}, offsetErr(name, 8, "truncated header length")
	}
	hlen := int(binary.LittleEndian.Uint16(pre[8:]))
	if lenBytes == 4 {
		hl := binary.LittleEndian.Uint32(pre[8:])
		if hl > maxNPYHeader {
			return npyHeader{}, offsetErr(name, 8, "header length %d exceeds %d bytes", hl, maxNPYHeader)
		}
		hlen = int(hl)
	}
	text := make([]byte, hlen)
	if _, err := io.ReadFull(r, text); err != nil {
		return npyHeader{}, offsetErr(name, int64(8+lenBytes), "truncated header: want %d bytes", hlen)
	}
	h, err := parseNPYDict(text)
	if err != nil {
		return npyHeader{}, offsetErr(name, int64(8+lenBytes), "header %q: %w", truncateBytes(text, 120), err)
	}
	h.Major, h.Minor = pre[6], pre[7]
	h.DataOffset = 8 + lenBytes + hlen
	return h, nil
}

// parseNPYHeader parses a whole .npy preamble held in b; for fuzzing and tests.
func parseNPYHeader(b []byte) (npyHeader, error) {
	return readNPYHeader(bytes.NewReader(b), "header")
}

// parseNPYDict parses the header dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
func parseNPYDict(text []byte) (npyHeader, error) {
	p := pyParser{s: string(text)}
	var h npyHeader
	var haveDescr, haveOrder, haveShape bool
	p.space()
	if !p.eat('{') {
		return h, errors.New("want a dict literal starting with '{'")
	}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("key: %w", err)
		}
		p.space()
		if !p.eat(':') {
			return h, fmt.Errorf("want ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if h.Descr, err = p.str(); err != nil {
				return h, fmt.Errorf("descr: %w (structured dtypes are not supported)", err)
			}
			haveDescr = true
		case "fortran_order":
			if h.Fortran, err = p.boolean(); err != nil {
				return h, fmt.Errorf("fortran_order: %w", err)
			}
			haveOrder = true
		case "shape":
			if h.Shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("shape: %w", err)
			}
			haveShape = true
		default:
			return h, fmt.Errorf("unexpected key %q", key)
		}
		p.space()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return h, fmt.Errorf("want ',' or '}' after the value of %q", key)
		}
	}
	if strings.TrimSpace(p.s[p.i:]) != "" {
		return h, errors.New("text after the closing '}'")
	}
	if !haveDescr || !haveOrder || !haveShape {
		return h, errors.New("want the keys 'descr', 'fortran_order' and 'shape'")
	}
	return h, nil
}

// pyParser reads the small subset of Python literals that .npy headers use.
type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", errors.New("escapes in strings are not supported")
	}
	p.i += end + 2
	return v, nil
}

func (p *pyParser) boolean() (bool, error) {
	for _, w := range [...]struct {
		s string
		v bool
	}{{"True", true}, {"False", false}} {
		if strings.HasPrefix(p.s[p.i:], w.s) {
			p.i += len(w.s)
			return w.v, nil
		}
	}
	return false, errors.New("want True or False")
}

// tuple reads (a, b, ...) of non-negative integers; (), (n,) and a trailing comma are
// allowed.
func (p *pyParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple")
	}
	dims := []int{}
	for {
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
		if err != nil || n > maxNPYBytes {
			return nil, fmt.Errorf("dimension %q is not an integer in [0, %d]", truncateBytes([]byte(p.s[start:min(p.i+1, len(p.s))]), 24), int64(maxNPYBytes))
		}
		p.eat('L') // Python 2 longs
		dims = append(dims, int(n))
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		if !p.eat(',') {
			return nil, errors.New("want ',' or ')' in the tuple")
		}
	}
}

// WriteNPY writes m as a version 1.0 little-endian float32 C-order .npy file.
func WriteNPY(w io.Writer, m *Matrix) error {
	if len(m.Data) != m.Rows*m.Cols {
		return fmt.Errorf("matrix %d×%d holds %d values", m.Rows, m.Cols, len(m.Data))
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", m.Rows, m.Cols)
	pad := 64 - (10+len(dict)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	if len(hdr) > math.MaxUint16 {
		return errors.New("npy header too long")
	}
	out := make([]byte, 0, 10+len(hdr)+4*len(m.Data))
	out = append(out, npyMagic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(hdr)))
	out = append(out, hdr...)
	out = encodeFloat32sLE(out, m.Data)
	_, err := w.Write(out)
	return err
}

func truncateBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
