package events

import (
	"fmt"
	"testing"
)

// Decoder benchmarks: one typical message per encoding; allocs/op counts the decoded
// strings and, for JSON, encoding/json's own allocations.

func benchInteraction() Interaction {
	return Interaction{Type: Rating, ID: "evt-000123", User: "user-42", Item: "movie-318", Timestamp: 1700000000000, Value: 4.5, HasValue: true}
}

func benchDecodeInteraction(b *testing.B, msg []byte) {
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeInteraction(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInteractionJSON(b *testing.B) {
	e := benchInteraction()
	benchDecodeInteraction(b, e.AppendJSON(nil))
}

func BenchmarkDecodeInteractionBinary(b *testing.B) {
	e := benchInteraction()
	benchDecodeInteraction(b, e.AppendBinary(nil))
}

// BenchmarkDecodeItem decodes item events with MobileNetV2-sized (1280) and small embeddings.
func BenchmarkDecodeItem(b *testing.B) {
	for _, dim := range []int{64, 1280} {
		it := Item{Item: "movie-318", Timestamp: 1700000000000, Model: "mobilenetv2", Embedding: make([]float32, dim),
			Metadata: map[string]string{"title": "The Shawshank Redemption (1994)"}}
		for i := range it.Embedding {
			it.Embedding[i] = float32(i%97) / 97
		}
		for _, enc := range []struct {
			name string
			msg  []byte
		}{{"JSON", it.AppendJSON(nil)}, {"Binary", it.AppendBinary(nil)}} {
			b.Run(fmt.Sprintf("%s/dim=%d", enc.name, dim), func(b *testing.B) {
				b.SetBytes(int64(len(enc.msg)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := DecodeItem(enc.msg, dim); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
