package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

// testConcurrentWriters runs writers that merge deltas into the same shared rows and bump
// the same counter from several goroutines, each also advancing its own partition's offset,
// while a reader polls. No update may be lost: with small integer deltas the sums are exact.
func testConcurrentWriters(t *testing.T, s featurestore.Store) {
	const writers, commits, dim = 8, 25, 65
	shared := []string{"s0", "s1", "s2"}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			delta := make([]float64, dim)
			prev := featurestore.NoOffset
			for c := range commits {
				for j := range delta {
					delta[j] = float64(w + 1 + j%3)
				}
				tx := s.Begin()
				for _, id := range shared {
					tx.AddVector("shared", id, delta)
				}
				tx.IncrCounter("hits", "all", 1)
				tx.AppendCatalog("seen", fmt.Sprintf("w%d", w))
				tx.SetOffset("events", w, prev, int64(c+1))
				merged, err := tx.Commit(ctx)
				if err != nil {
					errs <- fmt.Errorf("writer %d commit %d: %w", w, c, err)
					return
				}
				if len(merged) != len(shared) {
					errs <- fmt.Errorf("writer %d: %d merged rows", w, len(merged))
					return
				}
				prev = int64(c + 1)
			}
		})
	}
	var rd sync.WaitGroup
	rd.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			rows, err := s.Vectors(ctx, "shared", shared)
			if err != nil {
				errs <- fmt.Errorf("reader: %w", err)
				return
			}
			for _, r := range rows {
				if r != nil && len(r) != dim {
					errs <- fmt.Errorf("reader: row of %d values", len(r))
					return
				}
			}
		}
	})
	wg.Wait()
	close(done)
	rd.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	rows := vectors(t, s, "shared", shared...)
	for i, r := range rows {
		for j, v := range r {
			want := 0
			for w := range writers {
				want += commits * (w + 1 + j%3)
			}
			if v != float32(want) {
				t.Fatalf("shared/%s[%d] = %g, want %d: lost update", shared[i], j, v, want)
			}
		}
	}
	if got := counters(t, s, "hits", "all")[0]; got != writers*commits {
		t.Fatalf("hits/all = %d, want %d", got, writers*commits)
	}
	if got := catalog(t, s, "seen"); len(got) != writers {
		t.Fatalf("catalog seen = %v, want %d members", got, writers)
	}
	off := offsets(t, s, "events")
	for w := range writers {
		if off[w] != commits {
			t.Fatalf("offset of partition %d = %d, want %d", w, off[w], commits)
		}
	}
}

// testBigCommit commits 20,000 rows of 65 floats, long AddVector rows and many catalog
// members in one Tx.
func testBigCommit(t *testing.T, s featurestore.Store) {
	r := newRand(t, 7)
	const rows, dim, long, longDim = 20000, 65, 40, 1281
	want := make(map[string][]float32, rows)
	tx := s.Begin()
	for i := range rows {
		id := fmt.Sprintf("u%d", i)
		v := randRow(r, dim, 1)
		want[id] = v
		tx.SetVector("big", id, v)
		if i%7 == 0 {
			tx.AppendCatalog("bigcat", id)
		}
	}
	wantMerged := make([][]float32, long)
	for i := range long {
		d := make([]float64, longDim)
		wantMerged[i] = make([]float32, longDim)
		for j := range d {
			d[j] = float64(r.IntN(1000))
			wantMerged[i][j] = float32(d[j])
		}
		tx.AddVector("bigadd", fmt.Sprint(i), d)
	}
	tx.SetOffset("events", 0, featurestore.NoOffset, rows)
	merged := commit(t, tx)
	if len(merged) != long {
		t.Fatalf("%d merged rows, want %d", len(merged), long)
	}
	for i := range merged {
		wantRow(t, fmt.Sprintf("merged %d", i), merged[i], wantMerged[i])
	}
	ids := make([]string, 0, rows)
	for id := range want {
		ids = append(ids, id)
	}
	got := vectors(t, s, "big", ids...)
	for i, id := range ids {
		wantRow(t, "big/"+id, got[i], want[id])
	}
	n := 0
	err := s.ScanVectors(context.Background(), "big", func(string, []float32) error { n++; return nil })
	if err != nil || n != rows {
		t.Fatalf("ScanVectors: %d rows, %v; want %d", n, err, rows)
	}
	if got := catalog(t, s, "bigcat"); len(got) != (rows+6)/7 || got[1] != "u7" {
		t.Fatalf("bigcat has %d members, want %d in order", len(got), (rows+6)/7)
	}
}
