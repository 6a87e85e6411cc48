package datasets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
)

const interSample = "userID\titemID\trating\ttimestamp\tx_label\n" +
	"1\t2\t5.0\t1300000000\t0\n" +
	"0\t0\t4.0\t1200000000\t0\n" +
	"1\t0\t3.0\t1400000000\t2\n" +
	"0\t2\t1.0\t1350000000\t1\n"

func writeNPYFile(t *testing.T, path string, m *Matrix) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteNPY(&buf, m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMMRec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "baby")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "baby.inter"), []byte(interSample), 0o644)
	// 4 items: item 1 never occurs in .inter, item 3 only in the features (cold start).
	img := &Matrix{Rows: 4, Cols: 3, Data: []float32{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3}}
	txt := &Matrix{Rows: 4, Cols: 2, Data: []float32{0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5}}
	writeNPYFile(t, filepath.Join(dir, MMRecImageFeatures), img)
	writeNPYFile(t, filepath.Join(dir, MMRecTextFeatures), txt)
	ds, err := LoadMMRec(dir, MMRecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Name != "baby" || len(ds.Users) != 2 || len(ds.Items) != 4 || len(ds.Interactions) != 4 {
		t.Fatalf("name %q, %d users, %d items, %d interactions", ds.Name, len(ds.Users), len(ds.Items), len(ds.Interactions))
	}
	for j, id := range ds.Items {
		if id != string(rune('0'+j)) {
			t.Fatalf("dense item %d has id %q: dense index must be itemID", j, id)
		}
		if ds.Features[j][0] != float32(j) || ds.TextFeatures[j][1] != float32(j)+0.5 {
			t.Errorf("item %d: image %v, text %v", j, ds.Features[j], ds.TextFeatures[j])
		}
	}
	if ds.FeatureDim != 3 || ds.TextFeatureDim != 2 {
		t.Errorf("dims %d, %d", ds.FeatureDim, ds.TextFeatureDim)
	}
	// Time order, with the split labels following their interactions.
	wantTS := []int64{1200000000_000, 1300000000_000, 1350000000_000, 1400000000_000}
	wantSplit := []uint8{SplitTrain, SplitTrain, SplitValidation, SplitTest}
	for i, x := range ds.Interactions {
		if x.TS != wantTS[i] || ds.Split[i] != wantSplit[i] || x.Type != events.Rating {
			t.Errorf("interaction %d: %+v split %d, want ts %d split %d", i, x, ds.Split[i], wantTS[i], wantSplit[i])
		}
	}
	st := ds.Stats()
	if st.ActiveItems != 2 || st.ItemsWithFeatures != 4 || st.Split[SplitTest] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLoadMMRecInterRecBole(t *testing.T) {
	text := "user_id:token\titem_id:token\ttimestamp:float\n" +
		"alice\tA\t10.5\n" +
		"bob\tB\t5\n"
	ds, err := LoadMMRecInter(writeTemp(t, "x.inter", text), MMRecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Items) != 2 || ds.Items[0] != "A" || ds.Split != nil {
		t.Fatalf("items %v split %v", ds.Items, ds.Split)
	}
	first := ds.Interactions[0]
	if ds.Users[first.User] != "bob" || first.TS != 5000 || first.Type != events.View || first.Value != 1 {
		t.Errorf("first %+v", first)
	}
}

func TestLoadMMRecMalformed(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"no header", "", "x.inter:1: empty file"},
		{"header without item", "userID\trating\n1\t2\n", "x.inter:1: header"},
		{"duplicate column", "userID\titemID\tuser_id\n", "x.inter:1: column"},
		{"field count", "userID\titemID\trating\n1\t2\n", "x.inter:2: 2 tab-separated fields, want 3"},
		{"rating", "userID\titemID\trating\n1\t2\tfive\n", `x.inter:2: rating "five"`},
		{"timestamp", "userID\titemID\ttimestamp\n1\t2\tnoon\n", `x.inter:2: timestamp "noon"`},
		{"label", "userID\titemID\tx_label\n1\t2\t0\n1\t3\t7\n", `x.inter:3: x_label "7"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadMMRecInter(writeTemp(t, "x.inter", tt.text), MMRecOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want a malformed-file error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadMMRecFeatureErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.inter"), []byte("userID\titemID\nu\tv\n"), 0o644)
	writeNPYFile(t, filepath.Join(dir, MMRecImageFeatures), &Matrix{Rows: 1, Cols: 1, Data: []float32{1}})
	if _, err := LoadMMRec(dir, MMRecOptions{}); err == nil || !strings.Contains(err.Error(), "not all integers") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "b.inter"), nil, 0o644)
	if _, err := LoadMMRec(dir, MMRecOptions{}); err == nil || !strings.Contains(err.Error(), "exactly one .inter") {
		t.Fatalf("err = %v", err)
	}
}
