package embed

import (
	"bufio"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/visrec/visrec/datasets"
)

// Paths of the shared model and data, relative to this package's directory.
const (
	featuresModel = "../../shared/models/mobilenetv2-12-int8-features.onnx"
	plainModel    = "../../shared/models/mobilenetv2-12-int8.onnx"
	postersDir    = "../../shared/data/movielens-posters/posters"
	refF32        = "../../shared/data/movielens-posters/features/mobilenetv2_avgpool.f32"
	refIDs        = "../../shared/data/movielens-posters/features/mobilenetv2_avgpool.ids"
)

// missing skips the test, or fails it when $CI is set: in CI a missing library, model or data
// set is a broken setup, not a reason to pass.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

var installOnce struct {
	sync.Once
	path string
	err  error
}

// testLibrary returns libonnxruntime.so: $VISREC_ONNXRUNTIME_LIB, else the repository's
// .cache/onnxruntime/lib/libonnxruntime.so, installing it with deploy/onnxruntime.sh (npm, or
// the PyPI wheel) when it is not there yet.
func testLibrary(t testing.TB) string {
	t.Helper()
	if p, err := FindLibrary(); err == nil {
		return p
	} else if os.Getenv(LibraryEnv) != "" {
		missing(t, "%v", err)
	}
	installOnce.Do(func() {
		script, err := filepath.Abs("../deploy/onnxruntime.sh")
		if err != nil {
			installOnce.err = err
			return
		}
		cmd := exec.Command(script)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			installOnce.err = errors.Join(errors.New("deploy/onnxruntime.sh failed"), err)
			return
		}
		installOnce.path = strings.TrimSpace(string(out))
	})
	if installOnce.err != nil {
		missing(t, "no ONNX Runtime library: %v", installOnce.err)
	}
	return installOnce.path
}

// need skips (or in CI fails) unless every path exists.
func need(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing(t, "shared data missing: %v", err)
		}
	}
}

// newTestEmbedder opens the features model with the given batch size.
func newTestEmbedder(t testing.TB, batch int) *Embedder {
	t.Helper()
	lib := testLibrary(t)
	need(t, featuresModel)
	e, err := New(Options{ModelPath: featuresModel, LibraryPath: lib, BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// reference loads the reference features, indexed by movie id.
func reference(t testing.TB) map[string][]float32 {
	t.Helper()
	need(t, refF32, refIDs)
	ids, m, err := datasets.LoadRawFeatures(refF32, refIDs, 1280)
	if err != nil {
		t.Fatal(err)
	}
	ref := make(map[string][]float32, len(ids))
	for i, id := range ids {
		ref[id] = m.Row(i)
	}
	return ref
}

// samplePosters returns every stride-th poster path in ascending numeric movie id order.
func samplePosters(t testing.TB, stride int) []string {
	t.Helper()
	need(t, postersDir)
	ents, err := os.ReadDir(postersDir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, e := range ents {
		id, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".jpg"))
		if err == nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	var paths []string
	for i := 0; i < len(ids); i += stride {
		paths = append(paths, filepath.Join(postersDir, strconv.Itoa(ids[i])+".jpg"))
	}
	return paths
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// readLines reads a text file's lines.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
