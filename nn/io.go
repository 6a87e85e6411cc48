package nn

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Parameter files.
//
// Format (version 1), all integers little-endian:
//
//	file   = magic "VRNNPARM" (8 bytes) · version u32 (=1) · count u32 · tensor×count · crc u32
//	tensor = nameLen u16 · name (UTF-8, 1..1024 bytes) · ndim u8 (1..8) · dim u32×ndim ·
//	         data: the float32 elements in row-major order, each as its IEEE 754 bits (u32)
//	crc    = CRC-32C (Castagnoli) of every byte before it
//
// Names are unique within a file. Values round-trip bit-exactly (NaN payloads included).
// A reader rejects a short file (ErrTruncated), a wrong magic, an impossible header or a
// checksum mismatch (ErrCorrupt) and an unknown version (ErrVersion), and never allocates
// much more than the bytes it has actually read.

const (
	paramMagic     = "VRNNPARM"
	paramVersion   = 1
	maxNameLen     = 1024
	maxTensorCount = 1 << 20
	maxElements    = 1<<31 - 1 // per tensor
	readChunk      = 1 << 16   // elements read (and allocated) at a time
)

// Errors of ReadTensors and LoadParams; returned errors wrap them.
var (
	ErrTruncated = errors.New("nn: parameter file truncated")
	ErrCorrupt   = errors.New("nn: parameter file corrupt")
	ErrVersion   = errors.New("nn: unsupported parameter file version")
	ErrMismatch  = errors.New("nn: parameter file does not match the parameters")
)

// NamedTensor is a tensor read from a parameter file.
type NamedTensor struct {
	Name   string
	Tensor *Tensor
}

// WriteParams writes ps in the format above. Names must be unique and non-empty.
func WriteParams(w io.Writer, ps []*Param) error {
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if p.Name == "" || len(p.Name) > maxNameLen || !utf8.ValidString(p.Name) {
			return fmt.Errorf("nn: writing parameters: invalid name %q", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("nn: writing parameters: duplicate name %q", p.Name)
		}
		seen[p.Name] = true
		if len(p.Value.Shape) > maxDims || p.Value.Len() > maxElements {
			return fmt.Errorf("nn: writing parameter %q: shape %v not representable", p.Name, p.Value.Shape)
		}
	}
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	bw := bufio.NewWriter(io.MultiWriter(w, crc))
	var hdr [16]byte
	copy(hdr[:], paramMagic)
	binary.LittleEndian.PutUint32(hdr[8:], paramVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(ps)))
	bw.Write(hdr[:])
	buf := make([]byte, 4*1024)
	for _, p := range ps {
		var b [2]byte
		binary.LittleEndian.PutUint16(b[:], uint16(len(p.Name)))
		bw.Write(b[:])
		bw.WriteString(p.Name)
		bw.WriteByte(byte(len(p.Value.Shape)))
		for _, d := range p.Value.Shape {
			var db [4]byte
			binary.LittleEndian.PutUint32(db[:], uint32(d))
			bw.Write(db[:])
		}
		data := p.Value.Data
		for len(data) > 0 {
			n := min(len(data), len(buf)/4)
			for i, v := range data[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			bw.Write(buf[:4*n])
			data = data[n:]
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("nn: writing parameters: %w", err)
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("nn: writing parameters: %w", err)
	}
	return nil
}

// reader reads exact byte counts, hashing what it reads.
type reader struct {
	r   io.Reader
	crc hash.Hash32
	buf [4 * readChunk]byte
}

func (r *reader) read(n int, what string) ([]byte, error) {
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: reading %s", ErrTruncated, what)
		}
		return nil, fmt.Errorf("nn: reading parameters (%s): %w", what, err)
	}
	r.crc.Write(b)
	return b, nil
}

// ReadTensors reads every tensor of a parameter file, in file order.
func ReadTensors(rd io.Reader) ([]NamedTensor, error) {
	r := &reader{r: rd, crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
	b, err := r.read(16, "header")
	if err != nil {
		return nil, err
	}
	if string(b[:8]) != paramMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != paramVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	count := binary.LittleEndian.Uint32(b[12:])
	if count > maxTensorCount {
		return nil, fmt.Errorf("%w: %d tensors", ErrCorrupt, count)
	}
	var out []NamedTensor
	seen := make(map[string]bool)
	for i := 0; i < int(count); i++ {
		nt, err := r.tensor(i)
		if err != nil {
			return nil, err
		}
		if seen[nt.Name] {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrCorrupt, nt.Name)
		}
		seen[nt.Name] = true
		out = append(out, nt)
	}
	want := r.crc.Sum32()
	b, err = r.read(4, "checksum")
	if err != nil {
		return nil, err
	}
	if got := binary.LittleEndian.Uint32(b); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	return out, nil
}

func (r *reader) tensor(i int) (NamedTensor, error) {
	what := fmt.Sprintf("tensor %d", i)
	b, err := r.read(2, what)
	if err != nil {
		return NamedTensor{}, err
	}
	nameLen := int(binary.LittleEndian.Uint16(b))
	if nameLen == 0 || nameLen > maxNameLen {
		return NamedTensor{}, fmt.Errorf("%w: %s: name of %d bytes", ErrCorrupt, what, nameLen)
	}
	if b, err = r.read(nameLen, what); err != nil {
		return NamedTensor{}, err
	}
	name := string(b)
	if !utf8.ValidString(name) {
		return NamedTensor{}, fmt.Errorf("%w: %s: name is not UTF-8", ErrCorrupt, what)
	}
	what = fmt.Sprintf("tensor %q", name)
	if b, err = r.read(1, what); err != nil {
		return NamedTensor{}, err
	}
	nd := int(b[0])
	if nd < 1 || nd > maxDims {
		return NamedTensor{}, fmt.Errorf("%w: %s: %d dimensions", ErrCorrupt, what, nd)
	}
	if b, err = r.read(4*nd, what); err != nil {
		return NamedTensor{}, err
	}
	shape := make([]int, nd)
	total := 1
	for d := range shape {
		shape[d] = int(binary.LittleEndian.Uint32(b[4*d:]))
		if shape[d] != 0 && total > maxElements/shape[d] {
			return NamedTensor{}, fmt.Errorf("%w: %s: shape %v too large", ErrCorrupt, what, shape[:d+1])
		}
		total *= shape[d]
	}
	if total > maxElements {
		return NamedTensor{}, fmt.Errorf("%w: %s: shape %v too large", ErrCorrupt, what, shape)
	}
	// Grow the data as it arrives, so a lying header cannot make us allocate gigabytes.
	data := make([]float32, 0, min(total, readChunk))
	for len(data) < total {
		n := min(total-len(data), readChunk)
		if b, err = r.read(4*n, what); err != nil {
			return NamedTensor{}, err
		}
		for k := 0; k < n; k++ {
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:])))
		}
	}
	return NamedTensor{Name: name, Tensor: FromData(data, shape...)}, nil
}

// ReadParams reads a parameter file into ps: every parameter must be present with its
// exact shape, and the file may hold nothing else (ErrMismatch otherwise). Nothing is
// modified unless the whole file is valid and matches.
func ReadParams(r io.Reader, ps []*Param) error {
	ts, err := ReadTensors(r)
	if err != nil {
		return err
	}
	byName := make(map[string]*Tensor, len(ts))
	for _, nt := range ts {
		byName[nt.Name] = nt.Tensor
	}
	for _, p := range ps {
		x, ok := byName[p.Name]
		if !ok {
			return fmt.Errorf("%w: no tensor %q", ErrMismatch, p.Name)
		}
		if !x.SameShape(p.Value) {
			return fmt.Errorf("%w: tensor %q has shape %v, parameter %v", ErrMismatch, p.Name, x.Shape, p.Value.Shape)
		}
	}
	if len(ts) != len(ps) {
		return fmt.Errorf("%w: %d tensors in the file for %d parameters", ErrMismatch, len(ts), len(ps))
	}
	for _, p := range ps {
		copy(p.Value.Data, byName[p.Name].Data)
	}
	return nil
}

// SaveParams writes ps to path atomically: to a temporary file in the same directory,
// synced, then renamed over path.
func SaveParams(path string, ps []*Param) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("nn: saving parameters: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = WriteParams(f, ps); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("nn: saving parameters: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("nn: saving parameters: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("nn: saving parameters: %w", err)
	}
	return nil
}

// LoadParams reads the parameter file at path into ps (see ReadParams).
func LoadParams(path string, ps []*Param) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("nn: loading parameters: %w", err)
	}
	defer f.Close()
	if err := ReadParams(bufio.NewReader(f), ps); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
