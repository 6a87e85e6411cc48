package embed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// MaxIDBytes bounds an item id (the same limit as events.MaxIDBytes).
const MaxIDBytes = 256

// Result is the outcome for one file of EmbedFiles.
type Result struct {
	Path   string
	ID     string    // ItemID(Path)
	Vector []float32 // Dim values; nil when Err is set
	Err    error     // an *ImageError: the file was skipped
}

// Stats summarises an EmbedFiles run.
type Stats struct {
	Files    int            // files given
	Embedded int            // files that got a vector
	Skipped  map[string]int // files skipped, by ImageError reason
	Elapsed  time.Duration  // wall time of the run
}

// SkippedTotal is the number of files skipped for any reason.
func (s Stats) SkippedTotal() int {
	n := 0
	for _, k := range s.Skipped {
		n += k
	}
	return n
}

// PerSecond is the embedding throughput: files embedded per second of wall time.
func (s Stats) PerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Embedded) / s.Elapsed.Seconds()
}

// String is a one-line summary, e.g. "2943 images embedded in 48.1s (61.2 images/s); 2
// skipped: 1 corrupt, 1 not_image".
func (s Stats) String() string {
	str := fmt.Sprintf("%d images embedded in %.1fs (%.1f images/s)", s.Embedded, s.Elapsed.Seconds(), s.PerSecond())
	if n := s.SkippedTotal(); n > 0 {
		str += fmt.Sprintf("; %d skipped: %s", n, s.SkippedReasons())
	}
	return str
}

// SkippedReasons lists the skip counts by reason, e.g. "1 corrupt, 1 not_image", or "".
func (s Stats) SkippedReasons() string {
	reasons := make([]string, 0, len(s.Skipped))
	for r, n := range s.Skipped {
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	slices.Sort(reasons)
	for i, r := range reasons {
		reasons[i] = fmt.Sprintf("%d %s", s.Skipped[r], r)
	}
	return strings.Join(reasons, ", ")
}

// ItemID is the item id of an image file: its base name without the last extension
// ("posters/1234.jpg" → "1234").
func ItemID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// checkID applies the item id rules of events.Item: non-empty, at most MaxIDBytes, UTF-8, no
// control bytes.
func checkID(id string) error {
	switch {
	case id == "" || id == "." || id == string(filepath.Separator):
		return errors.New("empty item id")
	case len(id) > MaxIDBytes:
		return fmt.Errorf("item id longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(id):
		return errors.New("item id is not valid UTF-8")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return fmt.Errorf("item id contains control byte 0x%02x", id[i])
		}
	}
	return nil
}

// ListImages expands args into files: a directory stands for the regular files directly in
// it (not recursive; names starting with "." are left out), a file for itself. Files of one
// directory are ordered by item id, numerically when both ids are decimal integers ("2" before
// "10", as the reference features are), else bytewise. Missing paths are an error; a file that
// is no image is not filtered here (EmbedFiles skips and counts it).
func ListImages(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		var files []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !(e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0) {
				continue
			}
			files = append(files, filepath.Join(a, e.Name()))
		}
		slices.SortFunc(files, func(x, y string) int { return compareIDs(ItemID(x), ItemID(y), x, y) })
		out = append(out, files...)
	}
	return out, nil
}

func compareIDs(a, b, pa, pb string) int {
	na, ea := strconv.ParseUint(a, 10, 64)
	nb, eb := strconv.ParseUint(b, 10, 64)
	if ea == nil && eb == nil && na != nb {
		return cmp.Compare(na, nb)
	}
	if c := strings.Compare(a, b); c != 0 {
		return c
	}
	return strings.Compare(pa, pb)
}

// FilesOptions tune EmbedFiles.
type FilesOptions struct {
	// Decoders is the number of goroutines decoding and preprocessing one batch; default
	// GOMAXPROCS, at most the batch size.
	Decoders int
}

// chunk is one batch on its way from the decoders to inference.
type chunk struct {
	results []Result  // one per file, Err set for skipped files
	input   []float32 // preprocessed images of the files without Err, in order
	n       int       // number of images in input
}

// EmbedFiles embeds the images at paths, BatchSize at a time, and calls emit once per path, in
// the order of paths, with its vector or the reason it was skipped (unreadable, not an image,
// corrupt, too large, an invalid item id, or a second file for an id already seen). Bad files
// never stop the run. Decoding and preprocessing of the next batch overlap inference on the
// current one.
//
// EmbedFiles stops at the first error of inference or of emit, or when ctx is done, and
// returns it with the Stats so far. emit is called from the calling goroutine, and its
// Result.Vector is the caller's to keep. All goroutines it starts have ended when it returns.
func (e *Embedder) EmbedFiles(ctx context.Context, paths []string, opts FilesOptions, emit func(Result) error) (Stats, error) {
	start := time.Now()
	st := Stats{Files: len(paths), Skipped: map[string]int{}}
	bs := e.opts.BatchSize
	dec := opts.Decoders
	if dec <= 0 {
		dec = runtime.GOMAXPROCS(0)
	}
	dec = min(dec, bs)

	// Item ids are checked up front, in order, so that "duplicate" means "a later file".
	pre := make([]error, len(paths))
	seen := make(map[string]string, len(paths))
	for i, p := range paths {
		id := ItemID(p)
		if err := checkID(id); err != nil {
			pre[i] = &ImageError{Path: p, Reason: ReasonBadID, Err: err}
		} else if first, dup := seen[id]; dup {
			pre[i] = &ImageError{Path: p, Reason: ReasonDuplicate, Err: fmt.Errorf("item %s already comes from %s", id, first)}
		} else {
			seen[id] = p
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2)
	free := make(chan []float32, 3) // input buffers cycle: two queued, one in inference
	for range cap(free) {
		free <- make([]float32, bs*InputLen)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		for lo := 0; lo < len(paths); lo += bs {
			var buf []float32
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			hi := min(lo+bs, len(paths))
			c := decodeChunk(paths[lo:hi], pre[lo:hi], buf, dec)
			select {
			case chunks <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: the producer sees it and ends

	for c := range chunks {
		if err := ctx.Err(); err != nil {
			st.Elapsed = time.Since(start)
			return st, err
		}
		var vecs [][]float32
		if c.n > 0 {
			var err error
			if vecs, err = e.Embed(c.input[:c.n*InputLen]); err != nil {
				st.Elapsed = time.Since(start)
				return st, err
			}
		}
		free <- c.input
		for i := range c.results {
			r := &c.results[i]
			if r.Err != nil {
				st.Skipped[ReasonOf(r.Err)]++
			} else {
				r.Vector, vecs = vecs[0], vecs[1:]
				st.Embedded++
			}
			if err := emit(*r); err != nil {
				st.Elapsed = time.Since(start)
				return st, err
			}
		}
	}
	st.Elapsed = time.Since(start)
	return st, ctx.Err()
}

// decodeChunk decodes and preprocesses paths with dec goroutines; the images that succeed are
// packed into buf in order.
func decodeChunk(paths []string, pre []error, buf []float32, dec int) chunk {
	c := chunk{results: make([]Result, len(paths)), input: buf}
	slots := make([][]float32, len(paths)) // per file, its region of buf before packing
	for i, p := range paths {
		c.results[i] = Result{Path: p, ID: ItemID(p), Err: pre[i]}
		slots[i] = buf[i*InputLen : (i+1)*InputLen]
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range dec {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(paths); i = int(next.Add(1) - 1) {
				if c.results[i].Err != nil {
					continue
				}
				img, err := DecodeFile(paths[i])
				if err == nil {
					err = PreprocessInto(slots[i], img)
				}
				c.results[i].Err = err
			}
		}()
	}
	wg.Wait()
	for i := range paths {
		if c.results[i].Err == nil {
			if c.n != i {
				copy(buf[c.n*InputLen:(c.n+1)*InputLen], slots[i])
			}
			c.n++
		}
	}
	return c
}
