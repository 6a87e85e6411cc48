package datasets

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/visrec/visrec/events"
)

// UIROptions say how to read Cornac's UIR text: one "user item [rating [timestamp]]" per
// line. The zero value detects the separator, reads timestamps as Unix seconds and stops at
// the first malformed line.
type UIROptions struct {
	ReadOptions
	// Sep separates the columns. "" detects it from the first line with data: a tab if the
	// line has one, else a comma if it has one, else runs of spaces. " " means runs of
	// spaces and tabs; any other string is matched exactly.
	Sep string
	// SkipLines skips that many lines at the start (Cornac's skip_lines, e.g. a header).
	SkipLines int
	// TimestampMillis says the fourth column holds Unix milliseconds, not seconds.
	TimestampMillis bool
	// Type is the event type of every line; 0 means rating when the lines have a rating
	// column, else view.
	Type events.Type
}

// LoadUIR reads a Cornac UIR file (.gz transparently). Lines have 2 columns (user, item:
// implicit, Value 1), 3 (…, rating) or 4 (…, rating, timestamp), the same number on every
// line; blank lines are skipped. Ratings must be finite numbers; timestamps integers (or
// decimals, as pandas writes them). Without a timestamp column every TS is 0 and the file
// order is kept.
func LoadUIR(path string, opts UIROptions) (*Dataset, error) {
	r, closeFn, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	ds, err := ReadUIR(r, path, opts)
	if err != nil {
		return nil, err
	}
	ds.Name = baseName(path)
	return ds, nil
}

// ReadUIR is LoadUIR from a reader; name is used in errors and as the data set's name.
func ReadUIR(r io.Reader, name string, opts UIROptions) (*Dataset, error) {
	ls := newLineScanner(r, name, opts.MaxLineBytes)
	b := NewBuilder(name)
	p := uirParser{sep: opts.Sep, millis: opts.TimestampMillis}
	typ := opts.Type
	for {
		line, ok := ls.next()
		if !ok {
			break
		}
		if ls.n <= opts.SkipLines || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, err := p.parse(line)
		if err != nil {
			if err := opts.bad(lineErr(name, ls.n, "%v", err)); err != nil {
				return nil, err
			}
			continue
		}
		if typ == 0 {
			typ = events.View
			if p.cols >= 3 {
				typ = events.Rating
			}
		}
		b.Add(rec.user, rec.item, rec.value, rec.ts, typ)
	}
	if err := ls.err(); err != nil {
		return nil, err
	}
	return b.Dataset(), nil
}

// uirParser splits and converts UIR lines; the first line fixes the separator (when
// detected) and the column count.
type uirParser struct {
	sep    string // "" until detected; " " means whitespace runs
	cols   int    // 0 until the first line
	millis bool
	fields [][]byte
}

type uirRecord struct {
	user, item string
	value      float32
	ts         int64
}

func (p *uirParser) parse(line []byte) (uirRecord, error) {
	if p.sep == "" {
		p.sep = detectUIRSep(line)
	}
	p.fields = splitUIR(line, p.sep, p.fields[:0])
	n := len(p.fields)
	if p.cols == 0 {
		if n < 2 || n > 4 {
			return uirRecord{}, fmt.Errorf("%d columns separated by %s: want 2 to 4 (user, item[, rating[, timestamp]])", n, sepName(p.sep))
		}
		p.cols = n
	}
	if n != p.cols {
		return uirRecord{}, fmt.Errorf("%d columns separated by %s, want %d as on the first line", n, sepName(p.sep), p.cols)
	}
	rec := uirRecord{value: 1}
	for k, what := range [2]string{"user", "item"} {
		f := p.fields[k]
		if len(f) == 0 {
			return uirRecord{}, fmt.Errorf("empty %s id", what)
		}
		if err := checkID(f); err != nil {
			return uirRecord{}, fmt.Errorf("%s id %q: %w", what, truncateBytes(f, 40), err)
		}
	}
	rec.user, rec.item = string(p.fields[0]), string(p.fields[1])
	if n >= 3 {
		v, err := strconv.ParseFloat(string(p.fields[2]), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return uirRecord{}, fmt.Errorf("rating %q is not a finite number", truncateBytes(p.fields[2], 40))
		}
		rec.value = float32(v)
	}
	if n == 4 {
		ts, err := parseTimestamp(p.fields[3], p.millis)
		if err != nil {
			return uirRecord{}, err
		}
		rec.ts = ts
	}
	return rec, nil
}

func detectUIRSep(line []byte) string {
	switch {
	case bytes.IndexByte(line, '\t') >= 0:
		return "\t"
	case bytes.IndexByte(line, ',') >= 0:
		return ","
	}
	return " "
}

func sepName(sep string) string {
	switch sep {
	case "\t":
		return "tabs"
	case " ":
		return "whitespace"
	}
	return strconv.Quote(sep)
}

// splitUIR splits line at sep (" ": runs of spaces and tabs), trimming spaces around
// fields.
func splitUIR(line []byte, sep string, dst [][]byte) [][]byte {
	if sep == " " {
		return append(dst, bytes.Fields(line)...)
	}
	for {
		i := bytes.Index(line, []byte(sep))
		if i < 0 {
			return append(dst, bytes.TrimSpace(line))
		}
		dst = append(dst, bytes.TrimSpace(line[:i]))
		line = line[i+len(sep):]
	}
}

// checkID rejects ids with control bytes or invalid UTF-8, which no event could carry.
func checkID(b []byte) error {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("control byte 0x%02x", c)
		}
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range string(b) {
		if r >= 0x10000 && !strconv.IsPrint(r) {
			return fmt.Errorf("non-printable character %U", r) // JSON cannot carry it faithfully
		}
	}
	if len(b) > events.MaxIDBytes {
		return fmt.Errorf("longer than %d bytes", events.MaxIDBytes)
	}
	return nil
}

// parseTimestamp reads Unix seconds (or, with millis, milliseconds) as an integer or a
// decimal and returns Unix milliseconds.
func parseTimestamp(b []byte, millis bool) (int64, error) {
	s := string(bytes.TrimSpace(b))
	scale, unit := 1000.0, "seconds"
	if millis {
		scale, unit = 1, "milliseconds"
	}
	if t, err := strconv.ParseInt(s, 10, 64); err == nil {
		if !millis {
			if t > math.MaxInt64/1000 || t < math.MinInt64/1000 {
				return 0, fmt.Errorf("timestamp %d s is out of range", t)
			}
			t *= 1000
		}
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.Abs(f*scale) > 9e18 {
		return 0, fmt.Errorf("timestamp %q is not a number of %s", truncateBytes(b, 40), unit)
	}
	return int64(math.Round(f * scale)), nil
}
