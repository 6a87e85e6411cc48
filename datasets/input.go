package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadOptions are the options shared by the text loaders. The zero value stops at the first
// malformed line.
type ReadOptions struct {
	// OnBad, when set, is called with the *FileError of each malformed line: returning nil
	// skips the line and goes on, returning an error stops the load with that error. Nil
	// stops at the first malformed line. A bad header always stops the load.
	OnBad func(err error) error
	// MaxLineBytes is the longest line accepted; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
}

// DefaultMaxLineBytes bounds a text line (an Amazon review with its text can be long).
const DefaultMaxLineBytes = 64 << 20

// bad reports a malformed line to OnBad: nil means skip it.
func (o *ReadOptions) bad(err error) error {
	if o.OnBad == nil {
		return err
	}
	return o.OnBad(err)
}

// openInput opens path for reading, decompressing it when it starts with the gzip magic.
// close releases the file.
func openInput(path string) (r io.Reader, close func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open data set file: %w", err)
	}
	r, err = maybeGunzip(f, path)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() error {
		var gzErr error
		if gz, ok := r.(*gzip.Reader); ok {
			gzErr = gz.Close()
		}
		return errors.Join(gzErr, f.Close())
	}, nil
}

// maybeGunzip returns r, buffered, or a decompressing *gzip.Reader when r starts with the
// gzip magic.
func maybeGunzip(r io.Reader, name string) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		return gz, nil
	}
	return br, nil
}

// lineScanner reads numbered lines without their line ending; a UTF-8 byte-order mark on
// line 1 is dropped.
type lineScanner struct {
	sc   *bufio.Scanner
	name string
	n    int
	max  int
}

func newLineScanner(r io.Reader, name string, max int) *lineScanner {
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, max)), max)
	return &lineScanner{sc: sc, name: name, max: max}
}

// next returns the next line (valid until the following call) and true, or false at the
// end or on an error (see err).
func (l *lineScanner) next() ([]byte, bool) {
	if !l.sc.Scan() {
		return nil, false
	}
	l.n++
	line := bytes.TrimSuffix(l.sc.Bytes(), []byte("\r"))
	if l.n == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	return line, true
}

// err is nil after a clean end; a line over the limit is a *FileError.
func (l *lineScanner) err() error {
	err := l.sc.Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bufio.ErrTooLong):
		return lineErr(l.name, l.n+1, "line longer than %d bytes", l.max)
	}
	return fmt.Errorf("read %s: %w", l.name, err)
}
