package datasets

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
	"github.com/visrec/visrec/producers"
)

// postersDir is ../shared/data/movielens-posters seen from this package's folder.
const postersDir = "../../shared/data/movielens-posters"

// requirePosters skips (or, with CI set, fails) when the shared data is missing.
func requirePosters(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(postersDir, "ratings.csv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and the MovieLens posters data is missing: %v", err)
		}
		t.Skipf("MovieLens posters data not found (%v); set CI to make this a failure", err)
	}
	return postersDir
}

func TestLoadMovieLensPosters(t *testing.T) {
	dir := requirePosters(t)
	ds, err := LoadMovieLensPosters(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := ds.Stats()
	if s.Interactions != 100_836 || s.Users != 610 || s.Items != 9_724 {
		t.Fatalf("got %d ratings, %d users, %d items; want 100,836, 610, 9,724", s.Interactions, s.Users, s.Items)
	}
	if s.ByType[events.Rating] != s.Interactions {
		t.Errorf("%d of %d interactions are ratings", s.ByType[events.Rating], s.Interactions)
	}
	if s.FeatureDim != PosterFeatureDim || s.ItemsWithFeatures != 2_943 || len(ds.Features) != len(ds.Items) {
		t.Fatalf("features: dim %d, %d items, %d rows for %d items; want 1280, 2,943", s.FeatureDim, s.ItemsWithFeatures, len(ds.Features), len(ds.Items))
	}
	// 1996-03-29 to 2018-09-24, per README.txt.
	if got := fmtMillis(s.MinTS)[:10]; got != "1996-03-29" {
		t.Errorf("first rating %s, want 1996-03-29", got)
	}
	if got := fmtMillis(s.MaxTS)[:10]; got != "2018-09-24" {
		t.Errorf("last rating %s, want 2018-09-24", got)
	}
	for i := 1; i < len(ds.Interactions); i++ {
		if ds.Interactions[i].TS < ds.Interactions[i-1].TS {
			t.Fatalf("interaction %d is earlier than %d", i, i-1)
		}
	}

	// The features of each id are the row of the .f32 file at that id's line.
	idb, err := os.ReadFile(filepath.Join(dir, PosterIDsFile))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, PosterFeaturesFile))
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(string(idb))
	index := ds.ItemIndex()
	for _, row := range []int{0, 1, 1000, len(ids) - 1} {
		j, ok := index[ids[row]]
		if !ok {
			t.Fatalf("feature id %s (row %d) is no item", ids[row], row)
		}
		for _, c := range []int{0, 7, 1279} {
			want := math.Float32frombits(binary.LittleEndian.Uint32(raw[(row*1280+c)*4:]))
			if got := ds.Features[j][c]; got != want {
				t.Errorf("item %s feature %d = %v, want %v", ids[row], c, got, want)
			}
		}
		if p := ds.PosterPath(j); filepath.Base(p) != ids[row]+".jpg" {
			t.Errorf("poster of %s is %q", ids[row], p)
		}
	}
	withPoster := 0
	for j := range ds.Items {
		hasF, hasP := ds.Features[j] != nil, ds.PosterPath(int32(j)) != ""
		if hasF != hasP {
			t.Errorf("item %s: features %v, poster %v", ds.Items[j], hasF, hasP)
		}
		if hasP {
			withPoster++
		}
	}
	if withPoster != 2_943 {
		t.Errorf("%d items with a poster, want 2,943", withPoster)
	}

	toy := index["1"]
	if got := ds.Meta(toy, "title"); got != "Toy Story (1995)" {
		t.Errorf("title of movie 1 = %q", got)
	}
	if got := ds.Meta(toy, "genres"); got != "Adventure|Animation|Children|Comedy|Fantasy" {
		t.Errorf("genres of movie 1 = %q", got)
	}
	if got := ds.Meta(toy, "imdb"); got != "0114709" {
		t.Errorf("imdb of movie 1 = %q", got)
	}
	if ds.Meta(index["60756"], "tag_count") == "" {
		t.Errorf("movie 60756 has tags in tags.csv but no tag_count")
	}
}

func TestLoadMovieLensFormats(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"ratings.csv": "userId,movieId,rating,timestamp\n1,10,4.5,1000\n2,10,3,999\n1,20,1,1001\n",
		"u.data":      "1\t10\t4\t1000\n2\t10\t3\t999\n1\t20\t1\t1001\n",
		"ratings.dat": "1::10::4::1000\n2::10::3::999\n1::20::1::1001\n",
	}
	for name, text := range files {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			ds, err := LoadMovieLens(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Interactions) != 3 || len(ds.Users) != 2 || len(ds.Items) != 2 {
				t.Fatalf("got %d interactions, %d users, %d items", len(ds.Interactions), len(ds.Users), len(ds.Items))
			}
			first := ds.Interactions[0]
			if ds.Users[first.User] != "2" || first.TS != 999_000 || first.Value != 3 || first.Type != events.Rating {
				t.Errorf("first interaction %+v (user %s), want user 2 at 999 s rating 3", first, ds.Users[first.User])
			}
		})
	}
}

func TestLoadMovieLensMalformed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ratings.csv")
	os.WriteFile(p, []byte("userId,movieId,rating,timestamp\n1,10,4.5,1000\n1,11,x,1000\n"), 0o644)
	_, err := LoadMovieLens(p)
	if err == nil || !strings.Contains(err.Error(), "ratings.csv:3") {
		t.Fatalf("err = %v, want one naming ratings.csv:3", err)
	}
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, producers.ErrBadLine) {
		t.Errorf("err %v matches neither ErrMalformed nor producers.ErrBadLine", err)
	}
	var skipped []error
	ds, err := LoadMovieLensWith(p, ReadOptions{OnBad: func(err error) error { skipped = append(skipped, err); return nil }})
	if err != nil || len(ds.Interactions) != 1 || len(skipped) != 1 {
		t.Fatalf("skipping: %v, %d interactions, %d skipped; want 1 and 1", err, len(ds.Interactions), len(skipped))
	}
}

func TestLoadMovieLensDirMetadata(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		title string
		genre string
	}{
		{"ml-latest", map[string]string{
			"ratings.csv": "userId,movieId,rating,timestamp\n1,10,4,1000\n",
			"movies.csv":  "movieId,title,genres\n10,\"GoldenEye, The (1995)\",Action|Thriller\n11,Unrated (2000),Drama\n",
			"links.csv":   "movieId,imdbId,tmdbId\n10,0113189,710\n",
			"tags.csv":    "userId,movieId,tag,timestamp\n1,10,bond,1\n2,10,\"spy, british\",2\n",
		}, "GoldenEye, The (1995)", "Action|Thriller"},
		{"ml-1m", map[string]string{
			"ratings.dat": "1::10::4::1000\n",
			"movies.dat":  "10::Mis\xe9rables, Les (1995)::Drama|War\n",
		}, "Misérables, Les (1995)", "Drama|War"},
		{"ml-100k", map[string]string{
			"u.data": "1\t10\t4\t1000\n",
			"u.item": "10|Richard III (1995)|22-Jan-1996||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0\n",
		}, "Richard III (1995)", "Drama|War"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.name)
			os.Mkdir(dir, 0o755)
			for name, text := range tt.files {
				os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
			}
			ds, err := LoadMovieLensDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if ds.Name != tt.name || len(ds.Items) != 1 || len(ds.ItemMeta) != 1 {
				t.Fatalf("name %q, %d items, %d metadata rows", ds.Name, len(ds.Items), len(ds.ItemMeta))
			}
			if got := ds.Meta(0, "title"); got != tt.title {
				t.Errorf("title %q, want %q", got, tt.title)
			}
			if got := ds.Meta(0, "genres"); got != tt.genre {
				t.Errorf("genres %q, want %q", got, tt.genre)
			}
			if tt.name == "ml-latest" && (ds.Meta(0, "tag_count") != "2" || ds.Meta(0, "tmdb") != "710") {
				t.Errorf("meta %v", ds.ItemMeta[0])
			}
		})
	}
}

func TestLoadMovieLensDirBadMetadata(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ratings.csv"), []byte("userId,movieId,rating,timestamp\n1,10,4,1000\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "movies.csv"), []byte("movieId,title,genres\n10,\"Open quote,Drama\n"), 0o644)
	_, err := LoadMovieLensDir(dir)
	if err == nil || !strings.Contains(err.Error(), "movies.csv:2") || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want a malformed-file error naming movies.csv:2", err)
	}
}
