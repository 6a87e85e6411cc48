package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The VBPR image-feature file (He & McAuley, AAAI 2016; image_features_<category>.b from
// McAuley's Amazon data page) is a sequence of records without a header: a 10-byte ASIN
// followed by dim float32 values, little-endian (dim = 4096, Caffe's fc7 of a pre-trained
// AlexNet-style network).

// VBPRDim is the feature length of the published VBPR files.
const VBPRDim = 4096

// vbprIDBytes is the length of the ASIN at the start of each record.
const vbprIDBytes = 10

// LoadVBPRFeatures reads a VBPR binary feature file (.gz transparently) and attaches its
// rows to the items of ds by ASIN, as ds.Features; dim 0 means VBPRDim. Records of ASINs
// that are no item of ds are skipped without being decoded and counted as Unknown (the
// published files cover whole categories, far more items than a review subset rates).
// A truncated record, or a NaN or infinity, is an error naming the byte offset.
func LoadVBPRFeatures(ds *Dataset, path string, dim int) (FeatureReport, error) {
	r, closeFn, err := openInput(path)
	if err != nil {
		return FeatureReport{}, err
	}
	defer closeFn()
	return ReadVBPRFeatures(ds, r, path, dim)
}

// ReadVBPRFeatures is LoadVBPRFeatures from a reader; name is used in errors.
func ReadVBPRFeatures(ds *Dataset, r io.Reader, name string, dim int) (FeatureReport, error) {
	if dim == 0 {
		dim = VBPRDim
	}
	if dim < 0 || dim > 1<<24 {
		return FeatureReport{}, fmt.Errorf("VBPR feature dimension %d: want 1 to %d", dim, 1<<24)
	}
	if ds.FeatureDim != 0 && ds.FeatureDim != dim {
		return FeatureReport{}, fmt.Errorf("%s: %d-dimensional features for a data set with %d-dimensional ones", name, dim, ds.FeatureDim)
	}
	index := ds.ItemIndex()
	rec := make([]byte, vbprIDBytes+4*dim)
	seen := make(map[int32]bool)
	var rep FeatureReport
	var off int64
	for {
		n, err := io.ReadFull(r, rec)
		if err == io.EOF {
			return rep, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return rep, offsetErr(name, off, "truncated record: %d of %d bytes (10-byte ASIN + %d float32)", n, len(rec), dim)
		}
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", name, err)
		}
		rep.Rows++
		id := strings.TrimRight(string(rec[:vbprIDBytes]), "\x00 ")
		j, ok := index[id]
		switch {
		case !ok:
			rep.Unknown++
		case seen[j]:
			rep.Duplicate++
		default:
			seen[j] = true
			row := decodeFloat32s(rec[vbprIDBytes:], binary.LittleEndian)
			if err := ds.SetFeature(j, row); err != nil {
				return rep, offsetErr(name, off, "record of ASIN %q: %w", id, err)
			}
			rep.Attached++
		}
		off += int64(len(rec))
	}
}

// WriteVBPRFeatures writes rows in the VBPR binary layout; each id must be exactly 10
// bytes (an ASIN) and all rows of one length.
func WriteVBPRFeatures(w io.Writer, ids []string, rows [][]float32) error {
	if len(ids) != len(rows) {
		return fmt.Errorf("%d ids for %d rows", len(ids), len(rows))
	}
	var buf []byte
	for i, id := range ids {
		if len(id) != vbprIDBytes {
			return fmt.Errorf("id %q is %d bytes, want %d", id, len(id), vbprIDBytes)
		}
		if len(rows[i]) != len(rows[0]) {
			return fmt.Errorf("row %d has %d values, row 0 has %d", i, len(rows[i]), len(rows[0]))
		}
		buf = encodeFloat32sLE(append(buf[:0], id...), rows[i])
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
