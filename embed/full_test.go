package embed

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/visrec/visrec/datasets"
)

// TestFullReference compares embeddings of all 2,943 posters with the reference features: it
// runs only with VISREC_EMBED_FULL=1 (about a minute on two cores). With
// VISREC_EMBED_FULL_F32=FILE.f32 it checks that file (and FILE.ids), e.g. the output of
// `visrec embed --out FILE.f32`, instead of embedding here. Every row must be within cosine
// 0.999 of its reference row, every reference id must be present.
func TestFullReference(t *testing.T) {
	if os.Getenv("VISREC_EMBED_FULL") == "" {
		t.Skip("set VISREC_EMBED_FULL=1 to embed all 2,943 posters and compare them with the reference features")
	}
	ref := reference(t)
	got := map[string][]float32{}
	if p := os.Getenv("VISREC_EMBED_FULL_F32"); p != "" {
		ids, m, err := datasets.LoadRawFeatures(p, IDsPath(p), 1280)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			got[id] = m.Row(i)
		}
	} else {
		e := newTestEmbedder(t, 0)
		paths, err := ListImages([]string{postersDir})
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(r Result) error {
			if r.Err != nil {
				t.Error(r.Err)
				return nil
			}
			got[r.ID] = r.Vector
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Log(st)
	}
	var cos []float64
	identical := 0
	for id, row := range ref {
		v, ok := got[id]
		if !ok {
			t.Errorf("item %s: no embedding", id)
			continue
		}
		c := cosine(v, row)
		if c < 0.999 {
			t.Errorf("item %s: cosine %.6f, want >= 0.999", id, c)
		}
		if slices.Equal(v, row) {
			identical++
		}
		cos = append(cos, c)
	}
	if len(got) != len(ref) {
		t.Errorf("%d embeddings for %d reference rows", len(got), len(ref))
	}
	slices.Sort(cos)
	if len(cos) > 0 {
		t.Logf("%d items: cosine min %.7f, median %.7f; %d bit-identical rows", len(cos), cos[0], cos[len(cos)/2], identical)
	}
}
