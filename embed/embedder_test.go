package embed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// The reference check: at least 100 posters, a deterministic sample (every 29th in ascending
// movie id order), embedded through EmbedFiles at the default batch size, each within cosine
// 0.999 of its row in mobilenetv2_avgpool.f32.
func TestReferencePosters(t *testing.T) {
	defer goleak.VerifyNone(t)
	ref := reference(t)
	e := newTestEmbedder(t, 0)
	if e.Dim() != 1280 || e.OutputName() != "627" || e.BatchSize() != 1 {
		t.Fatalf("dim %d, output %q, batch %d; want 1280, \"627\", 1", e.Dim(), e.OutputName(), e.BatchSize())
	}
	paths := samplePosters(t, 29)
	if len(paths) < 100 {
		t.Fatalf("sample of %d posters, want at least 100", len(paths))
	}
	var cos []float64
	identical := 0
	st, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(r Result) error {
		if r.Err != nil {
			return r.Err
		}
		row, ok := ref[r.ID]
		if !ok {
			t.Errorf("%s: no reference row", r.ID)
			return nil
		}
		c := cosine(r.Vector, row)
		if c < 0.999 {
			t.Errorf("poster %s: cosine %.6f to the reference row, want >= 0.999", r.ID, c)
		}
		if slices.Equal(r.Vector, row) {
			identical++
		}
		cos = append(cos, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(cos)
	t.Logf("%d posters: cosine min %.7f, median %.7f; %d bit-identical rows; %s", len(cos), cos[0], cos[len(cos)/2], identical, st)
}

// Batched inference gives the batch-1 vectors (cosine ≥ 0.9999; with ONNX Runtime 1.30.0 on
// x86-64 they are bit-identical), including a final partial batch.
func TestBatchMatchesBatchOne(t *testing.T) {
	paths := samplePosters(t, 97)[:21]
	one := embedAll(t, newTestEmbedder(t, 1), paths)
	eight := embedAll(t, newTestEmbedder(t, 8), paths)
	identical := 0
	for i := range paths {
		if c := cosine(one[i], eight[i]); c < 0.9999 {
			t.Errorf("%s: batch 8 vs batch 1 cosine %.7f, want >= 0.9999", paths[i], c)
		}
		if slices.Equal(one[i], eight[i]) {
			identical++
		}
	}
	t.Logf("%d of %d vectors bit-identical at batch 8 and batch 1", identical, len(paths))
}

func embedAll(t *testing.T, e *Embedder, paths []string) [][]float32 {
	t.Helper()
	var out [][]float32
	_, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(r Result) error {
		if r.Err != nil {
			return r.Err
		}
		out = append(out, r.Vector)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Bad files are reported in order with their reason, counted, and the run goes on.
func TestEmbedFilesSkipsBadFiles(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEmbedder(t, 4)
	need(t, postersDir)
	dir := t.TempDir()
	poster, err := os.ReadFile(filepath.Join(postersDir, "1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := slices.Clone(poster)
	for i := len(corrupt) / 3; i < len(corrupt)/3+200; i++ {
		corrupt[i] = 0xff // markers in the middle of the entropy-coded data
	}
	paths := []string{
		filepath.Join(postersDir, "1.jpg"),
		write("100.jpg", poster[:len(poster)/2]), // truncated
		write("notes.txt", []byte("these are not the posters you are looking for\n")),
		filepath.Join(postersDir, "2.jpg"),
		write("101.jpg", corrupt),
		write("empty.jpg", nil),
		filepath.Join(dir, "missing.jpg"),
		write("2.png", pngBytes(t)), // item 2 again
		filepath.Join(postersDir, "3.jpg"),
	}
	wantReason := []string{"", ReasonCorrupt, ReasonNotImage, "", ReasonCorrupt, ReasonNotImage, ReasonUnreadable, ReasonDuplicate, ""}
	var got []Result
	st, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(r Result) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(paths) {
		t.Fatalf("%d results for %d paths", len(got), len(paths))
	}
	ref := reference(t)
	for i, r := range got {
		if r.Path != paths[i] {
			t.Errorf("result %d is for %s, want %s", i, r.Path, paths[i])
		}
		if ReasonOf(r.Err) != wantReason[i] {
			t.Errorf("%s: error %v, want reason %q", r.Path, r.Err, wantReason[i])
		}
		if r.Err == nil && cosine(r.Vector, ref[r.ID]) < 0.999 {
			t.Errorf("%s: cosine %.5f to the reference", r.Path, cosine(r.Vector, ref[r.ID]))
		}
		if r.Err != nil {
			t.Logf("skipped as expected: %v", r.Err)
		}
	}
	if st.Embedded != 3 || st.SkippedTotal() != 6 || st.Skipped[ReasonCorrupt] != 2 || st.Skipped[ReasonNotImage] != 2 {
		t.Errorf("stats %+v: want 3 embedded, 6 skipped (2 corrupt, 2 not_image, 1 unreadable, 1 duplicate)", st)
	}
	t.Log(st)
}

func TestEmbedFilesStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newTestEmbedder(t, 2)
	paths := samplePosters(t, 300)
	stop := errors.New("enough")
	n := 0
	_, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(Result) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("emit error: got %v after %d results, want %v after 3", err, n, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.EmbedFiles(ctx, paths, FilesOptions{}, func(Result) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// Concurrent Embed calls on one Embedder give the same vectors as sequential ones; Close waits,
// then every call returns ErrClosed, and a second Close is harmless.
func TestConcurrentAndClose(t *testing.T) {
	lib := testLibrary(t)
	need(t, featuresModel, postersDir)
	e, err := New(Options{ModelPath: featuresModel, LibraryPath: lib})
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeFile(filepath.Join(postersDir, "1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := Preprocess(img)
	base, err := e.Embed(in)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				v, err := e.Embed(in)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(v[0], base[0]) {
					t.Error("concurrent run gave another vector")
				}
			}
		})
	}
	wg.Wait()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Embed(in); !errors.Is(err, ErrClosed) {
		t.Fatalf("Embed after Close: %v, want ErrClosed", err)
	}
	if _, err := e.Embed(in[:100]); err == nil {
		t.Fatal("short input: no error")
	}
}

func TestNewErrors(t *testing.T) {
	lib := testLibrary(t)
	need(t, featuresModel, plainModel)
	for _, tc := range []struct {
		opts Options
		msg  string
	}{
		{Options{}, "no model path"},
		{Options{ModelPath: "does-not-exist.onnx"}, "does-not-exist.onnx"},
		{Options{ModelPath: plainModel}, "OutputName"},
		{Options{ModelPath: featuresModel, InputName: "image"}, `no input "image"`},
		{Options{ModelPath: featuresModel, OutputName: "logits"}, `no output "logits"`},
		{Options{ModelPath: featuresModel, BatchSize: -1}, "batch size"},
		{Options{ModelPath: featuresModel, LibraryPath: "/elsewhere/libonnxruntime.so"}, "already loaded"},
	} {
		if tc.opts.LibraryPath == "" {
			tc.opts.LibraryPath = lib
		}
		e, err := New(tc.opts)
		if err == nil {
			e.Close()
			t.Errorf("%+v: no error", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %q does not mention %q", tc.opts, err, tc.msg)
		}
	}
	// The classifier's logits, named explicitly, are a 1000-value vector taken as they are.
	e, err := New(Options{ModelPath: plainModel, LibraryPath: lib, OutputName: "output"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Dim() != 1000 {
		t.Fatalf("logits dim %d, want 1000", e.Dim())
	}
	v, err := e.Embed(make([]float32, 2*InputLen))
	if err != nil || len(v) != 2 || len(v[1]) != 1000 {
		t.Fatalf("logits: %d vectors, err %v", len(v), err)
	}
}
