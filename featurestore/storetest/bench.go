package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

// Bench runs the benchmarks that every Store reports. newStore returns a new, empty store
// and arranges its cleanup.
func Bench(b *testing.B, newStore func(b *testing.B) featurestore.Store) {
	const dim = 65
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("Commit/set=%d,add=%d,dim=%d", n, n, dim), func(b *testing.B) {
			s := newStore(b)
			r := newRand(b, 8)
			ids := make([]string, n)
			rows := make([][]float32, n)
			deltas := make([][]float64, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("item-%d", i)
				rows[i] = randRow(r, dim, 1)
				deltas[i] = make([]float64, dim)
				for j := range deltas[i] {
					deltas[i][j] = r.NormFloat64() * 1e-3
				}
			}
			ctx := context.Background()
			b.SetBytes(int64(n * dim * (4 + 8)))
			for b.Loop() {
				tx := s.Begin()
				for i := range ids {
					tx.SetVector("users", ids[i], rows[i])
					tx.AddVector("items", ids[i], deltas[i])
				}
				if _, err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The updater's case: a single writer moves its shared rows from the values it last
		// stored (MergeVector's compare-and-replace case), beside the same user rows.
		b.Run(fmt.Sprintf("Commit/set=%d,merge=%d,dim=%d", n, n, dim), func(b *testing.B) {
			s := newStore(b)
			r := newRand(b, 8)
			ids := make([]string, n)
			rows := make([][]float32, n)
			items := make([][]float32, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("item-%d", i)
				rows[i] = randRow(r, dim, 1)
				items[i] = make([]float32, dim)
			}
			next := make([]float32, dim)
			ctx := context.Background()
			b.SetBytes(int64(n * dim * (4 + 8)))
			for b.Loop() {
				tx := s.Begin()
				for i := range ids {
					for j := range next {
						next[j] = items[i][j] + float32(r.NormFloat64()*1e-3)
					}
					tx.SetVector("users", ids[i], rows[i])
					tx.MergeVector("items", ids[i], items[i], next)
					copy(items[i], next)
				}
				if _, err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Vectors/ids=%d,dim=%d", n, dim), func(b *testing.B) {
			s := newStore(b)
			r := newRand(b, 9)
			ids := make([]string, n)
			tx := s.Begin()
			for i := range ids {
				ids[i] = fmt.Sprintf("item-%d", i)
				tx.SetVector("items", ids[i], randRow(r, dim, 1))
			}
			commit(b, tx)
			ctx := context.Background()
			b.SetBytes(int64(n * dim * 4))
			for b.Loop() {
				if _, err := s.Vectors(ctx, "items", ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
