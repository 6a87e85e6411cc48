package datasets

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ErrChecksum is wrapped by the error of a download whose digest differs from the
// expected one; the downloaded file has been deleted.
var ErrChecksum = errors.New("checksum mismatch")

// DownloadOptions say where and how Download fetches. The zero value fetches from
// DefaultBaseURL with a fresh http.Client, without a progress bar.
type DownloadOptions struct {
	// BaseURL replaces DefaultBaseURL (tests point it at an httptest.Server; mirrors).
	BaseURL string
	// Client does the requests; nil means an http.Client without a timeout (the context
	// bounds the download).
	Client *http.Client
	// Progress, when set, receives a progress bar.
	Progress io.Writer
	// SHA256 and MD5, when set, replace the registry's digests (both of them: set one to
	// verify only that one).
	SHA256, MD5 string
	// KeepZip keeps the archive next to the unpacked folder (default: delete it once
	// unpacked).
	KeepZip bool
}

// DownloadResult says what Download did.
type DownloadResult struct {
	Dir      string   // the unpacked data set, dir/<Root>
	Verified []string // the digests checked ("md5", "sha256"); empty: none was known
	Resumed  int64    // bytes of an earlier partial download that were kept
	Fetched  int64    // bytes transferred now
}

// Download fetches the registry's archive name into dir, verifies every known digest and
// unpacks it there (see Unzip), returning the unpacked folder. A folder that a verified
// Download of the same archive unpacked before is returned as it is.
//
// The archive is written to dir/<file>.part and renamed only once complete and verified,
// so an interrupted download never leaves a file that looks whole; a later call resumes
// the .part file with an HTTP Range request when the server allows it (else starts over).
// A digest mismatch deletes the download and returns an error wrapping ErrChecksum.
func Download(ctx context.Context, name, dir string, opts DownloadOptions) (DownloadResult, error) {
	a, err := LookupArchive(name)
	if err != nil {
		return DownloadResult{}, err
	}
	if opts.SHA256 != "" || opts.MD5 != "" {
		a.SHA256, a.MD5, a.Checked = opts.SHA256, opts.MD5, true
	}
	base := opts.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.JoinPath(base, a.File)
	if err != nil {
		return DownloadResult{}, fmt.Errorf("download %s: base URL %q: %w", a.Name, base, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return DownloadResult{}, fmt.Errorf("download %s: %w", a.Name, err)
	}
	res := DownloadResult{Dir: filepath.Join(dir, a.Root)}
	marker := filepath.Join(res.Dir, downloadMarker)
	stamp := a.File + " md5:" + a.MD5 + " sha256:" + a.SHA256 + "\n"
	if b, err := os.ReadFile(marker); err == nil && string(b) == stamp && (a.MD5 != "" || a.SHA256 != "") {
		res.Verified = []string{"earlier download"}
		return res, nil
	}
	zipPath := filepath.Join(dir, a.File)
	fr, err := FetchFile(ctx, u, zipPath, Digests{SHA256: a.SHA256, MD5: a.MD5}, opts)
	res.Verified, res.Resumed, res.Fetched = fr.Verified, fr.Resumed, fr.Fetched
	if err != nil {
		if errors.Is(err, ErrChecksum) && !a.Checked {
			err = fmt.Errorf("%w (the registry's digest of %s is unverified; GroupLens may have published a new version: check it and pass the new digest explicitly)", err, a.Name)
		}
		return res, fmt.Errorf("download %s: %w", a.Name, err)
	}
	if _, err := Unzip(zipPath, dir); err != nil {
		return res, fmt.Errorf("download %s: %w", a.Name, err)
	}
	if !isDir(res.Dir) {
		return res, fmt.Errorf("download %s: the archive did not unpack into %s", a.Name, res.Dir)
	}
	if len(res.Verified) > 0 {
		if err := os.WriteFile(marker, []byte(stamp), 0o644); err != nil {
			return res, fmt.Errorf("download %s: %w", a.Name, err)
		}
	}
	if !opts.KeepZip {
		os.Remove(zipPath)
	}
	return res, nil
}

// downloadMarker, written into the unpacked folder after a verified download, lets a
// second Download of the same archive return at once.
const downloadMarker = ".visrec-download"

// Digests are expected hex digests of a file; empty ones are not checked.
type Digests struct{ SHA256, MD5 string }

// FetchFile downloads url to dst through dst+".part" (resumed when present and the server
// honours Range), verifies the digests, and renames the part file to dst. When dst exists
// already and matches the digests, nothing is fetched. A mismatch deletes the part file.
func FetchFile(ctx context.Context, url, dst string, want Digests, opts DownloadOptions) (DownloadResult, error) {
	var res DownloadResult
	if _, err := os.Stat(dst); err == nil && (want.SHA256 != "" || want.MD5 != "") {
		if names, err := verifyFile(dst, want); err == nil {
			res.Verified = names
			return res, nil
		}
		os.Remove(dst) // a stale or corrupt copy: fetch it again
	}
	part := dst + ".part"
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	n, fetched, err := fetchPart(ctx, client, url, part, opts.Progress)
	res.Resumed, res.Fetched = n, fetched
	if err != nil {
		return res, err
	}
	names, err := verifyFile(part, want)
	if err != nil {
		os.Remove(part)
		return res, err
	}
	res.Verified = names
	if err := os.Rename(part, dst); err != nil {
		return res, fmt.Errorf("finish download: %w", err)
	}
	return res, nil
}

// fetchPart appends the rest of url to part, resuming from its current size. It returns
// the bytes kept from before and those fetched now.
func fetchPart(ctx context.Context, client *http.Client, url, part string, progress io.Writer) (kept, fetched int64, err error) {
	if fi, err := os.Stat(part); err == nil {
		kept = fi.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	if kept > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(kept, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	switch {
	case resp.StatusCode == http.StatusPartialContent && kept > 0 && strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", kept)):
		flags |= os.O_APPEND
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && kept > 0:
		return kept, 0, nil // the part file is complete already; the digests will tell
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC
		kept = 0
	default:
		return 0, 0, fmt.Errorf("fetch %s: HTTP %s", url, resp.Status)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return kept, 0, fmt.Errorf("download: %w", err)
	}
	var w io.Writer = f
	if progress != nil {
		total := int64(-1)
		if resp.ContentLength >= 0 {
			total = kept + resp.ContentLength
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription(filepath.Base(strings.TrimSuffix(part, ".part"))),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetSpinnerChangeInterval(0),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }),
		)
		bar.Set64(kept)
		defer bar.Finish()
		w = io.MultiWriter(f, bar)
	}
	fetched, err = io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return kept, fetched, fmt.Errorf("fetch %s: %w (run again to resume)", url, err)
	}
	if resp.ContentLength >= 0 && fetched != resp.ContentLength {
		return kept, fetched, fmt.Errorf("fetch %s: got %d of %d bytes (run again to resume)", url, fetched, resp.ContentLength)
	}
	return kept, fetched, nil
}

// verifyFile checks the digests of path, returning the names of those checked.
func verifyFile(path string, want Digests) ([]string, error) {
	type check struct {
		name, want string
		h          hash.Hash
	}
	var checks []check
	if want.MD5 != "" {
		checks = append(checks, check{"md5", want.MD5, md5.New()})
	}
	if want.SHA256 != "" {
		checks = append(checks, check{"sha256", want.SHA256, sha256.New()})
	}
	if len(checks) == 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	ws := make([]io.Writer, len(checks))
	for i := range checks {
		ws[i] = checks[i].h
	}
	if _, err := io.Copy(io.MultiWriter(ws...), f); err != nil {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	var names []string
	for _, c := range checks {
		got := hex.EncodeToString(c.h.Sum(nil))
		if !strings.EqualFold(got, strings.TrimSpace(c.want)) {
			return nil, fmt.Errorf("%w: %s of %s is %s, want %s (the download was deleted)", ErrChecksum, c.name, filepath.Base(strings.TrimSuffix(path, ".part")), got, c.want)
		}
		names = append(names, c.name)
	}
	return names, nil
}
