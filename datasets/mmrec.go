package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/visrec/visrec/events"
)

// MMRec (Zhou et al., the multimodal recommendation toolbox) keeps a data set in a folder:
// NAME.inter, a tab-separated file whose header names the columns (userID, itemID, rating,
// timestamp, x_label), and one .npy matrix per modality, image_feat.npy and text_feat.npy,
// whose row i belongs to itemID i. User and item ids are already dense integers.

// MMRecOptions say how to read an MMRec data set.
type MMRecOptions struct {
	ReadOptions
	// TimestampMillis says the timestamp column holds Unix milliseconds, not seconds.
	TimestampMillis bool
}

// MMRec feature file names inside a data set folder.
const (
	MMRecImageFeatures = "image_feat.npy"
	MMRecTextFeatures  = "text_feat.npy"
)

// LoadMMRec reads an MMRec data set folder: its one .inter file (see LoadMMRecInter) and,
// when present, image_feat.npy as Features and text_feat.npy as TextFeatures. Since the ids
// are integers, dense index i is itemID i (and userID i), so feature row i lands on dense
// item i; items with a feature row but no interaction are kept (cold-start items).
func LoadMMRec(dir string, opts MMRecOptions) (*Dataset, error) {
	inters, err := filepath.Glob(filepath.Join(dir, "*.inter"))
	if err != nil {
		return nil, err
	}
	if len(inters) != 1 {
		return nil, fmt.Errorf("MMRec folder %s: want exactly one .inter file, found %d %v", dir, len(inters), inters)
	}
	var mats [2]*Matrix
	minItems := 0
	for k, f := range [2]string{MMRecImageFeatures, MMRecTextFeatures} {
		path := filepath.Join(dir, f)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		m, err := LoadNPY(path)
		if err != nil {
			return nil, err
		}
		mats[k] = m
		minItems = max(minItems, m.Rows)
	}
	ds, intIDs, err := loadMMRecInter(inters[0], opts, minItems)
	if err != nil {
		return nil, err
	}
	ds.Name = filepath.Base(filepath.Clean(dir))
	for k, f := range [2]string{MMRecImageFeatures, MMRecTextFeatures} {
		m := mats[k]
		if m == nil {
			continue
		}
		if !intIDs {
			return nil, fmt.Errorf("%s: item ids are not all integers, so the rows of %s cannot be matched to them", inters[0], f)
		}
		set := ds.SetFeature
		if k == 1 {
			set = ds.SetTextFeature
		}
		for i := 0; i < m.Rows; i++ {
			if err := set(int32(i), m.Row(i)); err != nil {
				return nil, malformed("%s: row %d: %w", filepath.Join(dir, f), i, err)
			}
		}
	}
	return ds, nil
}

// LoadMMRecInter reads an MMRec .inter file (also RecBole's atomic .inter, whose header
// names carry a ":type" suffix): tab-separated with a header naming at least the user
// (userID or user_id) and item (itemID or item_id) columns, and optionally rating,
// timestamp (Unix seconds, integer or decimal) and x_label (the split: 0 train,
// 1 validation, 2 test, kept in Dataset.Split). Interactions without a rating column are
// views of Value 1; with one, ratings. When all ids are non-negative integers, dense index
// i is id i for users and items alike (as MMRec indexes its embeddings), ids that never
// occur included; otherwise ids get dense indices in order of appearance.
func LoadMMRecInter(path string, opts MMRecOptions) (*Dataset, error) {
	ds, _, err := loadMMRecInter(path, opts, 0)
	return ds, err
}

type mmrecColumns struct{ user, item, rating, ts, label, n int }

func parseMMRecHeader(line []byte) (mmrecColumns, error) {
	c := mmrecColumns{user: -1, item: -1, rating: -1, ts: -1, label: -1}
	names := strings.Split(string(line), "\t")
	c.n = len(names)
	for i, raw := range names {
		name, _, _ := strings.Cut(strings.TrimSpace(raw), ":")
		var dst *int
		switch strings.ToLower(name) {
		case "userid", "user_id":
			dst = &c.user
		case "itemid", "item_id":
			dst = &c.item
		case "rating":
			dst = &c.rating
		case "timestamp":
			dst = &c.ts
		case "x_label":
			dst = &c.label
		default:
			continue
		}
		if *dst >= 0 {
			return c, fmt.Errorf("column %q appears twice", name)
		}
		*dst = i
	}
	if c.user < 0 || c.item < 0 {
		return c, fmt.Errorf("header %q: want tab-separated column names including userID and itemID", truncateBytes(line, 120))
	}
	return c, nil
}

type mmrecRow struct {
	user, item string
	value      float32
	ts         int64
	label      uint8
}

// loadMMRecInter reads the file; with integer ids the items 0..max(maxID, minItems-1) are
// all registered. intIDs says whether item ids were integers.
func loadMMRecInter(path string, opts MMRecOptions, minItems int) (*Dataset, bool, error) {
	r, closeFn, err := openInput(path)
	if err != nil {
		return nil, false, err
	}
	defer closeFn()
	rows, cols, err := readMMRecRows(r, path, opts)
	if err != nil {
		return nil, false, err
	}
	maxUser, maxItem := -1, minItems-1
	intIDs := true
	for i := range rows {
		u, okU := denseID(rows[i].user)
		j, okI := denseID(rows[i].item)
		if !okU || !okI {
			intIDs = false
			break
		}
		maxUser, maxItem = max(maxUser, u), max(maxItem, j)
	}
	b := NewBuilder(baseName(path))
	if intIDs {
		for u := 0; u <= maxUser; u++ {
			b.User(strconv.Itoa(u))
		}
		for j := 0; j <= maxItem; j++ {
			b.Item(strconv.Itoa(j))
		}
	}
	typ := events.View
	if cols.rating >= 0 {
		typ = events.Rating
	}
	b.Grow(len(rows))
	for _, row := range rows {
		if cols.label >= 0 {
			b.AddSplit(row.user, row.item, row.value, row.ts, typ, row.label)
		} else {
			b.Add(row.user, row.item, row.value, row.ts, typ)
		}
	}
	return b.Dataset(), intIDs, nil
}

// denseID parses a canonical non-negative integer id below 2^31-1 ("0", "17"; not "017").
func denseID(s string) (int, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= math.MaxInt32 {
		return 0, false
	}
	return n, true
}

func readMMRecRows(r io.Reader, name string, opts MMRecOptions) ([]mmrecRow, mmrecColumns, error) {
	ls := newLineScanner(r, name, opts.MaxLineBytes)
	header, ok := ls.next()
	if !ok {
		if err := ls.err(); err != nil {
			return nil, mmrecColumns{}, err
		}
		return nil, mmrecColumns{}, lineErr(name, 1, "empty file, want a header")
	}
	cols, err := parseMMRecHeader(header)
	if err != nil {
		return nil, cols, lineErr(name, 1, "%v", err)
	}
	var rows []mmrecRow
	var fields [][]byte
	for {
		line, ok := ls.next()
		if !ok {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		fields = splitUIR(line, "\t", fields[:0])
		row, err := parseMMRecRow(fields, cols, opts.TimestampMillis)
		if err != nil {
			if err := opts.bad(lineErr(name, ls.n, "%v", err)); err != nil {
				return nil, cols, err
			}
			continue
		}
		rows = append(rows, row)
	}
	return rows, cols, ls.err()
}

func parseMMRecRow(f [][]byte, c mmrecColumns, millis bool) (mmrecRow, error) {
	if len(f) != c.n {
		return mmrecRow{}, fmt.Errorf("%d tab-separated fields, want %d as in the header", len(f), c.n)
	}
	row := mmrecRow{value: 1}
	for k, col := range [2]int{c.user, c.item} {
		what := [2]string{"user", "item"}[k]
		if len(f[col]) == 0 {
			return mmrecRow{}, fmt.Errorf("empty %s id", what)
		}
		if err := checkID(f[col]); err != nil {
			return mmrecRow{}, fmt.Errorf("%s id %q: %w", what, truncateBytes(f[col], 40), err)
		}
	}
	row.user, row.item = string(f[c.user]), string(f[c.item])
	if c.rating >= 0 {
		v, err := strconv.ParseFloat(string(f[c.rating]), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return mmrecRow{}, fmt.Errorf("rating %q is not a finite number", truncateBytes(f[c.rating], 40))
		}
		row.value = float32(v)
	}
	if c.ts >= 0 {
		ts, err := parseTimestamp(f[c.ts], millis)
		if err != nil {
			return mmrecRow{}, err
		}
		row.ts = ts
	}
	if c.label >= 0 {
		l, err := strconv.ParseUint(string(f[c.label]), 10, 8)
		if err != nil || l > uint64(SplitTest) {
			return mmrecRow{}, fmt.Errorf("x_label %q: want 0 (train), 1 (validation) or 2 (test)", truncateBytes(f[c.label], 40))
		}
		row.label = uint8(l)
	}
	return row, nil
}
