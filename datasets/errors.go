package datasets

import (
	"errors"
	"fmt"

	"github.com/visrec/visrec/producers"
)

// ErrMalformed is wrapped by every error about the content of an input file (a bad line, a
// bad record, a bad header), as opposed to a failure to read it: errors.Is(err,
// ErrMalformed) tells "fix the file" apart from "check the disk or the network".
var ErrMalformed = errors.New("malformed data set file")

// FileError locates a malformed input: a 1-based line of a text file, or a byte offset in a
// binary one. errors.Is(err, ErrMalformed) holds for every FileError, and errors.Is(err,
// producers.ErrBadLine) for those with a line.
type FileError struct {
	File   string
	Line   int   // 1-based line of a text file; 0 for a binary file
	Offset int64 // byte offset of the bad record or field in a binary file (Line == 0)
	Err    error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: byte offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrMalformed) true, and errors.Is(err, producers.ErrBadLine) for
// text files.
func (e *FileError) Is(target error) bool {
	return target == ErrMalformed || (e.Line > 0 && target == producers.ErrBadLine)
}

func lineErr(file string, line int, format string, args ...any) error {
	return &FileError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

func offsetErr(file string, off int64, format string, args ...any) error {
	return &FileError{File: file, Offset: off, Err: fmt.Errorf(format, args...)}
}

// malformed is an error matching ErrMalformed for content without a line or offset.
func malformed(format string, args ...any) error {
	return &malformedError{fmt.Errorf(format, args...)}
}

// markMalformed makes a *producers.LineError (which names file and line) also match
// ErrMalformed, keeping its message.
func markMalformed(err error) error {
	if err != nil && errors.Is(err, producers.ErrBadLine) && !errors.Is(err, ErrMalformed) {
		return &malformedError{err}
	}
	return err
}

type malformedError struct{ err error }

func (e *malformedError) Error() string   { return e.err.Error() }
func (e *malformedError) Unwrap() []error { return []error{e.err, ErrMalformed} }
