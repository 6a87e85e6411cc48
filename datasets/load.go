package datasets

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/visrec/visrec/producers"
)

// Format names a data set layout that Load reads.
type Format string

// Formats. The first four are the producers package's event logs.
const (
	FormatAuto      Format = "auto"
	FormatMovieLens Format = "movielens" // one MovieLens ratings file (LoadMovieLens)
	FormatCSV       Format = "csv"       // CSV with a header naming its columns (LoadLog)
	FormatJSONL     Format = "jsonl"     // event-schema-v1 JSON lines (LoadLog)
	FormatAmazon    Format = "amazon"    // Amazon review JSON lines (LoadAmazonReviews)
	FormatUIR       Format = "uir"       // Cornac UIR text (LoadUIR)
	FormatMMRec     Format = "mmrec"     // an MMRec folder or .inter file (LoadMMRec, LoadMMRecInter)
	FormatMLDir     Format = "movielens-dir"
	FormatPosters   Format = "posters" // LoadMovieLensPosters
)

// Formats lists the formats Load accepts, for usage messages.
func Formats() []Format {
	return []Format{FormatAuto, FormatMovieLens, FormatCSV, FormatJSONL, FormatAmazon, FormatUIR, FormatMMRec, FormatMLDir, FormatPosters}
}

// ParseFormat checks a format name (case-insensitive).
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown data set format %q (want one of %v)", s, Formats())
}

// LoadOptions say how Load reads a path. The zero value detects the format.
type LoadOptions struct {
	Format Format // "" or FormatAuto: DetectFormat
	ReadOptions
	// Millis says the timestamps are Unix milliseconds (UIR, MMRec: the default is
	// seconds); Seconds says they are seconds (generic CSV: the default is milliseconds).
	// MovieLens, Amazon and JSONL fix their own units.
	Millis, Seconds bool
}

// Load reads the data set at path (a file, or a folder for FormatMMRec, FormatMLDir and
// FormatPosters) with the loader of its format.
func Load(path string, opts LoadOptions) (*Dataset, error) {
	f := opts.Format
	if f == "" || f == FormatAuto {
		var err error
		if f, err = DetectFormat(path); err != nil {
			return nil, err
		}
	}
	switch f {
	case FormatMovieLens:
		return LoadMovieLensWith(path, opts.ReadOptions)
	case FormatCSV, FormatJSONL:
		lo := producers.DefaultLogOptions()
		lo.Format, lo.TimestampSeconds = producers.FormatCSV, opts.Seconds
		if f == FormatJSONL {
			lo.Format = producers.FormatJSONL
		}
		return loadLogReporting(path, lo, opts.ReadOptions)
	case FormatAmazon:
		return LoadAmazonReviews(path, AmazonOptions{ReadOptions: opts.ReadOptions})
	case FormatUIR:
		return LoadUIR(path, UIROptions{ReadOptions: opts.ReadOptions, TimestampMillis: opts.Millis})
	case FormatMMRec:
		mo := MMRecOptions{ReadOptions: opts.ReadOptions, TimestampMillis: opts.Millis}
		if isDir(path) {
			return LoadMMRec(path, mo)
		}
		return LoadMMRecInter(path, mo)
	case FormatMLDir:
		return LoadMovieLensDir(path)
	case FormatPosters:
		return LoadMovieLensPosters(path)
	}
	return nil, fmt.Errorf("unknown data set format %q", f)
}

// DetectFormat guesses the format of path:
//
//   - a folder with features/mobilenetv2_avgpool.f32 and posters/: FormatPosters; with a
//     .inter file: FormatMMRec; with ratings.csv, u.data or ratings.dat: FormatMLDir;
//   - a file ending .inter (before an optional .gz): FormatMMRec;
//   - a file whose first line is a JSON object with Amazon's keys (reviewerID, asin,
//     user_id) and no "type": FormatAmazon;
//   - a file the producers package detects (see producers.DetectFormat): its format;
//   - a file whose first line has 2 to 4 columns separated by tabs, commas or spaces:
//     FormatUIR.
func DetectFormat(path string) (Format, error) {
	if isDir(path) {
		switch {
		case fileExists(filepath.Join(path, PosterFeaturesFile)) && isDir(filepath.Join(path, "posters")):
			return FormatPosters, nil
		case globAny(filepath.Join(path, "*.inter")):
			return FormatMMRec, nil
		}
		for _, f := range movieLensRatingFiles {
			if fileExists(filepath.Join(path, f)) {
				return FormatMLDir, nil
			}
		}
		return "", fmt.Errorf("cannot tell the data set in folder %s: no posters features, .inter or MovieLens ratings file", path)
	}
	base := strings.TrimSuffix(strings.ToLower(filepath.Base(path)), ".gz")
	if strings.HasSuffix(base, ".inter") {
		return FormatMMRec, nil
	}
	first, err := firstLine(path)
	if err != nil {
		return "", err
	}
	if bytes.HasPrefix(first, []byte("{'")) || (bytes.HasPrefix(first, []byte("{")) && !bytes.Contains(first, []byte(`"type"`)) &&
		(bytes.Contains(first, []byte(`"reviewerID"`)) || bytes.Contains(first, []byte(`"asin"`)) || bytes.Contains(first, []byte(`"user_id"`)))) {
		return FormatAmazon, nil
	}
	if pf, _, err := producers.DetectFormat(path, first); err == nil {
		switch pf {
		case producers.FormatMovieLens:
			return FormatMovieLens, nil
		case producers.FormatJSONL:
			return FormatJSONL, nil
		case producers.FormatCSV:
			return FormatCSV, nil
		}
	}
	if n := len(splitUIR(first, detectUIRSep(first), nil)); n >= 2 && n <= 4 {
		return FormatUIR, nil
	}
	return "", fmt.Errorf("cannot detect the format of %s from its name and first line %q: name one of %v", path, truncateBytes(first, 80), Formats()[1:])
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func globAny(pattern string) bool {
	m, _ := filepath.Glob(pattern)
	return len(m) > 0
}

// firstLine returns the first non-blank line of a (possibly gzipped) file.
func firstLine(path string) ([]byte, error) {
	r, closeFn, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadSlice('\n')
		if t := bytes.TrimSpace(bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))); len(t) > 0 {
			return bytes.Clone(t), nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: no line with data in the first %d bytes", path, br.Size())
		}
	}
}
