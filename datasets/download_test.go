package datasets

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type zipEntry struct {
	name, body string
	mode       os.FileMode
}

func buildZip(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archiveServer serves body as /ml-100k.zip with Range support, counting requests and the
// bytes sent; failOnce makes the first request break off after half the body.
type archiveServer struct {
	*httptest.Server
	requests, sent atomic.Int64
	failOnce       atomic.Bool
}

func newArchiveServer(t *testing.T, body []byte) *archiveServer {
	s := &archiveServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.URL.Path != "/ml-100k.zip" {
			http.NotFound(w, r)
			return
		}
		if s.failOnce.CompareAndSwap(true, false) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			s.sent.Add(int64(len(body) / 2))
			return // shorter than Content-Length: the server drops the connection
		}
		cw := &countingWriter{ResponseWriter: w, n: &s.sent}
		http.ServeContent(cw, r, "ml-100k.zip", time.Unix(0, 0), bytes.NewReader(body))
	}))
	t.Cleanup(s.Close)
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func md5Hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func sampleArchive(t *testing.T) []byte {
	return buildZip(t,
		zipEntry{name: "ml-100k/"},
		zipEntry{name: "ml-100k/u.data", body: "1\t10\t4\t1000\n2\t10\t3\t999\n"},
		zipEntry{name: "ml-100k/README", body: strings.Repeat("readme ", 5000)},
	)
}

func TestDownloadVerifiesAndUnpacks(t *testing.T) {
	body := sampleArchive(t)
	srv := newArchiveServer(t, body)
	dir := t.TempDir()
	var progress bytes.Buffer
	opts := DownloadOptions{BaseURL: srv.URL, MD5: md5Hex(body), SHA256: sha256Hex(body), Progress: &progress}
	res, err := Download(context.Background(), "ml-100k", dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != filepath.Join(dir, "ml-100k") || strings.Join(res.Verified, ",") != "md5,sha256" || res.Fetched != int64(len(body)) {
		t.Fatalf("result %+v", res)
	}
	ds, err := LoadMovieLens(filepath.Join(res.Dir, "u.data"))
	if err != nil || len(ds.Interactions) != 2 {
		t.Fatalf("unpacked data: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ml-100k.zip")); !os.IsNotExist(err) {
		t.Errorf("the zip was kept: %v", err)
	}
	if progress.Len() == 0 {
		t.Error("no progress bar drawn")
	}
	// A second download of a verified archive does not touch the network.
	before := srv.requests.Load()
	if _, err := Download(context.Background(), "100k", dir, opts); err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != before {
		t.Error("the second download fetched again")
	}
}

func TestDownloadChecksumMismatch(t *testing.T) {
	body := sampleArchive(t)
	srv := newArchiveServer(t, body)
	dir := t.TempDir()
	_, err := Download(context.Background(), "ml-100k", dir, DownloadOptions{BaseURL: srv.URL, SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), sha256Hex(body)) {
		t.Fatalf("err = %v, want ErrChecksum naming the actual digest", err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("left behind after a mismatch: %v", left)
	}
	// The registry's own digest (GroupLens' MD5 of the real ml-100k.zip) fails too.
	_, err = Download(context.Background(), "ml-100k", dir, DownloadOptions{BaseURL: srv.URL})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "0e33842e24a9c977be4e0107933c0723") {
		t.Fatalf("err = %v, want a mismatch with the registry's md5", err)
	}
}

func TestDownloadResumes(t *testing.T) {
	body := sampleArchive(t)
	srv := newArchiveServer(t, body)
	dir := t.TempDir()
	opts := DownloadOptions{BaseURL: srv.URL, MD5: md5Hex(body), KeepZip: true}
	srv.failOnce.Store(true)
	if _, err := Download(context.Background(), "ml-100k", dir, opts); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted download: err = %v", err)
	}
	part := filepath.Join(dir, "ml-100k.zip.part")
	fi, err := os.Stat(part)
	if err != nil || fi.Size() != int64(len(body)/2) {
		t.Fatalf("part file after the break: %v (size %d of %d)", err, fi.Size(), len(body))
	}
	if _, err := os.Stat(filepath.Join(dir, "ml-100k.zip")); !os.IsNotExist(err) {
		t.Fatal("an incomplete download has the final name")
	}
	srv.sent.Store(0)
	res, err := Download(context.Background(), "ml-100k", dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != int64(len(body)/2) || res.Fetched != int64(len(body)-len(body)/2) || srv.sent.Load() != res.Fetched {
		t.Errorf("resumed %d + fetched %d (server sent %d), body %d", res.Resumed, res.Fetched, srv.sent.Load(), len(body))
	}
	if got, err := os.ReadFile(filepath.Join(dir, "ml-100k.zip")); err != nil || !bytes.Equal(got, body) {
		t.Errorf("kept zip differs from the served one: %v", err)
	}
}

func TestDownloadHTTPError(t *testing.T) {
	srv := newArchiveServer(t, nil)
	_, err := FetchFile(context.Background(), srv.URL+"/missing.zip", filepath.Join(t.TempDir(), "x.zip"), Digests{}, DownloadOptions{})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Download(context.Background(), "ml-5", t.TempDir(), DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "ml-latest-small") {
		t.Fatalf("unknown name: err = %v", err)
	}
}

func TestUnzipRejectsUnsafeEntries(t *testing.T) {
	tests := []struct {
		name  string
		entry zipEntry
	}{
		{"parent", zipEntry{name: "../evil.txt", body: "x"}},
		{"nested parent", zipEntry{name: "ml-100k/../../evil.txt", body: "x"}},
		{"absolute", zipEntry{name: "/tmp/evil.txt", body: "x"}},
		{"symlink", zipEntry{name: "ml-100k/link", body: "/etc/passwd", mode: os.ModeSymlink | 0o777}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			body := buildZip(t, zipEntry{name: "ml-100k/u.data", body: "1\t2\t3\t4\n"}, tt.entry)
			zp := filepath.Join(parent, "a.zip")
			os.WriteFile(zp, body, 0o644)
			_, err := Unzip(zp, dir)
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("err = %v, want ErrUnsafeArchive", err)
			}
			if _, err := os.Stat(filepath.Join(parent, "evil.txt")); !os.IsNotExist(err) {
				t.Fatal("an entry escaped the target folder")
			}
			if _, err := os.Stat(filepath.Join(dir, "ml-100k", "u.data")); !os.IsNotExist(err) {
				t.Error("a rejected archive was partly unpacked")
			}
		})
	}
	// Through Download: the same rejection, after a good checksum.
	body := buildZip(t, zipEntry{name: "ml-100k/u.data", body: "1\t2\t3\t4\n"}, zipEntry{name: "../evil.txt", body: "x"})
	srv := newArchiveServer(t, body)
	parent := t.TempDir()
	_, err := Download(context.Background(), "ml-100k", filepath.Join(parent, "data"), DownloadOptions{BaseURL: srv.URL, MD5: md5Hex(body)})
	if !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("Download: err = %v, want ErrUnsafeArchive", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "evil.txt")); !os.IsNotExist(err) {
		t.Fatal("an entry escaped the target folder")
	}
}

func TestUnzipThroughSymlinkInTarget(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	outside := filepath.Join(parent, "outside")
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(outside, 0o755)
	if err := os.Symlink(outside, filepath.Join(dir, "ml-100k")); err != nil {
		t.Skip(err)
	}
	zp := filepath.Join(parent, "a.zip")
	os.WriteFile(zp, buildZip(t, zipEntry{name: "ml-100k/u.data", body: "x"}), 0o644)
	if _, err := Unzip(zp, dir); err == nil {
		t.Error("Unzip wrote through a symbolic link that leaves the target folder")
	}
	if _, err := os.Stat(filepath.Join(outside, "u.data")); !os.IsNotExist(err) {
		t.Fatal("a file landed outside the target folder")
	}
}

func TestRegistry(t *testing.T) {
	for _, a := range Archives() {
		if a.MD5 == "" && a.SHA256 == "" {
			t.Errorf("%s has no digest", a.Name)
		}
		if len(a.MD5) != 0 && len(a.MD5) != 32 || len(a.SHA256) != 0 && len(a.SHA256) != 64 {
			t.Errorf("%s: malformed digest", a.Name)
		}
		if !strings.HasSuffix(a.File, ".zip") || a.Root == "" {
			t.Errorf("%+v", a)
		}
	}
	for _, name := range []string{"ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "1M"} {
		if _, err := LookupArchive(name); err != nil {
			t.Error(err)
		}
	}
}
