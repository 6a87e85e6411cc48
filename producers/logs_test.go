package producers

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/visrec/visrec/events"
)

// writeLog writes content to name in a fresh temporary directory and returns its path.
func writeLog(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func rating(user, item string, tsMillis int64, v float32) events.Interaction {
	return events.Interaction{Type: events.Rating, User: user, Item: item, Timestamp: tsMillis, Value: v, HasValue: true}
}

func TestReadLogFormats(t *testing.T) {
	tests := []struct {
		name    string // file name, drives detection
		opts    LogOptions
		content string
		variant string
		want    []events.Interaction // in timestamp order
	}{
		{
			name:    "ratings.csv",
			content: "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n2,10,4.0,835355493\n",
			variant: "movielens ratings.csv",
			want: []events.Interaction{
				rating("2", "10", 835355493000, 4), rating("1", "31", 1260759144000, 2.5), rating("1", "1029", 1260759179000, 3),
			},
		},
		{
			name:    "ratings.csv",
			content: "\ufeffuserId,movieId,rating,timestamp\r\n7,8,0.5,10\r\n\r\n",
			variant: "movielens ratings.csv",
			want:    []events.Interaction{rating("7", "8", 10000, 0.5)},
		},
		{
			name:    "u.data",
			content: "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
			variant: "movielens u.data",
			want: []events.Interaction{
				rating("22", "377", 878887116000, 1), rating("196", "242", 881250949000, 3), rating("186", "302", 891717742000, 3),
			},
		},
		{
			name:    "ratings.dat",
			content: "1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n",
			variant: "movielens ratings.dat",
			want: []events.Interaction{
				rating("1", "1193", 978300760000, 5), rating("1", "914", 978301968000, 3), rating("1", "661", 978302109000, 3),
			},
		},
		{
			name:    "events.csv",
			content: "ts,user,item,type,value,id,extra\n2000,a,x,click,,e1,zzz\n1000,b,\"y,1\",PURCHASE,9.5,e2,\n3000,\"c\"\"q\",z,,,e3,\n",
			variant: "csv",
			want: []events.Interaction{
				{ID: "e2", Type: events.Purchase, User: "b", Item: "y,1", Timestamp: 1000, Value: 9.5, HasValue: true},
				{ID: "e1", Type: events.Click, User: "a", Item: "x", Timestamp: 2000},
				{ID: "e3", Type: events.View, User: `c"q`, Item: "z", Timestamp: 3000},
			},
		},
		{
			name:    "plain.txt",
			opts:    LogOptions{Format: FormatCSV, TimestampSeconds: true},
			content: "user_id,item_id,timestamp,rating\nu,i,5,4\n",
			variant: "csv",
			want:    []events.Interaction{rating("u", "i", 5000, 4)},
		},
		{
			name:    "views.csv",
			opts:    LogOptions{DefaultType: events.Purchase},
			content: "user,item,ts\nu,i,5\n",
			variant: "csv",
			want:    []events.Interaction{{Type: events.Purchase, User: "u", Item: "i", Timestamp: 5}},
		},
		{
			name: "log.jsonl",
			content: `{"v":1,"type":"view","user":"u1","item":"i1","ts":20}` + "\n\n" +
				`{"type":"rating","user":"u2","item":"i2","ts":10,"value":3.5,"id":"x"}` + "\n",
			variant: "jsonl",
			want: []events.Interaction{
				{ID: "x", Type: events.Rating, User: "u2", Item: "i2", Timestamp: 10, Value: 3.5, HasValue: true},
				{Type: events.View, User: "u1", Item: "i1", Timestamp: 20},
			},
		},
		{
			name:    "noext",
			content: `{"type":"click","user":"u1","item":"i1","ts":20}`, // no final newline
			variant: "jsonl",
			want:    []events.Interaction{{Type: events.Click, User: "u1", Item: "i1", Timestamp: 20}},
		},
		{
			name:    "whatever.log", // detected from content
			content: "5\t6\t2\t100\n",
			variant: "movielens u.data",
			want:    []events.Interaction{rating("5", "6", 100000, 2)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.variant, func(t *testing.T) {
			path := writeLog(t, tc.name, tc.content)
			got, st, err := ReadLog(path, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Variant != tc.variant {
				t.Errorf("variant %q, want %q", st.Variant, tc.variant)
			}
			if st.Events != len(tc.want) || st.Skipped != 0 {
				t.Errorf("stats %+v, want %d events", st, len(tc.want))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d: got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReadLogErrors(t *testing.T) {
	tests := []struct {
		name, content string
		opts          LogOptions
		line          int    // line the error names; 0: not a LineError
		substr        string // in the message
	}{
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,100\n1,2,abc,100\n", LogOptions{}, 3, `rating "abc" is not a number`},
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5\n", LogOptions{}, 2, "want 4 comma-separated fields as in the header, got 3"},
		{"ratings.csv", "userId,movieId,rating,timestamp\nx,2,3.5,100\n", LogOptions{}, 2, `user id "x" is not an integer`},
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,NaN,100\n", LogOptions{}, 2, "non_finite"},
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,4,1e9\n", LogOptions{}, 2, `timestamp "1e9" is not an integer`},
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,4,0\n", LogOptions{}, 2, "timestamp must be positive"},
		{"ratings.csv", "userId,movieId,rating,timestamp\n1,2,4,99999999999999999\n", LogOptions{}, 2, "out of range"},
		{"u.data", "1\t2\t3\t4\n1\t2\t3\n", LogOptions{}, 2, "want 4 tab-separated fields (user, item, rating, timestamp), got 3"},
		{"u.data", "1\t2\t3\t4\t5\n", LogOptions{Format: FormatMovieLens}, 1, "got 5"},
		{"ratings.dat", "1::2::3::4\n\n1::2::3::x\n", LogOptions{}, 3, `timestamp "x" is not an integer`},
		{"e.csv", "user,item\nu,i\n", LogOptions{}, 0, "cannot detect the format"},
		{"e.csv", "user,item\nu,i\n", LogOptions{Format: FormatCSV}, 1, "names no ts column"},
		{"e.csv", "user,item,ts,userid\n", LogOptions{Format: FormatCSV}, 1, "columns 1 and 4 both name the user field"},
		{"e.csv", "user,item,ts\nu,i,1\n\"u,i,2\n", LogOptions{}, 3, "unterminated quoted field"},
		{"e.csv", "user,item,ts\nu,i\"x,1\n", LogOptions{}, 2, "bare quote"},
		{"e.csv", "user,item,ts\n,i,1\n", LogOptions{}, 2, "user id is empty"},
		{"e.csv", "user,item,ts,type\nu,i,1,like\n", LogOptions{}, 2, `type "like" is not view, click, purchase or rating`},
		{"e.csv", "user,item,ts,type\nu,i,1,rating\n", LogOptions{}, 2, "rating event without value"},
		{"e.csv", "", LogOptions{Format: FormatCSV}, 1, "empty file"},
		{"e.csv", "user,item,ts\n\"\xc6\",i,1\n", LogOptions{}, 2, "is not valid UTF-8"},
		{"e.csv", "user,item,ts,id\nu,i,1,\U000E0001\n", LogOptions{}, 2, "non-printable character U+E0001"},
		{"e.jsonl", `{"type":"view","user":"u","item":"i","ts":1}` + "\n" + `{"type":"view","user":"u","item":"i"}` + "\n", LogOptions{}, 2, "missing_field: ts"},
		{"e.jsonl", "{\"type\":\"view\",\"user\":\"u\",\"item\":\"i\",\"ts\":1}\n[1]\n", LogOptions{}, 2, "not a JSON object"},
		{"e.jsonl", "{\"type\":\"poke\",\"user\":\"u\",\"item\":\"i\",\"ts\":1}\n", LogOptions{}, 1, "unknown_type"},
		{"e.jsonl", "{\"type\":\"view\",\"user\":\"u\",\"item\":\"i\",\"ts\":1} x\n", LogOptions{}, 1, "malformed"},
		{"e.jsonl", "{\"type\":\"view\",\"user\":\"u\",\"item\":\"i\",\"ts\":1}\n{\"type\":\"view\",\"user\":\"u\",\"item\":\"i\",\"ts\":2,\"id\":\"" + strings.Repeat("x", 100) + "\"}\n",
			LogOptions{MaxLineBytes: 80}, 2, "line too long (limit 80 bytes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.substr, func(t *testing.T) {
			path := writeLog(t, tc.name, tc.content)
			_, _, err := ReadLog(path, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("error %q does not say %q", err, tc.substr)
			}
			var le *LineError
			if tc.line == 0 {
				if errors.As(err, &le) {
					t.Errorf("got a LineError %v", err)
				}
				return
			}
			if !errors.As(err, &le) || !errors.Is(err, ErrBadLine) {
				t.Fatalf("error %v (%T) is not a LineError", err, err)
			}
			if le.Line != tc.line || le.File != path {
				t.Errorf("error names %s:%d, want %s:%d", le.File, le.Line, path, tc.line)
			}
			if !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestSkipBad(t *testing.T) {
	var b strings.Builder
	b.WriteString("userId,movieId,rating,timestamp\n")
	bad := []int{}
	for i := 2; i <= 101; i++ {
		if i%10 == 0 {
			b.WriteString("1,2,oops,100\n")
			bad = append(bad, i)
		} else {
			b.WriteString("1,2,4.0,100\n")
		}
	}
	path := writeLog(t, "ratings.csv", b.String())
	for _, tc := range []struct {
		maxReported, wantReported int
	}{{0, 5}, {3, 3}, {50, len(bad)}} {
		evs, st, err := ReadLog(path, LogOptions{SkipBad: true, MaxReported: tc.maxReported})
		if err != nil {
			t.Fatal(err)
		}
		if st.Skipped != len(bad) || len(evs) != 100-len(bad) || st.Events != len(evs) || st.Lines != 101 {
			t.Errorf("stats %+v with %d events, want %d skipped", st, len(evs), len(bad))
		}
		if len(st.FirstBad) != tc.wantReported {
			t.Fatalf("reported %d, want %d", len(st.FirstBad), tc.wantReported)
		}
		for i, e := range st.FirstBad {
			var le *LineError
			if !errors.As(e, &le) || le.Line != bad[i] {
				t.Errorf("report %d: %v, want line %d", i, e, bad[i])
			}
		}
	}
	// A bad header still stops a SkipBad read.
	path = writeLog(t, "x.csv", "user,item,when\nu,i,1\n")
	if _, _, err := ReadLog(path, LogOptions{Format: FormatCSV, SkipBad: true}); err == nil {
		t.Error("bad header accepted with SkipBad")
	}
}

func TestSortStableByTimestamp(t *testing.T) {
	// Equal timestamps keep file order; others are sorted.
	content := "user,item,ts\nu1,a,30\nu2,b,10\nu3,c,30\nu4,d,10\nu5,e,20\nu6,f,30\n"
	evs, st, err := ReadLog(writeLog(t, "e.csv", content), LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.User)
	}
	if want := "u2 u4 u5 u1 u3 u6"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	if !st.Reordered {
		t.Error("Reordered not reported")
	}
	evs, st, err = ReadLog(writeLog(t, "s.csv", "user,item,ts\nu1,a,1\nu2,b,1\nu3,c,2\n"), LogOptions{})
	if err != nil || st.Reordered || len(evs) != 3 {
		t.Errorf("sorted log: %v %+v", err, st)
	}
}

func TestAssumeSortedStreams(t *testing.T) {
	path := writeLog(t, "e.csv", "user,item,ts\nu1,a,1\nu2,b,2\nu3,c,2\nu4,d,1\nu5,e,9\n")
	s, err := OpenLog(path, LogOptions{AssumeSorted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != -1 {
		t.Errorf("streaming Len %d, want -1", s.Len())
	}
	n := 0
	for range All(s) {
		n++
	}
	if n != 3 {
		t.Errorf("delivered %d events before the out-of-order one, want 3", n)
	}
	var le *LineError
	if err := s.Err(); !errors.Is(err, ErrOutOfOrder) || !errors.As(err, &le) || le.Line != 5 {
		t.Fatalf("error %v, want ErrOutOfOrder at line 5", err)
	}
	if !strings.Contains(s.Err().Error(), "earlier than 2 ms on line 4") {
		t.Errorf("error %q does not name the previous line", s.Err())
	}
	// ReadLog with AssumeSorted reports it too.
	if _, _, err := ReadLog(path, LogOptions{AssumeSorted: true}); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("ReadLog: %v", err)
	}
}

func TestGzipAndReader(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("1::2::3::4\n5::6::1::2\n"))
	zw.Close()
	path := filepath.Join(t.TempDir(), "ratings.dat.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sorted := range []bool{false, true} {
		evs, st, err := ReadLog(path, LogOptions{AssumeSorted: sorted})
		if sorted {
			if !errors.Is(err, ErrOutOfOrder) {
				t.Errorf("AssumeSorted on an unsorted gzip log: %v", err)
			}
			continue
		}
		if err != nil || len(evs) != 2 || evs[0].User != "5" || st.Variant != "movielens ratings.dat" {
			t.Fatalf("%v %+v %+v", err, evs, st)
		}
	}
	s, err := NewLogStream(strings.NewReader("user,item,ts\nu,i,1\n"), "stdin", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := Collect(s, 0)
	if err != nil || len(evs) != 1 {
		t.Fatal(err, evs)
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, first string
		want        Format
		variant     string
	}{
		{"ratings.csv", "userId,movieId,rating,timestamp", FormatMovieLens, "movielens ratings.csv"},
		{"x", "userid,movieid,rating,timestamp", FormatMovieLens, "movielens ratings.csv"},
		{"u.data", "anything", FormatMovieLens, "movielens u.data"},
		{"ratings.dat.gz", "", FormatMovieLens, "movielens ratings.dat"},
		{"x", "1::2::3::4", FormatMovieLens, "movielens ratings.dat"},
		{"events.ndjson", "", FormatJSONL, "jsonl"},
		{"x.txt", ` {"type":"view"}`, FormatJSONL, "jsonl"},
		{"x.txt", "user,item,ts", FormatCSV, "csv"},
		{"x.txt", "Timestamp, UserId, ItemId, Event", FormatCSV, "csv"},
	}
	for _, tc := range tests {
		f, v, err := DetectFormat(tc.name, []byte(tc.first))
		if err != nil || f != tc.want || v != tc.variant {
			t.Errorf("DetectFormat(%q, %q) = %v, %q, %v; want %v, %q", tc.name, tc.first, f, v, err, tc.want, tc.variant)
		}
	}
	if _, _, err := DetectFormat("x.txt", []byte("a b c")); err == nil {
		t.Error("detected a format for garbage")
	}
	for _, s := range []string{"auto", "MovieLens", "csv", "jsonl"} {
		if _, err := ParseFormat(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseFormat("parquet"); err == nil {
		t.Error("parquet accepted")
	}
}

// TestMovieLensRatings reads the real ml-latest-small ratings.csv shared with the project.
func TestMovieLensRatings(t *testing.T) {
	const path = "../../shared/data/movielens-posters/ratings.csv"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("MovieLens data missing: %v", err)
		}
		t.Skipf("MovieLens data missing: %v", err)
	}
	evs, st, err := ReadLog(path, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 100_836 || st.Events != 100_836 || st.Skipped != 0 || st.Lines != 100_837 {
		t.Fatalf("read %d events, stats %+v; want 100,836", len(evs), st)
	}
	if !st.Reordered || st.Variant != "movielens ratings.csv" {
		t.Errorf("stats %+v", st)
	}
	users, items := map[string]bool{}, map[string]bool{}
	for i, e := range evs {
		if i > 0 && e.Timestamp < evs[i-1].Timestamp {
			t.Fatalf("event %d at %d before event %d at %d", i, e.Timestamp, i-1, evs[i-1].Timestamp)
		}
		if e.Type != events.Rating || !e.HasValue || e.Value < 0.5 || e.Value > 5 {
			t.Fatalf("event %d: %+v", i, e)
		}
		users[e.User], items[e.Item] = true, true
	}
	if len(users) != 610 || len(items) != 9724 {
		t.Errorf("%d users and %d items, want 610 and 9724", len(users), len(items))
	}
	// The first rating of ml-latest-small: user 429 rated movie 22 on 1996-03-29.
	if first := evs[0]; first.User != "429" || first.Timestamp != 828124615000 {
		t.Errorf("first event %+v", first)
	}
	if _, _, err := ReadLog(path, LogOptions{AssumeSorted: true}); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("ratings.csv is sorted by user, AssumeSorted must refuse it: %v", err)
	}
}

func TestSortByTimeMatchesStableSort(t *testing.T) {
	g := smallSynthetic(t, func(c *SyntheticConfig) { c.Events = 30_000 })
	evs, _ := Collect(g, 0)
	// Shuffle deterministically with a wide spread of timestamps, many of them equal.
	for i := range evs {
		evs[i].Timestamp = 1 + int64((uint64(i)*2654435761)%5003)*int64(1+i%3)<<(i%40)
		evs[i].ID = fmt.Sprint(i)
	}
	want := slices.Clone(evs)
	slices.SortStableFunc(want, func(a, b events.Interaction) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	if !sortByTime(evs) {
		t.Fatal("reported sorted")
	}
	if !slices.Equal(evs, want) {
		t.Fatal("radix sort differs from a stable sort")
	}
	if sortByTime(evs) {
		t.Error("sorted slice reported as reordered")
	}
}
