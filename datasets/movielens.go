package datasets

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MovieLens ratings files, in the order LoadMovieLensDir looks for them.
var movieLensRatingFiles = [...]string{"ratings.csv", "u.data", "ratings.dat"}

// Poster features of ../shared/data/movielens-posters (see its features/README.md).
const (
	PosterFeaturesFile = "features/mobilenetv2_avgpool.f32"
	PosterIDsFile      = "features/mobilenetv2_avgpool.ids"
	PosterFeatureDim   = 1280
)

// LoadMovieLensDir reads an unpacked MovieLens archive: its ratings (ratings.csv of
// ml-latest, ml-latest-small, ml-20m and ml-25m; u.data of ml-100k; ratings.dat of ml-1m
// and ml-10m; see LoadMovieLens) and whatever item metadata it has, into Dataset.ItemMeta:
// "title" and "genres" (pipe-separated) from movies.csv, movies.dat or u.item; "imdb" and
// "tmdb" from links.csv; "tag_count" (tag applications) from tags.csv. Items are the rated
// movies only, in order of their first rating; metadata of movies nobody rated is dropped.
// Latin-1 files (ml-100k, ml-1m) are converted to UTF-8.
func LoadMovieLensDir(dir string) (*Dataset, error) {
	var ratings string
	for _, f := range movieLensRatingFiles {
		if p := filepath.Join(dir, f); fileExists(p) {
			ratings = p
			break
		}
	}
	if ratings == "" {
		return nil, fmt.Errorf("%s holds no MovieLens ratings file (%s)", dir, strings.Join(movieLensRatingFiles[:], ", "))
	}
	ds, err := LoadMovieLens(ratings)
	if err != nil {
		return nil, err
	}
	ds.Name = filepath.Base(filepath.Clean(dir))
	index := ds.ItemIndex()
	meta := []struct {
		file string
		read func(*Dataset, map[string]int32, string) error
	}{
		{"movies.csv", readMoviesCSV},
		{"movies.dat", readMoviesDat},
		{"u.item", readUItem},
		{"links.csv", readLinksCSV},
		{"tags.csv", readTagsCSV},
	}
	for _, m := range meta {
		if p := filepath.Join(dir, m.file); fileExists(p) {
			if err := m.read(ds, index, p); err != nil {
				return nil, err
			}
		}
	}
	return ds, nil
}

// LoadMovieLensPosters reads ../shared/data/movielens-posters (ml-latest-small with movie
// posters and MobileNetV2 features; see its README.txt and features/README.md): what
// LoadMovieLensDir reads, plus, per rated movie, "poster" in ItemMeta (the path of
// posters/{movieId}.jpg, when it exists; see Dataset.PosterPath) and the 1280-dimensional
// poster features as Features (nil for movies without a poster). The feature files are
// required; feature rows of unrated movies would be ignored (there are none).
func LoadMovieLensPosters(dir string) (*Dataset, error) {
	ds, err := LoadMovieLensDir(dir)
	if err != nil {
		return nil, err
	}
	ds.Name = "movielens-posters"
	ids, m, err := LoadRawFeatures(filepath.Join(dir, PosterFeaturesFile), filepath.Join(dir, PosterIDsFile), PosterFeatureDim)
	if err != nil {
		return nil, err
	}
	if _, err := AttachFeatures(ds, m, ids, filepath.Join(dir, PosterFeaturesFile)); err != nil {
		return nil, err
	}
	posters, err := os.ReadDir(filepath.Join(dir, "posters"))
	if err != nil {
		return nil, fmt.Errorf("movielens posters: %w", err)
	}
	index := ds.ItemIndex()
	for _, e := range posters {
		id, ok := strings.CutSuffix(e.Name(), ".jpg")
		if j, known := index[id]; ok && known && !e.IsDir() {
			ds.SetMeta(j, "poster", filepath.Join(dir, "posters", e.Name()))
		}
	}
	return ds, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// readHeaderCSV reads a MovieLens CSV whose header is want, calling row for each record
// with its line number. Records of another field count are errors naming the line.
func readHeaderCSV(path, want string, row func(rec []string, line int) error) error {
	r, closeFn, err := openInput(path)
	if err != nil {
		return err
	}
	defer closeFn()
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return csvErr(path, err)
	}
	head[0] = strings.TrimPrefix(head[0], "\ufeff")
	if strings.Join(head, ",") != want {
		return lineErr(path, 1, "header %q, want %q", strings.Join(head, ","), want)
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvErr(path, err)
		}
		line, _ := cr.FieldPos(0)
		if err := row(rec, line); err != nil {
			return lineErr(path, line, "%v", err)
		}
	}
}

func csvErr(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return lineErr(path, pe.Line, "%v", pe.Err)
	}
	if err == io.EOF {
		return lineErr(path, 1, "empty file, want a header")
	}
	return fmt.Errorf("read %s: %w", path, err)
}

func readMoviesCSV(ds *Dataset, index map[string]int32, path string) error {
	return readHeaderCSV(path, "movieId,title,genres", func(rec []string, _ int) error {
		if j, ok := index[rec[0]]; ok {
			ds.SetMeta(j, "title", rec[1])
			ds.SetMeta(j, "genres", rec[2])
		}
		return nil
	})
}

func readLinksCSV(ds *Dataset, index map[string]int32, path string) error {
	return readHeaderCSV(path, "movieId,imdbId,tmdbId", func(rec []string, _ int) error {
		if j, ok := index[rec[0]]; ok {
			ds.SetMeta(j, "imdb", rec[1])
			if rec[2] != "" {
				ds.SetMeta(j, "tmdb", rec[2])
			}
		}
		return nil
	})
}

func readTagsCSV(ds *Dataset, index map[string]int32, path string) error {
	counts := make(map[int32]int)
	err := readHeaderCSV(path, "userId,movieId,tag,timestamp", func(rec []string, _ int) error {
		if j, ok := index[rec[1]]; ok {
			counts[j]++
		}
		return nil
	})
	for j, n := range counts {
		ds.SetMeta(j, "tag_count", strconv.Itoa(n))
	}
	return err
}

// readMoviesDat reads ml-1m/ml-10m movies.dat: MovieID::Title::Genres.
func readMoviesDat(ds *Dataset, index map[string]int32, path string) error {
	return readLines(path, func(line string, n int) error {
		f := strings.Split(line, "::")
		if len(f) != 3 {
			return lineErr(path, n, "%d \"::\"-separated fields, want 3 (MovieID::Title::Genres)", len(f))
		}
		if j, ok := index[f[0]]; ok {
			ds.SetMeta(j, "title", f[1])
			ds.SetMeta(j, "genres", f[2])
		}
		return nil
	})
}

// uItemGenres are the 19 genre flags of ml-100k's u.item, in column order (u.genre).
var uItemGenres = [...]string{"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
	"Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
	"Thriller", "War", "Western"}

// readUItem reads ml-100k's u.item: id|title|release date|video release date|IMDb URL|19 flags.
func readUItem(ds *Dataset, index map[string]int32, path string) error {
	return readLines(path, func(line string, n int) error {
		f := strings.Split(line, "|")
		if len(f) != 5+len(uItemGenres) {
			return lineErr(path, n, "%d \"|\"-separated fields, want %d", len(f), 5+len(uItemGenres))
		}
		j, ok := index[f[0]]
		if !ok {
			return nil
		}
		ds.SetMeta(j, "title", f[1])
		var genres []string
		for k, flag := range f[5:] {
			if flag == "1" {
				genres = append(genres, uItemGenres[k])
			}
		}
		ds.SetMeta(j, "genres", strings.Join(genres, "|"))
		return nil
	})
}

// readLines calls fn with each non-blank line of a small text file, decoding Latin-1 when
// the file is not valid UTF-8.
func readLines(path string, fn func(line string, n int) error) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	s := string(b)
	if !utf8.Valid(b) {
		s = latin1(b)
	}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := fn(line, i+1); err != nil {
			return err
		}
	}
	return nil
}

func latin1(b []byte) string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return string(rs)
}
