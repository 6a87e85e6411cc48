package datasets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/producers"
)

func TestDetectFormatAndLoad(t *testing.T) {
	dir := t.TempDir()
	mmrecDir := filepath.Join(dir, "sports")
	mlDir := filepath.Join(dir, "ml-1m")
	os.Mkdir(mmrecDir, 0o755)
	os.Mkdir(mlDir, 0o755)
	os.WriteFile(filepath.Join(mmrecDir, "sports.inter"), []byte("userID\titemID\n0\t1\n"), 0o644)
	os.WriteFile(filepath.Join(mlDir, "ratings.dat"), []byte("1::10::4::1000\n"), 0o644)
	files := map[string]string{
		"ratings.csv":    "userId,movieId,rating,timestamp\n1,10,4,1000\n",
		"u.data":         "1\t10\t4\t1000\n",
		"events.jsonl":   `{"type":"click","user":"u","item":"i","ts":5}` + "\n",
		"log.csv":        "user,item,ts,type\nu,i,5,purchase\n",
		"reviews.json":   `{"reviewerID":"u","asin":"i","overall":5,"unixReviewTime":1}` + "\n",
		"data.uir":       "u i 4\n",
		"cornac.csv":     "u,i,4\n",
		"train.inter":    "userID\titemID\n0\t1\n",
		"amazon23.jsonl": `{"rating": 3.0, "asin": "B1", "user_id": "U", "timestamp": 1588687728923}` + "\n",
	}
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	tests := []struct {
		path string
		want Format
	}{
		{"ratings.csv", FormatMovieLens},
		{"u.data", FormatMovieLens},
		{"events.jsonl", FormatJSONL},
		{"log.csv", FormatCSV},
		{"reviews.json", FormatAmazon},
		{"amazon23.jsonl", FormatAmazon},
		{"data.uir", FormatUIR},
		{"cornac.csv", FormatUIR},
		{"train.inter", FormatMMRec},
		{"sports", FormatMMRec},
		{"ml-1m", FormatMLDir},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := filepath.Join(dir, tt.path)
			f, err := DetectFormat(p)
			if err != nil || f != tt.want {
				t.Fatalf("DetectFormat = %q, %v; want %q", f, err, tt.want)
			}
			ds, err := Load(p, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Interactions) != 1 {
				t.Fatalf("%d interactions", len(ds.Interactions))
			}
		})
	}
	if _, err := DetectFormat(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a missing file was detected")
	}
	os.WriteFile(filepath.Join(dir, "odd.txt"), []byte("just one\tfield\tor\tfive\tfields\n"), 0o644)
	if _, err := DetectFormat(filepath.Join(dir, "odd.txt")); err == nil || !strings.Contains(err.Error(), "name one of") {
		t.Errorf("err = %v", err)
	}
	if _, err := ParseFormat("parquet"); err == nil {
		t.Error("parquet accepted")
	}
	if f, err := ParseFormat("UIR"); err != nil || f != FormatUIR {
		t.Errorf("ParseFormat(UIR) = %q, %v", f, err)
	}
}

func TestDetectPosters(t *testing.T) {
	dir := requirePosters(t)
	if f, err := DetectFormat(dir); err != nil || f != FormatPosters {
		t.Fatalf("DetectFormat = %q, %v", f, err)
	}
}

func TestLoadLog(t *testing.T) {
	p := writeTemp(t, "log.csv", "user,item,ts,type,value\nu1,i1,20,click,\nu2,i1,10,rating,4.5\nu1,i2,30,view,2\n")
	ds, st, err := LoadLog(p, producers.DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 3 || ds.Name != "log" || len(ds.Interactions) != 3 {
		t.Fatalf("stats %+v, %d interactions", st, len(ds.Interactions))
	}
	want := []Interaction{
		{User: 1, Item: 0, Value: 4.5, TS: 10, Type: events.Rating},
		{User: 0, Item: 0, Value: 1, TS: 20, Type: events.Click},
		{User: 0, Item: 1, Value: 2, TS: 30, Type: events.View},
	}
	for i, w := range want {
		x := ds.Interactions[i]
		// dense indices follow the time order of FromEvents' input (the sorted log)
		if ds.Users[x.User] != []string{"u2", "u1", "u1"}[i] || x.Value != w.Value || x.TS != w.TS || x.Type != w.Type {
			t.Errorf("interaction %d = %+v", i, x)
		}
	}
}

func TestWriteEventsJSONLRoundTrip(t *testing.T) {
	src := writeTemp(t, "log.csv", "user,item,ts,type,value\nu1,i1,20,click,\nu2,i1,10,rating,4.5\nu1,i2,30,view,2\n")
	ds, _, err := LoadLog(src, producers.DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := WriteEventsJSONL(&buf, ds, JSONLOptions{})
	if err != nil || n != 3 {
		t.Fatalf("wrote %d: %v", n, err)
	}
	out := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(out, buf.Bytes(), 0o644)
	back, _, err := LoadLog(out, producers.DefaultLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds.Interactions {
		a, b := ds.Event(i), back.Event(i)
		if a != b {
			t.Errorf("event %d: %+v, read back %+v", i, a, b)
		}
	}
	if !strings.Contains(buf.String(), `"type":"click","user":"u1","item":"i1","ts":20}`) {
		t.Errorf("a click of implicit value 1 should carry no value:\n%s", buf.String())
	}

	// A source without timestamps needs StartMillis.
	uir, _ := ReadUIR(strings.NewReader("u1 i1\nu2 i2\n"), "uir", UIROptions{})
	if _, err := WriteEventsJSONL(&bytes.Buffer{}, uir, JSONLOptions{}); err == nil || !errors.Is(err, ErrNoTimestamp) {
		t.Fatalf("err = %v", err)
	}
	buf.Reset()
	if _, err := WriteEventsJSONL(&buf, uir, JSONLOptions{StartMillis: 1000}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"user":"u2","item":"i2","ts":1001}`) {
		t.Errorf("numbered events:\n%s", buf.String())
	}
}
