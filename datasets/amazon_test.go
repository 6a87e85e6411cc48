package datasets

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
)

const amazonSample = `{"reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "reviewerName": "J. McDonald", "helpful": [2, 3], "reviewText": "I bought this for my husband.", "overall": 5.0, "summary": "Heavenly", "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"}
{"overall": 4.0, "verified": true, "reviewTime": "07 6, 2008", "reviewerID": "A3HVRXV0LVJN7", "asin": "0000031852", "style": {"Size:": " Big Boys"}, "reviewerName": "BB", "reviewText": "ok", "summary": "fine", "unixReviewTime": 1215302400, "vote": "2"}

{"rating": 3.0, "title": "meh", "text": "x", "images": [], "asin": "B00YQ6X8EO", "parent_asin": "B00YQ6X8EP", "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": true}
`

func TestLoadAmazonReviews(t *testing.T) {
	ds, err := ReadAmazonReviews(strings.NewReader(amazonSample), "reviews.json", AmazonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Interactions) != 3 || len(ds.Users) != 3 || len(ds.Items) != 3 {
		t.Fatalf("%d interactions, %d users, %d items", len(ds.Interactions), len(ds.Users), len(ds.Items))
	}
	want := []struct {
		user, item string
		value      float32
		ts         int64
	}{
		{"A3HVRXV0LVJN7", "0000031852", 4, 1215302400_000},
		{"A2SUAM1J3GNN3B", "0000013714", 5, 1252800000_000},
		{"AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B00YQ6X8EO", 3, 1588687728923},
	}
	for i, w := range want {
		x := ds.Interactions[i]
		if ds.Users[x.User] != w.user || ds.Items[x.Item] != w.item || x.Value != w.value || x.TS != w.ts || x.Type != events.Rating {
			t.Errorf("interaction %d = %+v (%s, %s), want %+v", i, x, ds.Users[x.User], ds.Items[x.Item], w)
		}
	}
	parent, err := ReadAmazonReviews(strings.NewReader(amazonSample), "r", AmazonOptions{ParentASIN: true})
	if err != nil || parent.Items[parent.Interactions[2].Item] != "B00YQ6X8EP" {
		t.Errorf("ParentASIN: err %v, items %v", err, parent.Items)
	}
}

func TestLoadAmazonReviewsGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(amazonSample))
	zw.Close()
	p := filepath.Join(t.TempDir(), "reviews_Clothing_5.json.gz")
	os.WriteFile(p, buf.Bytes(), 0o644)
	ds, err := LoadAmazonReviews(p, AmazonOptions{})
	if err != nil || len(ds.Interactions) != 3 || ds.Name != "reviews_Clothing_5" {
		t.Fatalf("err %v, %d interactions, name %q", err, len(ds.Interactions), ds.Name)
	}
}

func TestLoadAmazonReviewsMalformed(t *testing.T) {
	ok := `{"reviewerID":"u","asin":"i","overall":5,"unixReviewTime":1}` + "\n"
	tests := []struct{ name, line, want string }{
		{"not JSON", `{"reviewerID": "u",`, "not a JSON object"},
		{"python literal", `{'reviewerID': 'u', 'asin': 'i'}`, "Python dict literal"},
		{"no reviewer", `{"asin":"i","overall":5,"unixReviewTime":1}`, "no reviewer"},
		{"no item", `{"reviewerID":"u","overall":5,"unixReviewTime":1}`, "no item"},
		{"no rating", `{"reviewerID":"u","asin":"i","unixReviewTime":1}`, "no rating"},
		{"no time", `{"reviewerID":"u","asin":"i","overall":5}`, "no review time"},
		{"string rating", `{"reviewerID":"u","asin":"i","overall":"5","unixReviewTime":1}`, `key "overall" is a JSON string, want a number`},
		{"control byte in id", `{"reviewerID":"u\u0001","asin":"i","overall":5,"unixReviewTime":1}`, "reviewer id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAmazonReviews(strings.NewReader(ok+tt.line+"\n"), "reviews.json", AmazonOptions{})
			if err == nil || !strings.Contains(err.Error(), "reviews.json:2: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want reviews.json:2 and %q", err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v does not match ErrMalformed", err)
			}
		})
	}
}

// vbprRows returns n rows of dim seeded values.
func vbprRows(n, dim int) [][]float32 {
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = make([]float32, dim)
		for k := range rows[i] {
			rows[i][k] = float32(i*1000+k) / 7
		}
	}
	return rows
}

func TestVBPRFeaturesRoundTrip(t *testing.T) {
	ds, err := ReadAmazonReviews(strings.NewReader(amazonSample), "r", AmazonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"0000013714", "ZZZZZZZZZZ", "B00YQ6X8EO", "0000013714"} // unknown, duplicate
	rows := vbprRows(len(ids), 16)
	var buf bytes.Buffer
	if err := WriteVBPRFeatures(&buf, ids, rows); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != len(ids)*(10+16*4) {
		t.Fatalf("%d bytes written", buf.Len())
	}
	// The layout, by hand: ASIN bytes, then little-endian float32.
	if got := buf.Bytes()[:10]; string(got) != ids[0] {
		t.Fatalf("record 0 starts %q", got)
	}
	if b := buf.Bytes()[10+4*3 : 10+4*4]; math.Float32frombits(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24) != rows[0][3] {
		t.Fatalf("value 3 of record 0 is not little-endian float32")
	}
	p := filepath.Join(t.TempDir(), "image_features_test.b")
	os.WriteFile(p, buf.Bytes(), 0o644)
	rep, err := LoadVBPRFeatures(ds, p, 16)
	if err != nil {
		t.Fatal(err)
	}
	if rep != (FeatureReport{Rows: 4, Attached: 2, Unknown: 1, Duplicate: 1}) {
		t.Errorf("report %+v", rep)
	}
	index := ds.ItemIndex()
	for _, k := range []int{0, 2} {
		got := ds.Features[index[ids[k]]]
		for d := range got {
			if got[d] != rows[k][d] {
				t.Fatalf("item %s feature %d = %v, want %v", ids[k], d, got[d], rows[k][d])
			}
		}
	}
	if ds.FeatureDim != 16 || ds.Features[index["0000031852"]] != nil || ds.Stats().ItemsWithFeatures != 2 {
		t.Errorf("dim %d, features %v", ds.FeatureDim, ds.Features)
	}
}

func TestVBPRFeaturesMalformed(t *testing.T) {
	ds, _ := ReadAmazonReviews(strings.NewReader(amazonSample), "r", AmazonOptions{})
	var buf bytes.Buffer
	WriteVBPRFeatures(&buf, []string{"0000013714", "B00YQ6X8EO"}, vbprRows(2, 8))
	truncated := buf.Bytes()[:buf.Len()-5]
	_, err := ReadVBPRFeatures(ds, bytes.NewReader(truncated), "feat.b", 8)
	if err == nil || !strings.Contains(err.Error(), "feat.b: byte offset 42: truncated record: 37 of 42 bytes") || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
	nan := bytes.Clone(buf.Bytes())
	copy(nan[42+10:], []byte{0, 0, 0xc0, 0x7f}) // NaN in record 1
	_, err = ReadVBPRFeatures(ds, bytes.NewReader(nan), "feat.b", 8)
	if err == nil || !strings.Contains(err.Error(), "byte offset 42") || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("err = %v", err)
	}
	if err := WriteVBPRFeatures(&buf, []string{"short"}, vbprRows(1, 8)); err == nil {
		t.Error("a 5-byte id was written")
	}
}
