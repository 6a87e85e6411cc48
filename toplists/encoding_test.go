package toplists

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestListDocument: a document decodes, with encoding/json as any client would, to the
// list and write time it was made from (ids that need escaping included, scores exact as
// float32), and DecodeList agrees.
func TestListDocument(t *testing.T) {
	at := time.UnixMilli(1_732_752_000_123)
	items := []Entry{{"i42", 0.9312}, {`say "hi"\`, -1.5e-7}, {"ünï\tcode\u2028", 3}, {"i7", float32(math.Pi)}}
	doc := AppendList([]byte("prefix"), at, items)
	if !strings.HasPrefix(string(doc), "prefix") {
		t.Fatal("AppendList overwrote dst")
	}
	doc = doc[len("prefix"):]
	var generic struct {
		At    int64 `json:"at"`
		Items []struct {
			Item  string  `json:"item"`
			Score float64 `json:"score"`
		} `json:"items"`
	}
	if err := json.Unmarshal(doc, &generic); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	if generic.At != at.UnixMilli() || len(generic.Items) != len(items) {
		t.Fatalf("decoded %+v from %s", generic, doc)
	}
	for i, e := range generic.Items {
		if e.Item != items[i].Item || float32(e.Score) != items[i].Score {
			t.Errorf("item %d: %q %v, want %q %v", i, e.Item, e.Score, items[i].Item, items[i].Score)
		}
	}
	got, err := DecodeList(doc)
	if err != nil || !got.Written.Equal(at) || len(got.Items) != len(items) {
		t.Fatalf("DecodeList: %+v, %v", got, err)
	}
	for i := range items {
		if got.Items[i] != items[i] {
			t.Errorf("DecodeList item %d: %+v, want %+v", i, got.Items[i], items[i])
		}
	}
}

// TestListDocumentNonFinite: JSON has no NaN or infinities; such a score is written as the
// extreme float32 on its side, and the document stays readable.
func TestListDocumentNonFinite(t *testing.T) {
	inf := float32(math.Inf(1))
	doc := AppendList(nil, time.UnixMilli(1), []Entry{{"a", inf}, {"b", float32(math.NaN())}, {"c", -inf}})
	got, err := DecodeList(doc)
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	want := []float32{math.MaxFloat32, -math.MaxFloat32, -math.MaxFloat32}
	for i, e := range got.Items {
		if e.Score != want[i] {
			t.Errorf("%s: score %v, want %v", e.Item, e.Score, want[i])
		}
	}
}

// TestDecodeListErrors: documents that are not lists are refused with a clear error.
func TestDecodeListErrors(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"items":[]}`, `{"at":"x","items":[]}`, `{"at":1,"items":[{"score":1}]}`,
		`{"at":1,"items":[{"item":"a","score":"high"}]}`, `{"at":1,"items":{}}`, `not json`} {
		if _, err := DecodeList([]byte(doc)); err == nil {
			t.Errorf("%q decoded", doc)
		}
	}
	if l, err := DecodeList([]byte(`{"at":5,"items":[],"later":"field"}`)); err != nil || len(l.Items) != 0 {
		t.Errorf("an unknown field (a later version's): %+v, %v", l, err)
	}
}

// FuzzDecodeList: any input decodes or fails cleanly; what decodes encodes back to a
// document that decodes to the same list.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(`{"at":1732752000123,"items":[{"item":"i42","score":0.9312}]}`))
	f.Add([]byte(`{"at":-1,"items":null}`))
	f.Add(AppendList(nil, time.UnixMilli(9), []Entry{{"\x00\"", 1e-30}}))
	f.Fuzz(func(t *testing.T, doc []byte) {
		l, err := DecodeList(doc)
		if err != nil {
			return
		}
		again, err := DecodeList(AppendList(nil, l.Written, l.Items))
		if err != nil {
			t.Fatalf("re-encoded %+v: %v", l, err)
		}
		if !again.Written.Equal(l.Written) || len(again.Items) != len(l.Items) {
			t.Fatalf("%+v became %+v", l, again)
		}
		for i := range l.Items {
			a, b := l.Items[i], again.Items[i]
			if a.Item != b.Item && strings.ToValidUTF8(a.Item, "\uFFFD") != b.Item {
				t.Fatalf("item %q became %q", a.Item, b.Item)
			}
			if a.Score != b.Score && !(math.IsInf(float64(a.Score), 0) || math.IsNaN(float64(a.Score))) {
				t.Fatalf("score %v became %v", a.Score, b.Score)
			}
		}
	})
}
