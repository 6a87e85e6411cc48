package eval_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/visrec/visrec/datasets"
	"github.com/visrec/visrec/eval"
	"github.com/visrec/visrec/events"
)

// extRow is an interaction in external ids.
type extRow struct {
	User, Item string
	Value      float32
	TS         int64
	Type       events.Type
}

func external(ds *datasets.Dataset, xs []datasets.Interaction) []extRow {
	out := make([]extRow, len(xs))
	for i, x := range xs {
		out[i] = extRow{ds.Users[x.User], ds.Items[x.Item], x.Value, x.TS, x.Type}
	}
	return out
}

func externalItems(ds *datasets.Dataset, items []int32) []string {
	var out []string
	for _, it := range items {
		out = append(out, ds.Items[it])
	}
	slices.Sort(out)
	return out
}

// awkwardFixture has ids with commas, quotes, spaces and non-ASCII, values that are not
// exact decimals, and one event type.
func awkwardFixture() *datasets.Dataset {
	b := datasets.NewBuilder("awkward, \"quoted\"")
	ids := []string{"plain", "with,comma", `with "quotes"`, " spaced ", "ünïcode", "x"}
	for i := range 60 {
		b.Add(ids[i%len(ids)], ids[(i*7+1)%len(ids)]+"-item", float32(i)/3, int64(1e12)+int64(i/2), events.Rating)
	}
	return b.Dataset()
}

func TestSplitRoundTrip(t *testing.T) {
	mixed := splitFixture(6, 30, 40, 800) // ratings and clicks
	awkward := awkwardFixture()
	type mk func(*datasets.Dataset) (*eval.Split, error)
	kinds := map[string]mk{
		"random":   func(ds *datasets.Dataset) (*eval.Split, error) { return eval.RandomSplit(ds, 0.25, 3) },
		"temporal": func(ds *datasets.Dataset) (*eval.Split, error) { return eval.TemporalSplit(ds, 0.2) },
		"llo":      func(ds *datasets.Dataset) (*eval.Split, error) { return eval.LeaveLastOut(ds), nil },
		"cold":     func(ds *datasets.Dataset) (*eval.Split, error) { return eval.ColdStartItemSplit(ds, 0.2, 5) },
	}
	for _, ds := range []*datasets.Dataset{mixed, awkward} {
		for name, f := range kinds {
			t.Run(ds.Name+"/"+name, func(t *testing.T) {
				sp, err := f(ds)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				const command = "visrec eval --split random --seed 3"
				if err := eval.WriteSplit(dir, ds, sp, eval.SplitMeta{Command: command}); err != nil {
					t.Fatal(err)
				}
				got, gsp, err := eval.ReadSplit(dir)
				if err != nil {
					t.Fatal(err)
				}
				if gsp.Kind != sp.Kind || gsp.Seed != sp.Seed || gsp.Fraction != sp.Fraction {
					t.Errorf("header %q %d %v, want %q %d %v", gsp.Kind, gsp.Seed, gsp.Fraction, sp.Kind, sp.Seed, sp.Fraction)
				}
				if !reflect.DeepEqual(external(got, gsp.Train), external(ds, sp.Train)) {
					t.Error("train differs after the round trip")
				}
				if !reflect.DeepEqual(external(got, gsp.Test), external(ds, sp.Test)) {
					t.Error("test differs after the round trip")
				}
				if !reflect.DeepEqual(externalItems(got, gsp.ColdItems), externalItems(ds, sp.ColdItems)) {
					t.Errorf("cold items %v, want %v", externalItems(got, gsp.ColdItems), externalItems(ds, sp.ColdItems))
				}
				if got.Name != ds.Name || len(got.Interactions) != len(ds.Interactions) {
					t.Errorf("data set %q with %d interactions", got.Name, len(got.Interactions))
				}
				if !slices.IsSortedFunc(got.Interactions, func(a, b datasets.Interaction) int { return int(a.TS - b.TS) }) {
					t.Error("data set interactions are not in time order")
				}
				checkDenseOrder(t, got, gsp)

				// A second round trip is the identity, dense indices included.
				dir2 := t.TempDir()
				if err := eval.WriteSplit(dir2, got, gsp, eval.SplitMeta{Command: command}); err != nil {
					t.Fatal(err)
				}
				got2, gsp2, err := eval.ReadSplit(dir2)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got2, got) || !reflect.DeepEqual(gsp2, gsp) {
					t.Error("second round trip is not the identity")
				}
				info := readInfo(t, dir)
				if info.Command != command || info.Source != ds.Name || info.Counts.Train != len(sp.Train) ||
					info.Counts.Test != len(sp.Test) || info.Counts.ColdItems != len(sp.ColdItems) {
					t.Errorf("split.json = %+v", info)
				}
			})
		}
	}
}

// checkDenseOrder asserts every training user and item has a lower index than any
// test-only one.
func checkDenseOrder(t *testing.T, ds *datasets.Dataset, sp *eval.Split) {
	t.Helper()
	var maxU, maxI int32 = -1, -1
	for _, x := range sp.Train {
		maxU, maxI = max(maxU, x.User), max(maxI, x.Item)
	}
	if int(maxU) != len(uniqueUsers(sp.Train))-1 || int(maxI) != len(uniqueItems(sp.Train))-1 {
		t.Errorf("training users/items are not numbered first: max %d/%d of %d/%d",
			maxU, maxI, len(uniqueUsers(sp.Train)), len(uniqueItems(sp.Train)))
	}
}

func uniqueUsers(xs []datasets.Interaction) map[int32]bool {
	m := map[int32]bool{}
	for _, x := range xs {
		m[x.User] = true
	}
	return m
}

func uniqueItems(xs []datasets.Interaction) map[int32]bool {
	m := map[int32]bool{}
	for _, x := range xs {
		m[x.Item] = true
	}
	return m
}

func readInfo(t *testing.T, dir string) eval.SplitInfo {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, eval.SplitMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var info eval.SplitInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestWriteSplitFormat(t *testing.T) {
	b := datasets.NewBuilder("tiny")
	b.Add("u1", "a", 4.5, 1000, events.Rating)
	b.Add("u2", "b,c", 0.1, 2000, events.Rating)
	b.Add("u1", "b,c", 3, 3000, events.Rating)
	ds := b.Dataset()
	sp := &eval.Split{Kind: eval.KindColdItem, Seed: 1, Fraction: 0.5, Train: ds.Interactions[:1], Test: ds.Interactions[1:], ColdItems: []int32{1}}
	dir := t.TempDir()
	if err := eval.WriteSplit(dir, ds, sp, eval.SplitMeta{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		eval.SplitTrainFile: "user,item,value,ts\nu1,a,4.5,1000\n",
		eval.SplitTestFile:  "user,item,value,ts\nu2,\"b,c\",0.1,2000\nu1,\"b,c\",3,3000\n",
		eval.SplitColdFile:  "b,c\n",
	} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != want {
			t.Errorf("%s =\n%s\nwant\n%s", name, raw, want)
		}
	}
	info := readInfo(t, dir)
	want := eval.SplitInfo{
		Format: 1, Kind: "cold-item", Seed: 1, Fraction: 0.5, Source: "tiny", EventType: "rating",
		Counts: eval.SplitCounts{Train: 1, Test: 2, Users: 2, Items: 2, ColdItems: 1},
		Files:  eval.SplitFiles{Train: "train.csv", Test: "test.csv", ColdItems: "cold_items.txt"},
	}
	if info != want {
		t.Errorf("split.json = %+v, want %+v", info, want)
	}

	// Overwriting with a split without cold items removes the stale cold_items.txt, and
	// mixed types add a type column.
	ds.Interactions[0].Type = events.Click
	sp2 := &eval.Split{Kind: eval.KindRandom, Train: ds.Interactions[:2], Test: ds.Interactions[2:]}
	if err := eval.WriteSplit(dir, ds, sp2, eval.SplitMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, eval.SplitColdFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale cold_items.txt: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, eval.SplitTrainFile))
	if want := "user,item,value,ts,type\nu1,a,4.5,1000,click\nu2,\"b,c\",0.1,2000,rating\n"; string(raw) != want {
		t.Errorf("train.csv =\n%s\nwant\n%s", raw, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries (temporary files left?)", len(entries))
	}
	for _, e := range entries {
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644", e.Name(), fi.Mode(), err)
		}
	}
}

func TestWriteSplitErrors(t *testing.T) {
	ds := &datasets.Dataset{Users: []string{"u"}, Items: []string{"a\nb"}}
	sp := &eval.Split{Kind: eval.KindColdItem, ColdItems: []int32{0}}
	if err := eval.WriteSplit(t.TempDir(), ds, sp, eval.SplitMeta{}); err == nil || !strings.Contains(err.Error(), "cold item id") {
		t.Errorf("line break in a cold item id: %v", err)
	}
	sp = &eval.Split{Train: []datasets.Interaction{{User: 3}}}
	if err := eval.WriteSplit(t.TempDir(), ds, sp, eval.SplitMeta{}); err == nil || !strings.Contains(err.Error(), "no id") {
		t.Errorf("index without an id: %v", err)
	}
}

func TestReadSplitErrors(t *testing.T) {
	good := func(t *testing.T) string {
		b := datasets.NewBuilder("g")
		b.Add("u", "i", 1, 1, events.View)
		b.Add("u", "j", 1, 2, events.View)
		ds := b.Dataset()
		dir := t.TempDir()
		sp := &eval.Split{Kind: eval.KindTemporal, Fraction: 0.5, Train: ds.Interactions[:1], Test: ds.Interactions[1:]}
		if err := eval.WriteSplit(dir, ds, sp, eval.SplitMeta{}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name string
		file string
		data string
		want string // in the error
	}{
		{"bad ts", "train.csv", "user,item,value,ts\nu,i,1,1\n", ""},
		{"bad ts", "train.csv", "user,item,value,ts\nu,i,1,soon\n", "train.csv:2: malformed split file: ts \"soon\""},
		{"bad value", "test.csv", "user,item,value,ts\nu,j,NaN,2\n", "test.csv:2: malformed split file: value \"NaN\""},
		{"missing column", "train.csv", "user,item,ts\nu,i,1\n", "train.csv:1: malformed split file: header \"user,item,ts\" lacks column \"value\""},
		{"empty", "train.csv", "", "train.csv:1: malformed split file: empty file"},
		{"ragged", "train.csv", "user,item,value,ts\nu,i,1\n", "train.csv: malformed split file: record on line 2"},
		{"bad type", "train.csv", "user,item,value,ts,type\nu,i,1,1,poke\n", "train.csv:2: malformed split file: unknown type \"poke\""},
		{"count", "test.csv", "user,item,value,ts\nu,j,1,2\nu,k,1,3\n", "counts say 1 train, 1 test"},
		{"json", "split.json", "{", "split.json: malformed split file"},
		{"format", "split.json", `{"format": 2}`, "format 2, want 1"},
		{"event type", "split.json", `{"format": 1, "event_type": "poke"}`, "unknown event_type \"poke\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := good(t)
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := eval.ReadSplit(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid rewrite: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, eval.ErrSplitFile) {
				t.Fatalf("error %v, want one containing %q and wrapping ErrSplitFile", err, tc.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, _, err := eval.ReadSplit(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("error %v, want ErrNotExist", err)
		}
	})
}

// FuzzReadSplit feeds arbitrary train.csv content to ReadSplit: it must not panic, and
// whatever it accepts must survive a write and read unchanged.
func FuzzReadSplit(f *testing.F) {
	f.Add([]byte("user,item,value,ts\nu,i,1,1\n"))
	f.Add([]byte("user,item,value,ts,type\n\"a,b\",\"c\"\"d\",0.5,-3,click\n"))
	f.Add([]byte("ts,value,item,user,extra\n5,2,x,y,z\n"))
	f.Add([]byte("\ufeffuser,item,value,ts\r\nu,i,1e3,9\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, eval.SplitTrainFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, eval.SplitTestFile), []byte("user,item,value,ts\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ds, sp, err := eval.ReadSplit(dirWithInfo(t, dir))
		if err != nil {
			return
		}
		out := t.TempDir()
		if err := eval.WriteSplit(out, ds, sp, eval.SplitMeta{}); err != nil {
			if strings.Contains(err.Error(), "cannot be written") {
				return
			}
			t.Fatalf("accepted split does not write: %v", err)
		}
		ds2, sp2, err := eval.ReadSplit(out)
		if err != nil {
			t.Fatalf("written split does not read: %v", err)
		}
		if !reflect.DeepEqual(external(ds2, sp2.Train), external(ds, sp.Train)) {
			t.Fatal("round trip changed train")
		}
	})
}

// dirWithInfo writes a split.json without counts (as another tool might) for dir.
func dirWithInfo(t *testing.T, dir string) string {
	t.Helper()
	raw := `{"format": 1, "kind": "random", "files": {"train": "train.csv", "test": "test.csv"}}`
	if err := os.WriteFile(filepath.Join(dir, eval.SplitMetaFile), []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
