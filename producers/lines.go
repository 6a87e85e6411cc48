package producers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrBadLine is wrapped by every LineError, so errors.Is(err, ErrBadLine) tells a malformed
// log line apart from an I/O failure.
var ErrBadLine = errors.New("malformed log line")

// ErrOutOfOrder is wrapped by the LineError that a stream opened with AssumeSorted returns
// at the first event older than its predecessor.
var ErrOutOfOrder = errors.New("log is not in timestamp order")

// LineError reports a malformed line: the file, the 1-based line number and what is wrong.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the cause (for JSONL lines, often an *events.DecodeError).
func (e *LineError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadLine) true for every LineError.
func (e *LineError) Is(target error) bool { return target == ErrBadLine }

// errLineTooLong is the cause of a LineError for a line over the length limit.
var errLineTooLong = errors.New("line too long")

// lineReader splits a stream into lines without their "\n" or "\r\n". A line longer than
// max is consumed and reported as errLineTooLong so that the reader can go on after it.
type lineReader struct {
	r    *bufio.Reader
	max  int
	n    int    // number of the line last returned
	long []byte // assembles lines longer than the bufio buffer
}

func newLineReader(r *bufio.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max}
}

// next returns the next line, valid until the following call, and its number. At the end
// of the input it returns io.EOF.
func (l *lineReader) next() ([]byte, int, error) {
	line, err := l.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		l.long = append(l.long[:0], line...)
		tooLong := false
		for err == bufio.ErrBufferFull {
			line, err = l.r.ReadSlice('\n')
			if !tooLong {
				l.long = append(l.long, line...)
				if len(l.long) > l.max+2 {
					tooLong = true
					l.long = l.long[:0]
				}
			}
		}
		if err != nil && err != io.EOF {
			return nil, l.n, err
		}
		l.n++
		if tooLong {
			return nil, l.n, fmt.Errorf("%w (limit %d bytes)", errLineTooLong, l.max)
		}
		return trimEOL(l.long, l.n), l.n, nil
	}
	if err == io.EOF && len(line) == 0 {
		return nil, l.n, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, l.n, err
	}
	l.n++
	if len(line) > l.max+2 {
		return nil, l.n, fmt.Errorf("%w (limit %d bytes)", errLineTooLong, l.max)
	}
	return trimEOL(line, l.n), l.n, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func trimEOL(line []byte, n int) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if n == 1 {
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	return line
}
