package eval

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/events"
)

// Names of the files of a split directory.
const (
	SplitTrainFile = "train.csv"
	SplitTestFile  = "test.csv"
	SplitColdFile  = "cold_items.txt"
	SplitMetaFile  = "split.json"
)

// SplitFormatVersion is the "format" written to split.json and the only one ReadSplit reads.
const SplitFormatVersion = 1

// ErrSplitFile is wrapped by every ReadSplit error about the content of a split directory
// (as opposed to I/O errors), so errors.Is tells a malformed split apart.
var ErrSplitFile = errors.New("malformed split file")

// SplitMeta is what WriteSplit records beside the split itself.
type SplitMeta struct {
	// Command is the exact command line that made the split (e.g. a `visrec eval` call), or "".
	Command string
}

// SplitInfo is the content of split.json.
type SplitInfo struct {
	Format    int         `json:"format"`
	Kind      string      `json:"kind"`
	Seed      uint64      `json:"seed"`
	Fraction  float64     `json:"fraction"`
	Source    string      `json:"source"`               // Dataset.Name of the split data set
	EventType string      `json:"event_type,omitempty"` // the type of every interaction, when they share one
	Counts    SplitCounts `json:"counts"`
	Command   string      `json:"command,omitempty"`
	Files     SplitFiles  `json:"files"`
}

// SplitCounts are the sizes recorded in split.json; ReadSplit checks the file sizes
// against them.
type SplitCounts struct {
	Train     int `json:"train"`      // rows of train.csv
	Test      int `json:"test"`       // rows of test.csv
	Users     int `json:"users"`      // distinct users in train ∪ test
	Items     int `json:"items"`      // distinct items in train ∪ test ∪ cold items
	ColdItems int `json:"cold_items"` // lines of cold_items.txt
}

// SplitFiles names the files of the directory ("" where there is none).
type SplitFiles struct {
	Train     string `json:"train"`
	Test      string `json:"test"`
	ColdItems string `json:"cold_items,omitempty"`
}

// WriteSplit writes sp, whose indices refer to ds, to dir (created if needed) for any tool
// to reuse: train.csv and test.csv with the header user,item,value,ts (external ids from
// ds.Users and ds.Items, value in the shortest form that reads back as the same float32,
// ts in Unix milliseconds; a fifth column, type, only when the interactions do not all
// share one event type), cold_items.txt (one external item id per line) when sp has cold
// items, and split.json (SplitInfo).
//
// split.json is removed first and written last, each file through a temporary file and a
// rename, so a directory holding split.json holds a complete split. Ids with a line break
// cannot be written to cold_items.txt and make WriteSplit fail. The ids in the CSV files
// are quoted as RFC 4180 requires.
func WriteSplit(dir string, ds *datasets.Dataset, sp *Split, meta SplitMeta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write split: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, SplitMetaFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write split: %w", err)
	}
	info := SplitInfo{
		Format: SplitFormatVersion, Kind: sp.Kind, Seed: sp.Seed, Fraction: sp.Fraction,
		Source: ds.Name, Command: meta.Command,
		Files: SplitFiles{Train: SplitTrainFile, Test: SplitTestFile},
	}
	typ, mixed := commonType(sp.Train, sp.Test)
	if !mixed && typ != 0 {
		info.EventType = typ.String()
	}
	var err error
	for _, f := range []struct {
		name string
		xs   []datasets.Interaction
	}{{SplitTrainFile, sp.Train}, {SplitTestFile, sp.Test}} {
		if err = writeFile(dir, f.name, func(w *bufio.Writer) error { return writeInteractions(w, ds, f.xs, mixed) }); err != nil {
			return fmt.Errorf("write split: %w", err)
		}
	}
	coldPath := filepath.Join(dir, SplitColdFile)
	if len(sp.ColdItems) > 0 {
		info.Files.ColdItems = SplitColdFile
		err = writeFile(dir, SplitColdFile, func(w *bufio.Writer) error { return writeColdItems(w, ds, sp.ColdItems) })
	} else {
		err = os.Remove(coldPath) // a stale one from an earlier split
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("write split: %w", err)
	}
	info.Counts = countSplit(sp)
	err = writeFile(dir, SplitMetaFile, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&info)
	})
	if err != nil {
		return fmt.Errorf("write split: %w", err)
	}
	return nil
}

// commonType returns the type all interactions share, or mixed.
func commonType(lists ...[]datasets.Interaction) (typ events.Type, mixed bool) {
	first := true
	for _, xs := range lists {
		for _, x := range xs {
			if first {
				typ, first = x.Type, false
			} else if x.Type != typ {
				return 0, true
			}
		}
	}
	return typ, false
}

func countSplit(sp *Split) SplitCounts {
	users, items := make(map[int32]struct{}), make(map[int32]struct{})
	for _, xs := range [][]datasets.Interaction{sp.Train, sp.Test} {
		for _, x := range xs {
			users[x.User] = struct{}{}
			items[x.Item] = struct{}{}
		}
	}
	for _, it := range sp.ColdItems {
		items[it] = struct{}{}
	}
	return SplitCounts{Train: len(sp.Train), Test: len(sp.Test), Users: len(users), Items: len(items), ColdItems: len(sp.ColdItems)}
}

// writeFile writes dir/name through a temporary file in dir and a rename.
func writeFile(dir, name string, fill func(*bufio.Writer) error) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if err = fill(w); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err = f.Chmod(0o644); err != nil { // CreateTemp makes 0600; these are for sharing
		return fmt.Errorf("%s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

func writeInteractions(w io.Writer, ds *datasets.Dataset, xs []datasets.Interaction, withType bool) error {
	cw := csv.NewWriter(w)
	header := []string{"user", "item", "value", "ts"}
	if withType {
		header = append(header, "type")
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	for i, x := range xs {
		if int(x.User) >= len(ds.Users) || x.User < 0 || int(x.Item) >= len(ds.Items) || x.Item < 0 {
			return fmt.Errorf("interaction %d: user %d or item %d has no id in data set %q", i, x.User, x.Item, ds.Name)
		}
		rec[0], rec[1] = ds.Users[x.User], ds.Items[x.Item]
		rec[2] = strconv.FormatFloat(float64(x.Value), 'g', -1, 32)
		rec[3] = strconv.FormatInt(x.TS, 10)
		if withType {
			rec[4] = x.Type.String()
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeColdItems(w *bufio.Writer, ds *datasets.Dataset, cold []int32) error {
	for _, it := range cold {
		if it < 0 || int(it) >= len(ds.Items) {
			return fmt.Errorf("cold item %d has no id in data set %q", it, ds.Name)
		}
		id := ds.Items[it]
		if id == "" || strings.ContainsAny(id, "\r\n") {
			return fmt.Errorf("cold item id %q cannot be written one per line", id)
		}
		w.WriteString(id)
		w.WriteByte('\n')
	}
	return nil
}

// ReadSplit reads a directory written by WriteSplit (or by any tool following the format
// in docs/evaluation.md). It returns a data set of the split's interactions and the split
// in that data set's dense indices. Users and items are numbered in order of first
// appearance in train.csv, then test.csv, then cold_items.txt, so every index of a
// training user or item is lower than any index of a test-only one. The data set's
// Interactions are train and test together, sorted by TS (stable, train first); its Name
// is split.json's source; it has no features. Users and items of the original data set
// that are in neither file are not in it.
//
// The interactions' event type comes from the type column when present, else from
// split.json's event_type, else it is events.Rating. The counts of split.json, when it has
// them, must match the files. Errors about the content wrap ErrSplitFile and name the file
// and line.
func ReadSplit(dir string) (*datasets.Dataset, *Split, error) {
	metaPath := filepath.Join(dir, SplitMetaFile)
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read split: %w", err)
	}
	var info SplitInfo
	var present struct{ Counts json.RawMessage }
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, nil, fmt.Errorf("read split: %s: %w: %w", metaPath, ErrSplitFile, err)
	}
	_ = json.Unmarshal(raw, &present) // cannot fail where the first decode did not
	if info.Format != SplitFormatVersion {
		return nil, nil, fmt.Errorf("read split: %s: %w: format %d, want %d", metaPath, ErrSplitFile, info.Format, SplitFormatVersion)
	}
	defType := events.Rating
	if info.EventType != "" {
		t, ok := events.ParseType(info.EventType)
		if !ok {
			return nil, nil, fmt.Errorf("read split: %s: %w: unknown event_type %q", metaPath, ErrSplitFile, info.EventType)
		}
		defType = t
	}
	b := datasets.NewBuilder(info.Source)
	sp := &Split{Kind: info.Kind, Seed: info.Seed, Fraction: info.Fraction}
	trainName, testName := cmp.Or(info.Files.Train, SplitTrainFile), cmp.Or(info.Files.Test, SplitTestFile)
	if sp.Train, err = readInteractions(filepath.Join(dir, trainName), b, defType); err != nil {
		return nil, nil, fmt.Errorf("read split: %w", err)
	}
	if sp.Test, err = readInteractions(filepath.Join(dir, testName), b, defType); err != nil {
		return nil, nil, fmt.Errorf("read split: %w", err)
	}
	if info.Files.ColdItems != "" {
		if sp.ColdItems, err = readColdItems(filepath.Join(dir, info.Files.ColdItems), b); err != nil {
			return nil, nil, fmt.Errorf("read split: %w", err)
		}
	}
	c := info.Counts
	ds := b.Dataset()
	if present.Counts != nil && (c.Train != len(sp.Train) || c.Test != len(sp.Test) || c.ColdItems != len(sp.ColdItems) ||
		c.Users != len(ds.Users) || c.Items != len(ds.Items)) {
		return nil, nil, fmt.Errorf("read split: %s: %w: counts say %d train, %d test, %d cold items, %d users, %d items; the files hold %d, %d, %d, %d, %d",
			metaPath, ErrSplitFile, c.Train, c.Test, c.ColdItems, c.Users, c.Items,
			len(sp.Train), len(sp.Test), len(sp.ColdItems), len(ds.Users), len(ds.Items))
	}
	ds.Interactions = make([]datasets.Interaction, 0, len(sp.Train)+len(sp.Test))
	ds.Interactions = append(append(ds.Interactions, sp.Train...), sp.Test...)
	slices.SortStableFunc(ds.Interactions, func(a, b datasets.Interaction) int { return cmp.Compare(a.TS, b.TS) })
	return ds, sp, nil
}

// readInteractions reads a user,item,value,ts[,type] CSV (columns found by header name,
// extra columns ignored), adding ids to b.
func readInteractions(path string, b *datasets.Builder, defType events.Type) ([]datasets.Interaction, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<16))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s:1: %w: empty file, want the header user,item,value,ts", path, ErrSplitFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrSplitFile, err)
	}
	col := map[string]int{"user": -1, "item": -1, "value": -1, "ts": -1, "type": -1}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if j, ok := col[h]; ok && j < 0 {
			col[h] = i
		}
	}
	for _, name := range []string{"user", "item", "value", "ts"} {
		if col[name] < 0 {
			return nil, fmt.Errorf("%s:1: %w: header %q lacks column %q", path, ErrSplitFile, strings.Join(header, ","), name)
		}
	}
	var out []datasets.Interaction
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil { // a *csv.ParseError names the line
			return nil, fmt.Errorf("%s: %w: %w", path, ErrSplitFile, err)
		}
		line, _ := cr.FieldPos(0)
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %w: %s", path, line, ErrSplitFile, fmt.Sprintf(format, args...))
		}
		v, err := strconv.ParseFloat(rec[col["value"]], 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, bad("value %q is not a finite number", rec[col["value"]])
		}
		ts, err := strconv.ParseInt(rec[col["ts"]], 10, 64)
		if err != nil {
			return nil, bad("ts %q is not an integer (Unix milliseconds)", rec[col["ts"]])
		}
		typ := defType
		if j := col["type"]; j >= 0 {
			var ok bool
			if typ, ok = events.ParseType(rec[j]); !ok {
				return nil, bad("unknown type %q", rec[j])
			}
		}
		u, it := rec[col["user"]], rec[col["item"]]
		if u == "" || it == "" {
			return nil, bad("empty user or item id")
		}
		out = append(out, datasets.Interaction{User: b.User(u), Item: b.Item(it), Value: float32(v), TS: ts, Type: typ})
	}
}

func readColdItems(path string, b *datasets.Builder) ([]int32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var out []int32
	for line := 1; sc.Scan(); line++ {
		id := strings.TrimSuffix(sc.Text(), "\r")
		if id == "" {
			return nil, fmt.Errorf("%s:%d: %w: empty item id", path, line, ErrSplitFile)
		}
		out = append(out, b.Item(id))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.Sort(out)
	return out, nil
}
