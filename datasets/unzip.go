package datasets

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrUnsafeArchive is wrapped by the error of Unzip for an archive with an entry that would
// land outside the target folder (an absolute path, "..", a symbolic link) or that is too
// large.
var ErrUnsafeArchive = errors.New("unsafe archive entry")

// MaxUnzipBytes bounds the total uncompressed size Unzip writes (ml-25m unpacks to about
// 1.1 GB).
const MaxUnzipBytes = 64 << 30

// Unzip unpacks the zip file at path into dir and returns the paths written. Every entry is
// checked before anything is written: a name that is not local (absolute, with "..", a
// volume name), a symbolic link or another special file, or a total size over
// MaxUnzipBytes rejects the whole archive (ErrUnsafeArchive). Writes go through an os.Root
// on dir, so not even a symbolic link already inside dir can lead them outside it. Existing
// files are overwritten. Corrupt entries fail their CRC-32 check.
func Unzip(path, dir string) ([]string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("unzip %s: %w", path, err)
	}
	defer zr.Close()
	var total uint64
	for _, f := range zr.File {
		name := filepath.FromSlash(f.Name)
		mode := f.Mode()
		switch {
		case !filepath.IsLocal(name):
			return nil, fmt.Errorf("unzip %s: %w: %q leaves the target folder", path, ErrUnsafeArchive, f.Name)
		case mode&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("unzip %s: %w: %q is a symbolic link", path, ErrUnsafeArchive, f.Name)
		case !mode.IsDir() && !mode.IsRegular():
			return nil, fmt.Errorf("unzip %s: %w: %q is a special file (%v)", path, ErrUnsafeArchive, f.Name, mode.Type())
		}
		total += f.UncompressedSize64
		if total > MaxUnzipBytes {
			return nil, fmt.Errorf("unzip %s: %w: more than %d bytes uncompressed", path, ErrUnsafeArchive, int64(MaxUnzipBytes))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("unzip: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("unzip: %w", err)
	}
	defer root.Close()
	var written []string
	for _, f := range zr.File {
		name := filepath.FromSlash(f.Name)
		if f.Mode().IsDir() {
			if err := root.MkdirAll(name, 0o755); err != nil {
				return written, fmt.Errorf("unzip %s: %w", path, err)
			}
			continue
		}
		if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return written, fmt.Errorf("unzip %s: %w", path, err)
		}
		if err := extractOne(root, f, name); err != nil {
			return written, fmt.Errorf("unzip %s: %s: %w", path, f.Name, err)
		}
		written = append(written, filepath.Join(dir, name))
	}
	return written, nil
}

func extractOne(root *os.Root, f *zip.File, name string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	// The declared size bounds the copy; one byte more means the header lied.
	n, err := io.Copy(out, io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && uint64(n) > f.UncompressedSize64 {
		err = fmt.Errorf("%w: more data than its declared %d bytes", ErrUnsafeArchive, f.UncompressedSize64)
	}
	return err
}
