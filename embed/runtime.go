package embed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names libonnxruntime.so explicitly.
const LibraryEnv = "VISREC_ONNXRUNTIME_LIB"

// LibraryRelPath is where deploy/onnxruntime.sh installs the library, relative to the
// repository root.
const LibraryRelPath = ".cache/onnxruntime/lib/libonnxruntime.so"

// ErrNoLibrary is returned by FindLibrary when no ONNX Runtime library can be found.
var ErrNoLibrary = errors.New("ONNX Runtime library not found")

// FindLibrary returns the path of libonnxruntime.so: the file named by $VISREC_ONNXRUNTIME_LIB
// when set, else LibraryRelPath under the current directory or the nearest of its parents
// that has it (so it works from the repository root and from a package directory in tests).
// A set but missing $VISREC_ONNXRUNTIME_LIB is an error, not a reason to look elsewhere.
// The error wraps ErrNoLibrary and says how to install the library.
func FindLibrary() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %v", ErrNoLibrary, LibraryEnv, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoLibrary, err)
	}
	for {
		p := filepath.Join(dir, LibraryRelPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: set $%s or run deploy/onnxruntime.sh (installs %s in the repository)", ErrNoLibrary, LibraryEnv, LibraryRelPath)
		}
		dir = parent
	}
}

// ortEnv is the one piece of process-wide state in this package, forced on it by
// onnxruntime_go: the library is loaded (dlopen) and the ORT environment created once per
// process, and never torn down, because sessions of any Embedder in the process share it.
// A mutex rather than a sync.Once guards it so that a failed load (a missing library) can be
// retried once the library is installed.
var ortEnv struct {
	mu   sync.Mutex
	path string // the library loaded; "" before the first success
}

// initRuntime loads the ONNX Runtime shared library at lib and creates the environment, once
// per process. Later calls with the same library (or "") are no-ops; a call naming another
// library is an error, since one process can hold one ONNX Runtime. If the environment was
// initialised outside this package, it is used as it is. Safe for concurrent use.
func initRuntime(lib string) error {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.path != "" || ort.IsInitialized() {
		if ortEnv.path != "" && lib != "" && !samePath(lib, ortEnv.path) {
			return fmt.Errorf("ONNX Runtime already loaded from %s; cannot also load %s in one process", ortEnv.path, lib)
		}
		if ortEnv.path == "" {
			ortEnv.path = "(initialised elsewhere)"
		}
		return nil
	}
	if lib == "" {
		var err error
		if lib, err = FindLibrary(); err != nil {
			return err
		}
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("load ONNX Runtime from %s: %w", lib, err)
	}
	ortEnv.path = lib
	return nil
}

// RuntimeVersion returns the version string of the loaded ONNX Runtime, e.g. "1.30.0", or ""
// before any Embedder was opened.
func RuntimeVersion() string {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}

func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ra == rb
}
