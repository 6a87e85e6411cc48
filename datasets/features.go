package datasets

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
)

// Matrix is a dense row-major float32 matrix, e.g. one feature row per item.
type Matrix struct {
	Rows, Cols int
	Data       []float32 // Rows × Cols
}

// Row returns row i (a view into Data).
func (m *Matrix) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols : (i+1)*m.Cols] }

// FeatureReport says how the rows of a feature file met the items of a data set.
type FeatureReport struct {
	Rows      int // rows (records) read
	Attached  int // rows attached to an item of the data set
	Unknown   int // rows whose id is no item of the data set: ignored
	Duplicate int // rows for an item that already had one from this file: ignored
}

func (r FeatureReport) String() string {
	return fmt.Sprintf("%d rows: %d attached, %d unknown ids ignored, %d duplicates ignored", r.Rows, r.Attached, r.Unknown, r.Duplicate)
}

// AttachFeatures sets ds.Features from m, whose row i belongs to the item with external id
// ids[i]. Rows of unknown ids are ignored and counted, as are repeated ids after the first.
// The rows stay views into m.Data. A dimension other than ds.FeatureDim (when set) or a
// NaN or infinity is an error naming name and the row.
func AttachFeatures(ds *Dataset, m *Matrix, ids []string, name string) (FeatureReport, error) {
	return attachRows(ds, m, ids, name, ds.SetFeature)
}

func attachRows(ds *Dataset, m *Matrix, ids []string, name string, set func(int32, []float32) error) (FeatureReport, error) {
	rep := FeatureReport{Rows: len(ids)}
	if len(ids) != m.Rows {
		return rep, fmt.Errorf("%s: %d ids for %d feature rows", name, len(ids), m.Rows)
	}
	index := ds.ItemIndex()
	seen := make(map[int32]bool, len(ids))
	for i, id := range ids {
		j, ok := index[id]
		switch {
		case !ok:
			rep.Unknown++
			continue
		case seen[j]:
			rep.Duplicate++
			continue
		}
		seen[j] = true
		if err := set(j, m.Row(i)); err != nil {
			return rep, malformed("%s: feature row %d (item %s): %w", name, i, id, err)
		}
		rep.Attached++
	}
	return rep, nil
}

// LoadRawFeatures reads a headerless little-endian float32 row-major matrix (the layout of
// ../shared/data/movielens-posters/features/*.f32) and its ids file, one id per line,
// line i naming row i. dim is the row length; 0 derives it from the file size and the
// number of ids. A size that is not ids × dim × 4 bytes is an error.
func LoadRawFeatures(f32Path, idsPath string, dim int) ([]string, *Matrix, error) {
	idb, err := os.ReadFile(idsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read feature ids: %w", err)
	}
	var ids []string
	for i, line := range strings.Split(strings.TrimSuffix(string(idb), "\n"), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" {
			return nil, nil, lineErr(idsPath, i+1, "empty id")
		}
		ids = append(ids, line)
	}
	if len(idb) == 0 {
		ids = nil
	}
	raw, err := os.ReadFile(f32Path)
	if err != nil {
		return nil, nil, fmt.Errorf("read features: %w", err)
	}
	if len(raw)%4 != 0 {
		return nil, nil, offsetErr(f32Path, int64(len(raw)&^3), "size %d bytes is not a whole number of float32 values", len(raw))
	}
	n := len(raw) / 4
	if dim == 0 && len(ids) > 0 {
		dim = n / len(ids)
	}
	if len(ids) == 0 || dim <= 0 || n != len(ids)*dim {
		return nil, nil, offsetErr(f32Path, 0, "%d float32 values do not make %d rows (the lines of %s) of %d", n, len(ids), idsPath, dim)
	}
	m := &Matrix{Rows: len(ids), Cols: dim, Data: decodeFloat32s(raw, binary.LittleEndian)}
	return ids, m, nil
}

// decodeFloat32s decodes 4-byte floats in the given byte order.
func decodeFloat32s(b []byte, order binary.ByteOrder) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(order.Uint32(b[4*i:]))
	}
	return out
}

// encodeFloat32sLE appends v as little-endian float32.
func encodeFloat32sLE(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}
