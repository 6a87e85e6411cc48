package embed

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkEmbed measures inference alone (preprocessed posters in memory), images/s at batch
// 1 and batch 8.
func BenchmarkEmbed(b *testing.B) {
	paths := samplePosters(b, 367)[:8]
	input := make([]float32, 0, len(paths)*InputLen)
	for _, p := range paths {
		img, err := DecodeFile(p)
		if err != nil {
			b.Fatal(err)
		}
		x, err := Preprocess(img)
		if err != nil {
			b.Fatal(err)
		}
		input = append(input, x...)
	}
	for _, bs := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", bs), func(b *testing.B) {
			e := newTestEmbedder(b, bs)
			b.ResetTimer()
			images := 0
			for b.Loop() {
				if _, err := e.Embed(input[:bs*InputLen]); err != nil {
					b.Fatal(err)
				}
				images += bs
			}
			b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkEmbedFiles measures the whole path from JPEG files to vectors (decode, preprocess
// and inference overlapped), images/s at batch 1 and batch 8.
func BenchmarkEmbedFiles(b *testing.B) {
	paths := samplePosters(b, 91)[:32]
	for _, bs := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", bs), func(b *testing.B) {
			e := newTestEmbedder(b, bs)
			images := 0
			for b.Loop() {
				st, err := e.EmbedFiles(context.Background(), paths, FilesOptions{}, func(Result) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				images += st.Embedded
			}
			b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkPreprocess measures decode + preprocess of one poster.
func BenchmarkPreprocess(b *testing.B) {
	p := samplePosters(b, 1000)[1]
	dst := make([]float32, InputLen)
	for b.Loop() {
		img, err := DecodeFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := PreprocessInto(dst, img); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
