package embed

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/visrec/visrec/datasets"
)

// Formats of precomputed feature files, for ImportOptions.Format.
const (
	FormatAuto = ""     // from the extension: .f32, .npy, else VBPR
	FormatRaw  = "f32"  // headerless little-endian float32 rows + an .ids file (datasets.LoadRawFeatures)
	FormatNPY  = "npy"  // 2-D float32/float64 .npy (datasets.LoadNPY) + an .ids file
	FormatVBPR = "vbpr" // VBPR binary: records of a 10-byte ASIN and Dim float32, .gz transparently
)

// ImportOptions say how to read a feature file.
type ImportOptions struct {
	// Format is one of the Format* constants; FormatAuto picks by extension.
	Format string
	// IDsPath is the ids file of a raw or .npy matrix, one id per line, line i naming row i;
	// "" means IDsPath(path), the file beside it with the extension .ids.
	IDsPath string
	// Dim is the row length: for raw files 0 derives it from the sizes; for VBPR 0 means
	// datasets.VBPRDim (4096); for .npy it is checked when set.
	Dim int
}

// IDsPath is the ids file that goes with a raw or .npy feature file: path with its .f32 or
// .npy extension replaced by .ids ("x.f32" → "x.ids"), or .ids appended to any other name.
func IDsPath(path string) string {
	switch ext := filepath.Ext(path); ext {
	case ".f32", ".npy":
		return strings.TrimSuffix(path, ext) + ".ids"
	}
	return path + ".ids"
}

// ImportFeatures reads precomputed embeddings: it returns the item ids and the matrix whose row
// i belongs to ids[i]. Errors name the file; content errors wrap datasets.ErrMalformed.
func ImportFeatures(path string, opts ImportOptions) ([]string, *datasets.Matrix, error) {
	format := opts.Format
	if format == FormatAuto {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".f32":
			format = FormatRaw
		case ".npy":
			format = FormatNPY
		default:
			format = FormatVBPR
		}
	}
	idsPath := opts.IDsPath
	if idsPath == "" {
		idsPath = IDsPath(path)
	}
	switch format {
	case FormatRaw:
		ids, m, err := datasets.LoadRawFeatures(path, idsPath, opts.Dim)
		if err != nil {
			return nil, nil, fmt.Errorf("import %s: %w", path, err)
		}
		return ids, m, nil
	case FormatNPY:
		return importNPY(path, idsPath, opts.Dim)
	case FormatVBPR:
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		return ReadVBPR(f, path, opts.Dim)
	}
	return nil, nil, fmt.Errorf("import %s: format %q: want %q, %q or %q", path, format, FormatRaw, FormatNPY, FormatVBPR)
}

func importNPY(path, idsPath string, dim int) ([]string, *datasets.Matrix, error) {
	m, err := datasets.LoadNPY(path)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	if dim > 0 && m.Cols != dim {
		return nil, nil, fmt.Errorf("import %s: rows of %d values, want %d: %w", path, m.Cols, dim, datasets.ErrMalformed)
	}
	ids, err := readIDs(idsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("import %s: ids (a .npy holds no ids; give them one per line in %s): %w", path, idsPath, err)
	}
	if len(ids) != m.Rows {
		return nil, nil, fmt.Errorf("import %s: %d ids in %s for %d rows: %w", path, len(ids), idsPath, m.Rows, datasets.ErrMalformed)
	}
	return ids, m, nil
}

// readIDs reads one id per line; blank lines are errors.
func readIDs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, nil
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(strings.TrimSuffix(l, "\r"))
		if lines[i] == "" {
			return nil, fmt.Errorf("%s:%d: empty id: %w", path, i+1, datasets.ErrMalformed)
		}
	}
	return lines, nil
}

// vbprIDBytes is the length of the ASIN that starts each VBPR record.
const vbprIDBytes = 10

// ReadVBPR reads a whole VBPR image-feature file (He & McAuley 2016; the layout that
// datasets.LoadVBPRFeatures attaches to a data set and datasets.WriteVBPRFeatures writes): a
// sequence of records, each a 10-byte ASIN (padding NULs and spaces trimmed) and dim float32
// little-endian, no header; gzip is detected from its magic bytes. dim 0 means
// datasets.VBPRDim. A truncated record or a NaN or infinity is an error naming the byte
// offset. name is used in errors.
func ReadVBPR(r io.Reader, name string, dim int) ([]string, *datasets.Matrix, error) {
	if dim == 0 {
		dim = datasets.VBPRDim
	}
	if dim < 0 || dim > 1<<24 {
		return nil, nil, fmt.Errorf("import %s: VBPR dimension %d: want 1 to %d", name, dim, 1<<24)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("import %s: gzip: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<16)
	}
	m := &datasets.Matrix{Cols: dim}
	var ids []string
	rec := make([]byte, vbprIDBytes+4*dim)
	var off int64
	for {
		n, err := io.ReadFull(br, rec)
		if err == io.EOF {
			return ids, m, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("import %s: byte offset %d: truncated record: %d of %d bytes (10-byte ASIN + %d float32): %w", name, off, n, len(rec), dim, datasets.ErrMalformed)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("import %s: %w", name, err)
		}
		id := strings.TrimRight(string(rec[:vbprIDBytes]), "\x00 ")
		if id == "" {
			return nil, nil, fmt.Errorf("import %s: byte offset %d: empty ASIN: %w", name, off, datasets.ErrMalformed)
		}
		for i := range dim {
			v := math.Float32frombits(binary.LittleEndian.Uint32(rec[vbprIDBytes+4*i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nil, fmt.Errorf("import %s: byte offset %d: ASIN %s: value %d is %v: %w", name, off, id, i, v, datasets.ErrMalformed)
			}
			m.Data = append(m.Data, v)
		}
		ids = append(ids, id)
		m.Rows++
		off += int64(len(rec))
	}
}
