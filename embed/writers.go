package embed

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/visrec/visrec/datasets"
)

// Writer receives embeddings one item at a time. Write must be given rows of one length; it
// does not keep vec. Close finishes the output: only after a nil Close is it complete. Abort
// discards it instead. A Writer is used by one goroutine at a time.
type Writer interface {
	Write(id string, vec []float32) error
	Close() error
	Abort()
}

// outFile is a file written under a temporary name and renamed into place by commit, so that
// a failed or interrupted run leaves no partial file under the final name.
type outFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
}

func createOut(path string) (*outFile, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, err
	}
	return &outFile{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (o *outFile) commit() error {
	err := o.w.Flush()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

func (o *outFile) abort() {
	o.f.Close()
	os.Remove(o.f.Name())
}

// RawWriter writes the layout of the reference features: path holds little-endian float32
// rows without a header, IDsPath(path) one id per line, line i naming row i. It streams: rows
// go to disk as they come. Read back with ImportFeatures or datasets.LoadRawFeatures.
type RawWriter struct {
	f32, ids *outFile
	dim      int
	buf      []byte
	Rows     int // rows written
}

// NewRawWriter creates the writer; the files appear under their names at Close.
func NewRawWriter(path string) (*RawWriter, error) {
	f32, err := createOut(path)
	if err != nil {
		return nil, fmt.Errorf("raw features: %w", err)
	}
	ids, err := createOut(IDsPath(path))
	if err != nil {
		f32.abort()
		return nil, fmt.Errorf("raw features: %w", err)
	}
	return &RawWriter{f32: f32, ids: ids}, nil
}

// Write appends one row.
func (w *RawWriter) Write(id string, vec []float32) error {
	if err := checkRow(&w.dim, id, vec); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	for _, v := range vec {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(v))
	}
	if _, err := w.f32.w.Write(w.buf); err != nil {
		return fmt.Errorf("write %s: %w", w.f32.path, err)
	}
	if _, err := w.ids.w.WriteString(id + "\n"); err != nil {
		return fmt.Errorf("write %s: %w", w.ids.path, err)
	}
	w.Rows++
	return nil
}

// Close flushes both files and moves them into place.
func (w *RawWriter) Close() error {
	if err := w.f32.commit(); err != nil {
		w.ids.abort()
		return err
	}
	return w.ids.commit()
}

// Abort removes the partial files.
func (w *RawWriter) Abort() { w.f32.abort(); w.ids.abort() }

// NPYWriter collects rows in memory and writes them at Close as a 2-D float32 .npy (with
// datasets.WriteNPY) and the ids beside it in IDsPath(path).
type NPYWriter struct {
	path string
	ids  []string
	m    datasets.Matrix
}

// NewNPYWriter returns a writer for path; nothing is created before Close.
func NewNPYWriter(path string) *NPYWriter { return &NPYWriter{path: path} }

// Write appends one row.
func (w *NPYWriter) Write(id string, vec []float32) error {
	if err := checkRow(&w.m.Cols, id, vec); err != nil {
		return err
	}
	w.ids = append(w.ids, id)
	w.m.Data = append(w.m.Data, vec...)
	w.m.Rows++
	return nil
}

// Close writes both files.
func (w *NPYWriter) Close() error {
	npy, err := createOut(w.path)
	if err != nil {
		return fmt.Errorf("npy features: %w", err)
	}
	if err := datasets.WriteNPY(npy.w, &w.m); err != nil {
		npy.abort()
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	ids, err := createOut(IDsPath(w.path))
	if err != nil {
		npy.abort()
		return fmt.Errorf("npy features: %w", err)
	}
	for _, id := range w.ids {
		ids.w.WriteString(id + "\n") //nolint:errcheck // a failed write shows at commit's flush
	}
	if err := npy.commit(); err != nil {
		ids.abort()
		return err
	}
	return ids.commit()
}

// Abort drops the rows.
func (w *NPYWriter) Abort() { w.ids, w.m = nil, datasets.Matrix{} }

// checkRow sets *dim from the first row and checks later rows and ids against it.
func checkRow(dim *int, id string, vec []float32) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("row for %q: %w", id, err)
	}
	if len(vec) == 0 {
		return errors.New("empty row")
	}
	if *dim == 0 {
		*dim = len(vec)
	}
	if len(vec) != *dim {
		return fmt.Errorf("row for %s has %d values, earlier rows %d", id, len(vec), *dim)
	}
	return nil
}
