package producers

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/visrec/visrec/events"
)

// csvColumns maps event fields to column indexes of a CSV header; -1 means absent.
type csvColumns struct {
	user, item, ts, typ, value, id int
	n                              int // number of columns in the header
}

// Column names a generic CSV header may use, case-insensitively; other columns are ignored.
var columnAliases = map[string]string{
	"user": "user", "userid": "user", "user_id": "user", "uid": "user",
	"item": "item", "itemid": "item", "item_id": "item", "movieid": "item", "movie_id": "item",
	"productid": "item", "product_id": "item", "asin": "item",
	"ts": "ts", "timestamp": "ts", "time": "ts",
	"type": "type", "event": "type", "event_type": "type", "eventtype": "type", "action": "type",
	"value": "value", "rating": "value", "weight": "value", "score": "value",
	"id": "id", "event_id": "id", "eventid": "id",
}

// parseHeader reads a CSV header. It needs user, item and ts columns.
func parseHeader(line []byte) (csvColumns, error) {
	c := csvColumns{user: -1, item: -1, ts: -1, typ: -1, value: -1, id: -1}
	fields, err := splitCSV(line, nil, nil)
	if err != nil {
		return c, fmt.Errorf("header: %w", err)
	}
	c.n = len(fields)
	for i, f := range fields {
		name := strings.ToLower(strings.TrimSpace(string(f)))
		var slot *int
		switch columnAliases[name] {
		case "user":
			slot = &c.user
		case "item":
			slot = &c.item
		case "ts":
			slot = &c.ts
		case "type":
			slot = &c.typ
		case "value":
			slot = &c.value
		case "id":
			slot = &c.id
		default:
			continue
		}
		if *slot >= 0 {
			return c, fmt.Errorf("header: columns %d and %d both name the %s field", *slot+1, i+1, columnAliases[name])
		}
		*slot = i
	}
	var missing []string
	for _, m := range []struct {
		idx  int
		name string
	}{{c.user, "user"}, {c.item, "item"}, {c.ts, "ts"}} {
		if m.idx < 0 {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("header %q names no %s column (want user,item,ts and optionally type,value,id)", truncate(line, 80), strings.Join(missing, ", "))
	}
	return c, nil
}

// splitCSV splits one CSV record (no embedded newlines) into fields, appending to dst.
// A field may be double-quoted, with "" standing for a quote; unquoted fields are trimmed of
// spaces. Unquoted fields alias line; quoted ones get their own copy (built in *scratch).
func splitCSV(line []byte, dst [][]byte, scratch *[]byte) ([][]byte, error) {
	dst = dst[:0]
	i := 0
	for {
		// skip leading spaces
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i < len(line) && line[i] == '"' {
			start := len(dst)
			var buf []byte
			if scratch != nil {
				buf = (*scratch)[:0]
			}
			j := i + 1
			closed := false
			for j < len(line) {
				c := line[j]
				if c == '"' {
					if j+1 < len(line) && line[j+1] == '"' {
						buf = append(buf, '"')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				buf = append(buf, c)
				j++
			}
			if !closed {
				return dst, fmt.Errorf("field %d: unterminated quoted field", start+1)
			}
			for j < len(line) && line[j] == ' ' {
				j++
			}
			if j < len(line) && line[j] != ',' {
				return dst, fmt.Errorf("field %d: unexpected %q after closing quote", start+1, line[j])
			}
			// Give the field its own storage: later quoted fields must not overwrite it.
			f := make([]byte, len(buf))
			copy(f, buf)
			if scratch != nil {
				*scratch = buf[:0]
			}
			dst = append(dst, f)
			if j >= len(line) {
				return dst, nil
			}
			i = j + 1
			continue
		}
		end := bytes.IndexByte(line[i:], ',')
		var f []byte
		if end < 0 {
			f = line[i:]
		} else {
			f = line[i : i+end]
		}
		f = bytes.TrimRight(f, " ")
		if bytes.IndexByte(f, '"') >= 0 {
			return dst, fmt.Errorf("field %d: bare quote in an unquoted field", len(dst)+1)
		}
		dst = append(dst, f)
		if end < 0 {
			return dst, nil
		}
		i += end + 1
	}
}

// interner shares the string of repeated ids; a nil *interner allocates every time.
type interner struct {
	m   map[string]string
	max int
}

func newInterner(max int) *interner { return &interner{m: make(map[string]string), max: max} }

func (in *interner) bytes(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < in.max {
		in.m[s] = s
	}
	return s
}

func (in *interner) str(s string) string {
	if in == nil {
		return s
	}
	if t, ok := in.m[s]; ok {
		return t
	}
	if len(in.m) < in.max {
		in.m[s] = s
	}
	return s
}

// lineParser turns the lines of one log into events. It is not safe for concurrent use.
type lineParser struct {
	v           variant
	cols        csvColumns // varCSV and varMovieLensCSV
	seconds     bool       // timestamps in the log are Unix seconds
	defaultType events.Type
	intern      *interner
	fields      [][]byte
	scratch     []byte
}

// errSkipLine tells the reader that a line carries no event (a header, a blank line).
var errSkipLine = errors.New("no event on this line")

// header consumes the first line where the variant has one.
func (p *lineParser) header(line []byte) error {
	switch p.v {
	case varCSV, varMovieLensCSV:
		c, err := parseHeader(line)
		if err != nil {
			return err
		}
		if p.v == varMovieLensCSV && c.value < 0 {
			return fmt.Errorf("header %q has no rating column", truncate(line, 80))
		}
		p.cols = c
	}
	return nil
}

func (p *lineParser) hasHeader() bool { return p.v == varCSV || p.v == varMovieLensCSV }

// parse turns one line into an event, validated with events.Interaction.Validate.
func (p *lineParser) parse(line []byte) (events.Interaction, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return events.Interaction{}, errSkipLine
	}
	var e events.Interaction
	var err error
	switch p.v {
	case varJSONL:
		e, err = p.parseJSON(line)
	case varMovieLensUData:
		e, err = p.parseMovieLens(line, []byte("\t"), "tab")
	case varMovieLensDat:
		e, err = p.parseMovieLens(line, []byte("::"), `"::"`)
	case varMovieLensCSV, varCSV:
		e, err = p.parseCSV(line)
	default:
		err = fmt.Errorf("no parser for variant %d", p.v)
	}
	if err != nil {
		return events.Interaction{}, err
	}
	if err := e.Validate(); err != nil {
		return events.Interaction{}, err
	}
	for _, f := range [...]struct{ name, s string }{{"user id", e.User}, {"item id", e.Item}, {"event id", e.ID}} {
		if err := checkText(f.name, f.s); err != nil {
			return events.Interaction{}, err
		}
	}
	return e, nil
}

func (p *lineParser) parseJSON(line []byte) (events.Interaction, error) {
	line = bytes.TrimSpace(line)
	if line[0] != '{' {
		return events.Interaction{}, fmt.Errorf("not a JSON object (starts with %q)", line[0])
	}
	e, err := events.DecodeInteraction(line)
	if err != nil {
		return events.Interaction{}, err
	}
	e.User = p.intern.str(e.User)
	e.Item = p.intern.str(e.Item)
	return e, nil
}

// parseMovieLens reads user, item, rating and timestamp (seconds) separated by sep.
func (p *lineParser) parseMovieLens(line, sep []byte, sepName string) (events.Interaction, error) {
	p.fields = p.fields[:0]
	rest := line
	for {
		i := bytes.Index(rest, sep)
		if i < 0 {
			p.fields = append(p.fields, rest)
			break
		}
		p.fields = append(p.fields, rest[:i])
		rest = rest[i+len(sep):]
	}
	if len(p.fields) != 4 {
		return events.Interaction{}, fmt.Errorf("want 4 %s-separated fields (user, item, rating, timestamp), got %d", sepName, len(p.fields))
	}
	return p.movieLensFields(p.fields[0], p.fields[1], p.fields[2], p.fields[3])
}

func (p *lineParser) movieLensFields(user, item, rating, ts []byte) (events.Interaction, error) {
	user, item = bytes.TrimSpace(user), bytes.TrimSpace(item)
	if !isDigits(user) {
		return events.Interaction{}, fmt.Errorf("user id %q is not an integer", truncate(user, 40))
	}
	if !isDigits(item) {
		return events.Interaction{}, fmt.Errorf("item id %q is not an integer", truncate(item, 40))
	}
	v, err := parseValue(rating, "rating")
	if err != nil {
		return events.Interaction{}, err
	}
	t, err := parseTS(ts, true)
	if err != nil {
		return events.Interaction{}, err
	}
	return events.Interaction{
		Type: events.Rating, User: p.intern.bytes(user), Item: p.intern.bytes(item),
		Timestamp: t, Value: v, HasValue: true,
	}, nil
}

func (p *lineParser) parseCSV(line []byte) (events.Interaction, error) {
	var err error
	p.fields, err = splitCSV(line, p.fields, &p.scratch)
	if err != nil {
		return events.Interaction{}, err
	}
	c := &p.cols
	if len(p.fields) != c.n {
		return events.Interaction{}, fmt.Errorf("want %d comma-separated fields as in the header, got %d", c.n, len(p.fields))
	}
	if p.v == varMovieLensCSV {
		return p.movieLensFields(p.fields[c.user], p.fields[c.item], p.fields[c.value], p.fields[c.ts])
	}
	user, item := p.fields[c.user], p.fields[c.item]
	if len(user) == 0 {
		return events.Interaction{}, errors.New("user id is empty")
	}
	if len(item) == 0 {
		return events.Interaction{}, errors.New("item id is empty")
	}
	e := events.Interaction{User: p.intern.bytes(user), Item: p.intern.bytes(item)}
	if e.Timestamp, err = parseTS(p.fields[c.ts], p.seconds); err != nil {
		return events.Interaction{}, err
	}
	if c.value >= 0 && len(p.fields[c.value]) > 0 {
		if e.Value, err = parseValue(p.fields[c.value], "value"); err != nil {
			return events.Interaction{}, err
		}
		e.HasValue = true
	}
	switch {
	case c.typ >= 0 && len(p.fields[c.typ]) > 0:
		f := p.fields[c.typ]
		t, ok := events.ParseType(string(f))
		if !ok {
			t, ok = events.ParseType(strings.ToLower(string(f)))
		}
		if !ok {
			return events.Interaction{}, fmt.Errorf("type %q is not view, click, purchase or rating", truncate(f, 40))
		}
		e.Type = t
	case p.defaultType != 0:
		e.Type = p.defaultType
	case c.value >= 0 && c.typ < 0:
		e.Type = events.Rating
	default:
		e.Type = events.View
	}
	if c.id >= 0 {
		e.ID = string(p.fields[c.id])
	}
	return e, nil
}

// checkText rejects ids that the JSON encoding cannot carry faithfully: invalid UTF-8 and
// non-printable characters outside the Basic Multilingual Plane (strconv.Quote writes those
// as \U escapes, which JSON lacks). Control characters are left to Validate.
func checkText(field string, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return checkRunes(field, s)
		}
	}
	return nil
}

func checkRunes(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", field, truncate([]byte(s), 40))
	}
	for _, r := range s {
		if r >= 0x10000 && !strconv.IsPrint(r) {
			return fmt.Errorf("%s %q holds the non-printable character %U", field, truncate([]byte(s), 40), r)
		}
	}
	return nil
}

func parseValue(b []byte, what string) (float32, error) {
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", what, truncate(b, 40))
	}
	return float32(v), nil
}

// parseTS reads an integer timestamp and returns Unix milliseconds.
func parseTS(b []byte, seconds bool) (int64, error) {
	t, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q is not an integer", truncate(b, 40))
	}
	if seconds {
		if t > math.MaxInt64/1000 || t < math.MinInt64/1000 {
			return 0, fmt.Errorf("timestamp %d s is out of range", t)
		}
		t *= 1000
	}
	return t, nil
}
