package producers

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
)

// Format is the layout of an event log.
type Format int

// Log formats.
const (
	// FormatAuto detects the format from the file name and its first line (see DetectFormat).
	FormatAuto Format = iota
	// FormatMovieLens is any of MovieLens' rating files: ratings.csv (header
	// userId,movieId,rating,timestamp), u.data (tab-separated, no header) and ratings.dat
	// ("::"-separated, no header); the variant is told from the first line. Timestamps are
	// Unix seconds; every line is a rating event with its value.
	FormatMovieLens
	// FormatCSV is a comma-separated file whose header names the columns; see LogOptions
	// for the column names and the timestamp unit.
	FormatCSV
	// FormatJSONL holds one event-schema-v1 JSON object per line.
	FormatJSONL
)

var formatNames = [...]string{FormatAuto: "auto", FormatMovieLens: "movielens", FormatCSV: "csv", FormatJSONL: "jsonl"}

func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// ParseFormat maps "auto", "movielens", "csv" or "jsonl" (case-insensitive) to a Format.
func ParseFormat(s string) (Format, error) {
	for f, n := range formatNames {
		if strings.EqualFold(s, n) {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("unknown log format %q (want auto, movielens, csv or jsonl)", s)
}

// variant is the concrete line layout that a Format resolves to.
type variant int

const (
	varMovieLensCSV   variant = iota + 1 // ratings.csv
	varMovieLensUData                    // u.data
	varMovieLensDat                      // ratings.dat
	varCSV                               // generic CSV with a header
	varJSONL
)

var variantNames = [...]string{
	varMovieLensCSV:   "movielens ratings.csv",
	varMovieLensUData: "movielens u.data",
	varMovieLensDat:   "movielens ratings.dat",
	varCSV:            "csv",
	varJSONL:          "jsonl",
}

func (v variant) String() string { return variantNames[v] }

// movieLensCSVHeader is the header of MovieLens' ratings.csv (ml-latest, ml-25m, ...).
const movieLensCSVHeader = "userId,movieId,rating,timestamp"

// DetectFormat guesses a log's format from its file name (a trailing .gz is ignored) and
// its first line, and says which variant it picked. The rules, in order:
//
//   - name ending .jsonl, .ndjson or .json, or a first line starting with '{': JSONL;
//   - name u.data, or a first line of four tab-separated integers: MovieLens u.data;
//   - name ending .dat, or a first line containing "::": MovieLens ratings.dat;
//   - first line equal to userId,movieId,rating,timestamp: MovieLens ratings.csv;
//   - a first line naming at least the user, item and timestamp columns: generic CSV.
//
// Anything else is an error asking for an explicit format.
func DetectFormat(name string, firstLine []byte) (Format, string, error) {
	v, err := detect(name, firstLine)
	if err != nil {
		return 0, "", err
	}
	return v.format(), v.String(), nil
}

func (v variant) format() Format {
	switch v {
	case varCSV:
		return FormatCSV
	case varJSONL:
		return FormatJSONL
	default:
		return FormatMovieLens
	}
}

func detect(name string, first []byte) (variant, error) {
	base := strings.ToLower(filepath.Base(name))
	base = strings.TrimSuffix(base, ".gz")
	ext := filepath.Ext(base)
	line := bytes.TrimSpace(first)
	switch {
	case ext == ".jsonl" || ext == ".ndjson" || ext == ".json" || bytes.HasPrefix(line, []byte("{")):
		return varJSONL, nil
	case base == "u.data" || looksLikeUData(line):
		return varMovieLensUData, nil
	case ext == ".dat" || bytes.Contains(line, []byte("::")):
		return varMovieLensDat, nil
	case strings.EqualFold(string(line), movieLensCSVHeader):
		return varMovieLensCSV, nil
	}
	if _, err := parseHeader(line); err == nil {
		return varCSV, nil
	}
	return 0, fmt.Errorf("cannot detect the format of %s from its name and first line %q: name the format (movielens, csv or jsonl)", name, truncate(line, 80))
}

// resolve turns an explicit Format into the variant for this file.
func resolve(f Format, name string, first []byte) (variant, error) {
	switch f {
	case FormatAuto:
		return detect(name, first)
	case FormatJSONL:
		return varJSONL, nil
	case FormatCSV:
		return varCSV, nil
	case FormatMovieLens:
		line := bytes.TrimSpace(first)
		switch {
		case bytes.Contains(line, []byte("::")):
			return varMovieLensDat, nil
		case bytes.IndexByte(line, '\t') >= 0:
			return varMovieLensUData, nil
		case bytes.IndexByte(line, ',') >= 0:
			return varMovieLensCSV, nil
		}
		return 0, fmt.Errorf("%s: first line %q is none of MovieLens' layouts (ratings.csv, u.data, ratings.dat)", name, truncate(line, 80))
	}
	return 0, fmt.Errorf("unknown log format %v", f)
}

func looksLikeUData(line []byte) bool {
	f := bytes.Split(line, []byte("\t"))
	if len(f) != 4 {
		return false
	}
	for _, x := range f {
		if !isDigits(x) {
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
