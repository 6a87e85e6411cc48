package producers

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/visrec/visrec/events"
)

// LogOptions says how to read an event log. The zero value reads with format detection,
// millisecond CSV timestamps, failing on the first bad line, and sorting in memory.
type LogOptions struct {
	// Format of the log; FormatAuto (the default) detects it, see DetectFormat.
	Format Format
	// TimestampSeconds says the ts column of a generic CSV holds Unix seconds rather than
	// milliseconds. MovieLens files are always seconds and JSONL always milliseconds.
	// There is no auto-detection: a wrong guess shifts every event by a factor of 1000.
	TimestampSeconds bool
	// DefaultType is the event type of generic-CSV rows without a type column or with an
	// empty type field. Zero means: rating when the header has a value column, else view.
	DefaultType events.Type
	// SkipBad skips malformed lines, counting them in LogStats.Skipped and keeping the first
	// MaxReported errors, instead of stopping at the first one. A bad header and, with
	// AssumeSorted, an out-of-order event still stop the read.
	SkipBad bool
	// MaxReported is how many skipped-line errors LogStats.FirstBad keeps; 0 means 5.
	MaxReported int
	// AssumeSorted streams the log in file order with constant memory instead of loading
	// and sorting it, and fails (ErrOutOfOrder) at the first event older than the one before.
	AssumeSorted bool
	// MaxLineBytes is the longest line accepted; 0 means events.MaxMessageBytes.
	MaxLineBytes int
}

// DefaultLogOptions returns the defaults spelled out.
func DefaultLogOptions() LogOptions {
	return LogOptions{Format: FormatAuto, MaxReported: 5, MaxLineBytes: events.MaxMessageBytes}
}

// LogStats describes a read.
type LogStats struct {
	File      string  // the name given to the reader
	Variant   string  // the layout read, e.g. "movielens ratings.csv"
	Lines     int     // lines read, header and blank lines included
	Events    int     // events delivered so far (all of them once loaded, when sorting)
	Skipped   int     // malformed lines skipped (SkipBad)
	FirstBad  []error // *LineError of the first MaxReported skipped lines
	Reordered bool    // the log was not in timestamp order and was sorted in memory
}

// LoadedEventBytes is the approximate memory per event of a loaded (sorted) log, for
// sizing: an events.Interaction is 72 bytes on 64-bit platforms, ids are interned so that
// repeated user and item ids share one string (ml-latest-small measures about 80 bytes
// per event), and the sort needs 32 more bytes per event while it runs.
const LoadedEventBytes = 100

// LogStream reads an event log as a Source.
//
// Unless opened with AssumeSorted, the whole log is loaded and sorted (stable: by
// timestamp, then line) when the stream is opened, which costs about 100 bytes of memory
// per event (MovieLens ratings.csv, 100,836 ratings: about 8 MB; a 25-million-event log:
// about 2.5 GB). A log already in timestamp order can be streamed in constant memory with
// AssumeSorted.
//
// A LogStream is used by one goroutine at a time. Close releases the file.
type LogStream struct {
	name   string
	opts   LogOptions
	p      lineParser
	lr     *lineReader
	closer io.Closer

	buf      []events.Interaction // loaded and sorted events (not AssumeSorted)
	pos      int
	buffered bool

	stats    LogStats
	err      error
	prevTS   int64
	prevLine int
}

// OpenLog opens the log at path (gzip-compressed logs are read transparently); see
// LogStream for the memory cost and NewLogStream for the errors.
func OpenLog(path string, opts LogOptions) (*LogStream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	s, err := newLogStream(f, path, opts, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	if s.buffered {
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close %s: %w", path, err)
		}
		return s, nil
	}
	s.closer = multiCloser{s.closer, f}
	return s, nil
}

// ReadLog loads the whole log at path into memory in timestamp order (with AssumeSorted:
// in file order, verified).
func ReadLog(path string, opts LogOptions) ([]events.Interaction, LogStats, error) {
	s, err := OpenLog(path, opts)
	if err != nil {
		return nil, LogStats{}, err
	}
	defer s.Close()
	if s.buffered {
		return s.buf, s.stats, nil
	}
	evs, err := Collect(s, 0)
	return evs, s.stats, err
}

// NewLogStream reads a log from r; name is used for format detection and in errors. Without
// AssumeSorted it reads all of r before returning. It fails on an undetectable format, a
// bad header, an I/O error, or (without SkipBad) the first malformed line, as a *LineError
// naming the file and line.
func NewLogStream(r io.Reader, name string, opts LogOptions) (*LogStream, error) {
	return newLogStream(r, name, opts, 0)
}

// newLogStream is NewLogStream with the size of the input in bytes when known (else 0),
// used to size the event slice from the line density of the first buffer.
func newLogStream(r io.Reader, name string, opts LogOptions, size int64) (*LogStream, error) {
	if opts.MaxReported <= 0 {
		opts.MaxReported = 5
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = events.MaxMessageBytes
	}
	br := bufio.NewReaderSize(r, 256<<10)
	var closer io.Closer
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		closer = gz
		br = bufio.NewReaderSize(gz, 256<<10)
		size = 0 // the compressed size says little about the line count
	}
	head, err := br.Peek(br.Size())
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	estimate := 0
	if nl := bytes.Count(head, []byte("\n")); size > 0 && nl > 0 {
		estimate = int(min(float64(size)/float64(len(head))*float64(nl), 1<<31))
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	head = bytes.TrimPrefix(bytes.TrimSuffix(head, []byte("\r")), utf8BOM)
	v, err := resolve(opts.Format, name, head)
	if err != nil {
		return nil, err
	}
	s := &LogStream{
		name:   name,
		opts:   opts,
		lr:     newLineReader(br, opts.MaxLineBytes),
		closer: closer,
		p: lineParser{
			v:           v,
			seconds:     opts.TimestampSeconds,
			defaultType: opts.DefaultType,
		},
		stats:  LogStats{File: name, Variant: v.String()},
		prevTS: math.MinInt64,
	}
	if s.p.hasHeader() {
		line, n, err := s.lr.next()
		switch {
		case err == io.EOF:
			return nil, &LineError{File: name, Line: 1, Err: errors.New("empty file, want a header")}
		case err != nil && errors.Is(err, errLineTooLong):
			return nil, &LineError{File: name, Line: n, Err: err}
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		s.stats.Lines = n
		if err := s.p.header(line); err != nil {
			return nil, &LineError{File: name, Line: n, Err: err}
		}
	}
	if opts.AssumeSorted {
		s.p.intern = newInterner(1 << 16)
		return s, nil
	}
	s.p.intern = newInterner(1 << 21)
	// Room for the estimated line count plus 2% saves the copies and the slack of append.
	s.buf = make([]events.Interaction, 0, estimate+estimate/50)
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// load reads every event and sorts them.
func (s *LogStream) load() error {
	for {
		e, ok := s.readOne()
		if !ok {
			break
		}
		s.buf = append(s.buf, e)
	}
	if s.err != nil {
		return s.err
	}
	s.stats.Reordered = sortByTime(s.buf)
	s.buffered = true
	s.p.intern = nil
	return s.Close()
}

// readOne parses lines until the next event, the end, or an error that stops the read.
func (s *LogStream) readOne() (events.Interaction, bool) {
	for {
		line, n, err := s.lr.next()
		if err == io.EOF {
			return events.Interaction{}, false
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			s.err = fmt.Errorf("read %s: %w", s.name, err)
			return events.Interaction{}, false
		}
		s.stats.Lines = n
		var e events.Interaction
		if err == nil {
			e, err = s.p.parse(line)
		}
		if err == errSkipLine {
			continue
		}
		if err != nil {
			le := &LineError{File: s.name, Line: n, Err: err}
			if !s.opts.SkipBad {
				s.err = le
				return events.Interaction{}, false
			}
			s.stats.Skipped++
			if len(s.stats.FirstBad) < s.opts.MaxReported {
				s.stats.FirstBad = append(s.stats.FirstBad, le)
			}
			continue
		}
		if s.opts.AssumeSorted {
			if e.Timestamp < s.prevTS {
				s.err = &LineError{File: s.name, Line: n, Err: fmt.Errorf(
					"%w: timestamp %d ms is earlier than %d ms on line %d (read without AssumeSorted to sort the log in memory)",
					ErrOutOfOrder, e.Timestamp, s.prevTS, s.prevLine)}
				return events.Interaction{}, false
			}
			s.prevTS, s.prevLine = e.Timestamp, n
		}
		s.stats.Events++
		return e, true
	}
}

// Next implements Source.
func (s *LogStream) Next() (events.Interaction, bool) {
	if s.buffered {
		if s.pos >= len(s.buf) {
			return events.Interaction{}, false
		}
		s.pos++
		return s.buf[s.pos-1], true
	}
	if s.err != nil {
		return events.Interaction{}, false
	}
	return s.readOne()
}

// Err implements Source: nil after a clean end, else the error that stopped the stream.
func (s *LogStream) Err() error { return s.err }

// Len implements Sized: the number of loaded events, or -1 when streaming.
func (s *LogStream) Len() int64 {
	if s.buffered {
		return int64(len(s.buf))
	}
	return -1
}

// Stats returns what was read so far.
func (s *LogStream) Stats() LogStats { return s.stats }

// Close releases the file; it is safe to call more than once.
func (s *LogStream) Close() error {
	c := s.closer
	s.closer = nil
	if c == nil {
		return nil
	}
	return c.Close()
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// sortByTime sorts evs by timestamp, keeping file order among equal timestamps, and says
// whether anything moved. It radix-sorts 16-byte (timestamp, position) keys, which is
// stable and linear, and then permutes the events in place, so the extra memory is two key
// arrays (32 bytes per event) rather than a second copy of the log.
func sortByTime(evs []events.Interaction) bool {
	if slices.IsSortedFunc(evs, func(a, b events.Interaction) int { return cmp.Compare(a.Timestamp, b.Timestamp) }) {
		return false
	}
	keys := make([]tsKey, len(evs))
	for i := range evs {
		keys[i] = tsKey{uint64(evs[i].Timestamp) ^ 1<<63, i}
	}
	keys = radixSortKeys(keys, make([]tsKey, len(keys)))
	// Position k must receive evs[keys[k].idx]; follow each permutation cycle once.
	const done = -1
	for k := range keys {
		if keys[k].idx == done || keys[k].idx == k {
			keys[k].idx = done
			continue
		}
		tmp := evs[k]
		j := k
		for {
			src := keys[j].idx
			keys[j].idx = done
			if src == k {
				evs[j] = tmp
				break
			}
			evs[j] = evs[src]
			j = src
		}
	}
	return true
}

// tsKey orders an event: its timestamp with the sign bit flipped (so unsigned order is
// signed order) and its position in the file.
type tsKey struct {
	ts  uint64
	idx int
}

// radixSortKeys sorts keys by ts with a stable least-significant-byte-first radix sort,
// using tmp (same length) as scratch, and returns whichever of the two holds the result.
// Byte positions where all keys agree are skipped.
func radixSortKeys(keys, tmp []tsKey) []tsKey {
	var counts [8][256]int
	for _, k := range keys {
		for b := range 8 {
			counts[b][byte(k.ts>>(8*b))]++
		}
	}
	for b := range 8 {
		c := &counts[b]
		if c[byte(keys[0].ts>>(8*b))] == len(keys) {
			continue // every key has the same byte here
		}
		sum := 0
		for i := range c {
			c[i], sum = sum, sum+c[i]
		}
		shift := 8 * b
		for _, k := range keys {
			d := byte(k.ts >> shift)
			tmp[c[d]] = k
			c[d]++
		}
		keys, tmp = tmp, keys
	}
	return keys
}
