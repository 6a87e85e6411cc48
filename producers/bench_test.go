package producers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
)

const ratingsCSV = "../../shared/data/movielens-posters/ratings.csv"

func needRatings(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(ratingsCSV); err != nil {
		tb.Skipf("MovieLens data missing: %v", err)
	}
}

// BenchmarkReadRatingsCSV loads and sorts ml-latest-small's ratings.csv (100,836 ratings).
func BenchmarkReadRatingsCSV(b *testing.B) {
	needRatings(b)
	var n int
	for b.Loop() {
		evs, _, err := ReadLog(ratingsCSV, LogOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n = len(evs)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkStreamSortedCSV streams a pre-sorted generic CSV of 200,000 lines (AssumeSorted).
func BenchmarkStreamSortedCSV(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("user,item,ts,type\n")
	for i := range 200_000 {
		fmt.Fprintf(&sb, "u%d,i%d,%d,view\n", i%5000, i%7919, 1_700_000_000_000+int64(i))
	}
	path := filepath.Join(b.TempDir(), "events.csv")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		s, err := OpenLog(path, LogOptions{AssumeSorted: true})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for range All(s) {
			n++
		}
		s.Close()
		if s.Err() != nil || n != 200_000 {
			b.Fatal(s.Err(), n)
		}
	}
	b.ReportMetric(200_000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSynthetic is the generation rate with the default configuration.
func BenchmarkSynthetic(b *testing.B) {
	for _, k := range []int{16, 64} {
		b.Run(fmt.Sprintf("dim=%d", k), func(b *testing.B) {
			cfg := DefaultSyntheticConfig()
			cfg.Events, cfg.Dim = 0, k
			g, err := NewSynthetic(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.Next()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	evs := testEvents(1024, 1)
	for _, enc := range []Encoding{EncodingJSON, EncodingBinary} {
		b.Run(enc.String(), func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				buf = enc.Append(buf[:0], &evs[i&1023])
				i++
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

type nullSink struct{ n int }

func (s *nullSink) Write(_ context.Context, msgs []kafka.Message) error {
	s.n += len(msgs)
	return nil
}

// BenchmarkReplayUnpaced is the replayer's own overhead: synthetic events, encoded, batched
// and handed to a sink that drops them.
func BenchmarkReplayUnpaced(b *testing.B) {
	for _, enc := range []Encoding{EncodingJSON, EncodingBinary} {
		b.Run(enc.String(), func(b *testing.B) {
			cfg := DefaultSyntheticConfig()
			cfg.Events = int64(b.N)
			g, err := NewSynthetic(cfg)
			if err != nil {
				b.Fatal(err)
			}
			r, _ := NewReplayer(&nullSink{}, ReplayOptions{Encoding: enc})
			b.ResetTimer()
			sum, err := r.Run(context.Background(), g)
			if err != nil || sum.Events != int64(b.N) {
				b.Fatal(err, sum)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestLoadedMemoryPerEvent checks the documented cost of loading a log: about
// LoadedEventBytes per event.
func TestLoadedMemoryPerEvent(t *testing.T) {
	needRatings(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	evs, _, err := ReadLog(ratingsCSV, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(evs))
	t.Logf("%.0f bytes per loaded event (%d events)", per, len(evs))
	if per > 1.5*LoadedEventBytes {
		t.Errorf("%.0f bytes per event, documented about %d", per, LoadedEventBytes)
	}
	runtime.KeepAlive(evs)
}
