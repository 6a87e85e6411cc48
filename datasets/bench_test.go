package datasets

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/visrec/visrec/producers"
)

// uirText returns n seeded UIRT lines.
func uirText(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "u%d\ti%d\t%d\t%d\n", r.IntN(n/20+1), r.IntN(n/10+1), 1+r.IntN(5), 1_000_000_000+i)
	}
	return b.Bytes()
}

func BenchmarkReadUIR(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		text := uirText(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := ReadUIR(bytes.NewReader(text), "bench", UIROptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

func BenchmarkReadNPY(b *testing.B) {
	for _, rows := range []int{1_000, 20_000} {
		m := &Matrix{Rows: rows, Cols: 512, Data: make([]float32, rows*512)}
		var buf bytes.Buffer
		WriteNPY(&buf, m)
		b.Run(fmt.Sprint(rows), func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				if _, err := ReadNPY(bytes.NewReader(buf.Bytes()), "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoadMovieLensPosters(b *testing.B) {
	dir := requirePosters(b)
	for b.Loop() {
		if _, err := LoadMovieLensPosters(dir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthetic(b *testing.B) {
	for _, n := range []int64{100_000, 1_000_000} {
		cfg := producers.DefaultSyntheticConfig()
		cfg.Events = n
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Synthetic(cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
