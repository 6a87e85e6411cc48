package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

func testVectorRoundTrip(t *testing.T, s featurestore.Store) {
	r := newRand(t, 1)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)),
		float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-40, -1}
	rows := []struct {
		table, id string
		v         []float32
	}{
		{"items", "empty", []float32{}},
		{"items", "one", []float32{3.25}},
		{"items", "special", special},
		{"items", "d65", randRow(r, 65, 1)},
		{"items", "d1281", randRow(r, 1281, 1e6)},
		{"items", "odd id: {x} ü ☃", randRow(r, 7, 1)},
		{"users", "one", []float32{-7}}, // same id, other table
		{"users", "d65", randRow(r, 65, 1e-20)},
	}
	tx := s.Begin()
	for _, row := range rows {
		tx.SetVector(row.table, row.id, row.v)
	}
	if merged := commit(t, tx); len(merged) != 0 {
		t.Fatalf("Commit without AddVector returned %d rows", len(merged))
	}
	for _, row := range rows {
		got := vectors(t, s, row.table, row.id)[0]
		wantRow(t, row.table+"/"+row.id, got, row.v)
	}
	// Several ids at once, in the caller's order, with repeats and a missing id.
	got := vectors(t, s, "items", "d65", "nope", "one", "d65", "empty")
	want := [][]float32{rows[3].v, nil, rows[1].v, rows[3].v, {}}
	for i := range want {
		wantRow(t, fmt.Sprintf("items[%d]", i), got[i], want[i])
	}
}

func testMissing(t *testing.T, s featurestore.Store) {
	ctx := context.Background()
	for i, v := range vectors(t, s, "nosuch", "a", "b", "c") {
		if v != nil {
			t.Fatalf("missing row %d = %v, want nil", i, v)
		}
	}
	if got := vectors(t, s, "nosuch"); len(got) != 0 {
		t.Fatalf("Vectors of no ids: %v", got)
	}
	for i, c := range counters(t, s, "nosuch", "a", "b") {
		if c != 0 {
			t.Fatalf("missing counter %d = %d, want 0", i, c)
		}
	}
	if got := counters(t, s, "nosuch"); len(got) != 0 {
		t.Fatalf("Counters of no ids: %v", got)
	}
	if got := catalog(t, s, "nosuch"); len(got) != 0 {
		t.Fatalf("missing catalog = %v, want empty", got)
	}
	if got := offsets(t, s, "nosuch"); len(got) != 0 {
		t.Fatalf("offsets of unknown topic = %v, want empty", got)
	}
	err := s.ScanVectors(ctx, "nosuch", func(id string, v []float32) error {
		return fmt.Errorf("called for %q", id)
	})
	if err != nil {
		t.Fatalf("ScanVectors of a missing table: %v", err)
	}
	// A row in one table does not show in another.
	tx := s.Begin()
	tx.SetVector("a", "x", []float32{1})
	tx.IncrCounter("a", "x", 1)
	commit(t, tx)
	if v := vectors(t, s, "b", "x")[0]; v != nil {
		t.Fatalf("row leaked across tables: %v", v)
	}
	if c := counters(t, s, "b", "x")[0]; c != 0 {
		t.Fatalf("counter leaked across tables: %d", c)
	}
}

func testSetVectorReplaces(t *testing.T, s featurestore.Store) {
	for _, v := range [][]float32{{1, 2, 3}, {4, 5}, {}, {6, 7, 8, 9}} {
		tx := s.Begin()
		tx.SetVector("t", "x", v)
		commit(t, tx)
		wantRow(t, "t/x", vectors(t, s, "t", "x")[0], v)
	}
	// Within one Tx the last SetVector wins.
	tx := s.Begin()
	tx.SetVector("t", "x", []float32{1})
	tx.SetVector("t", "x", []float32{2, 2})
	commit(t, tx)
	wantRow(t, "t/x", vectors(t, s, "t", "x")[0], []float32{2, 2})
}

func testScanVectors(t *testing.T, s featurestore.Store) {
	ctx := context.Background()
	r := newRand(t, 2)
	const n = 2500 // more than one HSCAN page
	want := make(map[string][]float32, n)
	tx := s.Begin()
	for i := range n {
		id := fmt.Sprintf("item-%d", i)
		v := randRow(r, 1+i%9, 10)
		want[id] = v
		tx.SetVector("scan", id, v)
	}
	tx.SetVector("other", "item-0", []float32{1})
	commit(t, tx)

	seen := make(map[string]int)
	err := s.ScanVectors(ctx, "scan", func(id string, v []float32) error {
		seen[id]++
		w, ok := want[id]
		if !ok {
			return fmt.Errorf("unknown id %q", id)
		}
		if !sameRow(v, w) {
			return fmt.Errorf("row %q = %v, want %v", id, v, w)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanVectors: %v", err)
	}
	if len(seen) != n {
		t.Fatalf("ScanVectors saw %d ids, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("ScanVectors passed %q %d times", id, c)
		}
	}

	// An error from fn stops the scan and comes back.
	stop := errors.New("stop")
	calls := 0
	err = s.ScanVectors(ctx, "scan", func(string, []float32) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Fatalf("ScanVectors with failing fn: err %v after %d calls, want %v after 10", err, calls, stop)
	}
}

// exactPair returns a float32 pair (old, new) for the single-writer exactness property:
// new's magnitude is at most 2^29 below old's, so float64(new)-float64(old) is exact or, when
// new is much larger, close enough that old+delta rounds back to new. (When |old| exceeds
// |new| by more than about 2^29 the delta loses new's bits: the property does not hold there,
// whatever the store.) It covers sign changes, zeros, subnormals and magnitudes 2^-100 to 2^127.
func exactPair(r *rand.Rand) (old, new float32) {
	mant := func() float64 { return (0.5 + r.Float64()/2) * float64(1-2*r.IntN(2)) }
	e := r.IntN(161) - 100 // -100 .. 60
	ne := min(e+r.IntN(90)-29, 127)
	old, new = float32(math.Ldexp(mant(), e)), float32(math.Ldexp(mant(), ne))
	switch r.IntN(20) {
	case 0:
		old = 0
	case 1:
		new = 0
	case 2:
		new = -old
	case 3:
		new = old
	}
	return old, new
}

func testDeltaMergeExact(t *testing.T, s featurestore.Store) {
	r := newRand(t, 3)
	const rows, dim, rounds = 20, 65, 5
	stored := make([][]float32, rows)
	tx := s.Begin()
	for i := range stored {
		stored[i] = make([]float32, dim)
	}
	for round := range rounds {
		// Each round: the old rows are set, then the single writer's deltas move them to new
		// values; on odd rounds SetVector and AddVector share one Tx.
		next := make([][]float32, rows)
		deltas := make([][]float64, rows)
		for i := range stored {
			next[i], deltas[i] = make([]float32, dim), make([]float64, dim)
			for j := range dim {
				stored[i][j], next[i][j] = exactPair(r)
				deltas[i][j] = float64(next[i][j]) - float64(stored[i][j])
			}
			tx.SetVector("exact", fmt.Sprint(i), stored[i])
		}
		if round%2 == 0 {
			commit(t, tx)
			tx = s.Begin()
		}
		for i := range stored {
			tx.AddVector("exact", fmt.Sprint(i), deltas[i])
		}
		merged := commit(t, tx)
		tx = s.Begin()
		if len(merged) != rows {
			t.Fatalf("round %d: Commit returned %d rows, want %d", round, len(merged), rows)
		}
		ids := make([]string, rows)
		for i := range ids {
			ids[i] = fmt.Sprint(i)
		}
		got := vectors(t, s, "exact", ids...)
		for i := range next {
			wantRow(t, fmt.Sprintf("round %d merged row %d", round, i), merged[i], next[i])
			wantRow(t, fmt.Sprintf("round %d stored row %d", round, i), got[i], next[i])
		}
	}
}

// testDeltaMergeRounding checks the merge rule itself, float32(float64(stored)+delta), bit
// for bit for arbitrary deltas, accumulated over many commits, and that a missing row counts
// as zeros.
func testDeltaMergeRounding(t *testing.T, s featurestore.Store) {
	r := newRand(t, 4)
	const rows, dim, rounds = 8, 33, 20
	want := make([][]float32, rows) // nil: missing
	for round := range rounds {
		tx := s.Begin()
		expect := make([][]float32, 0, rows)
		for i := range rows {
			if r.IntN(3) == 0 {
				continue
			}
			d := make([]float64, dim)
			for j := range d {
				switch r.IntN(4) {
				case 0:
					d[j] = r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
				case 1:
					d[j] = r.NormFloat64() * 1e-3
				case 2:
					d[j] = float64(r.IntN(7) - 3)
				default:
					d[j] = r.NormFloat64() / 3 // not a float32: rounds
				}
			}
			if want[i] == nil {
				want[i] = make([]float32, dim)
			}
			for j := range d {
				want[i][j] = float32(float64(want[i][j]) + d[j])
			}
			expect = append(expect, append([]float32(nil), want[i]...))
			tx.AddVector("round", fmt.Sprint(i), d)
		}
		merged := commit(t, tx)
		if len(merged) != len(expect) {
			t.Fatalf("round %d: %d merged rows, want %d", round, len(merged), len(expect))
		}
		for k := range expect {
			wantRow(t, fmt.Sprintf("round %d merged %d", round, k), merged[k], expect[k])
		}
	}
	for i := range rows {
		wantRow(t, fmt.Sprintf("row %d", i), vectors(t, s, "round", fmt.Sprint(i))[0], want[i])
	}
}

func testLongRows(t *testing.T, s featurestore.Store) {
	r := newRand(t, 5)
	for _, dim := range []int{65, 1281, 2047, 2048, 2049, 4099, 20000} { // around the Redis script's chunk size (2048)
		id := fmt.Sprint("long-", dim)
		old, next := make([]float32, dim), make([]float32, dim)
		delta := make([]float64, dim)
		for j := range dim {
			old[j], next[j] = exactPair(r)
			delta[j] = float64(next[j]) - float64(old[j])
		}
		tx := s.Begin()
		tx.SetVector("long", id, old)
		commit(t, tx)
		tx = s.Begin()
		tx.AddVector("long", id, delta)
		merged := commit(t, tx)
		if len(merged) != 1 {
			t.Fatalf("dim %d: %d merged rows", dim, len(merged))
		}
		wantRow(t, id+" merged", merged[0], next)
		wantRow(t, id+" stored", vectors(t, s, "long", id)[0], next)
		// A missing long row counts as zeros.
		tx = s.Begin()
		tx.AddVector("long", id+"-new", delta)
		merged = commit(t, tx)
		want := make([]float32, dim)
		for j := range want {
			want[j] = float32(delta[j])
		}
		wantRow(t, id+"-new merged", merged[0], want)
	}
}

func testCommitReturnsMerged(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	tx.SetVector("m", "a", []float32{1, 2, 3})
	commit(t, tx)

	tx = s.Begin()
	tx.AddVector("m", "a", []float64{1, 1, 1})
	tx.IncrCounter("m", "a", 1)
	tx.AddVector("m", "b", []float64{0.5, -0.5})              // new row: zeros + delta
	tx.SetVector("m", "c", []float32{9})                      // not returned
	tx.AddVector("m", "a", []float64{10, 10, 10})             // the same row again: cumulative
	tx.AddVector("other", "a", []float64{-1})                 // same id, other table
	tx.SetVector("m", "d", []float32{1, 1})                   // set, then add in the same Tx
	tx.AddVector("m", "d", []float64{0.25, math.Pow(2, -30)}) // 1+2^-30 rounds to 1 in float32
	merged := commit(t, tx)
	want := [][]float32{{2, 3, 4}, {0.5, -0.5}, {12, 13, 14}, {-1}, {1.25, 1}}
	if len(merged) != len(want) {
		t.Fatalf("Commit returned %d rows, want %d", len(merged), len(want))
	}
	for i := range want {
		wantRow(t, fmt.Sprintf("merged[%d]", i), merged[i], want[i])
	}
	wantRow(t, "m/a", vectors(t, s, "m", "a")[0], want[2])
	wantRow(t, "m/d", vectors(t, s, "m", "d")[0], want[4])
}

func testDeleteVector(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	tx.SetVector("t", "a", []float32{1, 2})
	tx.SetVector("t", "b", []float32{3, 4})
	tx.AddVector("t", "c", []float64{5, 6})
	commit(t, tx)
	_, v0 := changed(t, s, "t", 0)

	tx = s.Begin()
	tx.DeleteVector("t", "a")
	tx.DeleteVector("t", "missing") // no error
	// Within one Tx, ops on a row run in call order: a deleted row is missing for a later
	// AddVector (zeros, any width), and a later SetVector brings it back.
	tx.DeleteVector("t", "c")
	tx.AddVector("t", "c", []float64{0.5, 0.25, 1})
	tx.DeleteVector("t", "b")
	tx.SetVector("t", "b", []float32{7})
	commit(t, tx)
	rows := vectors(t, s, "t", "a", "b", "c", "missing")
	if rows[0] != nil || rows[3] != nil {
		t.Fatalf("deleted rows read back as %v, %v", rows[0], rows[3])
	}
	wantRow(t, "b after delete and set", rows[1], []float32{7})
	wantRow(t, "c after delete and add", rows[2], []float32{0.5, 0.25, 1})
	ids, v1 := changed(t, s, "t", v0)
	if want := []string{"a", "b", "c", "missing"}; !slices.Equal(ids, want) || v1 <= v0 {
		t.Fatalf("Changed after the deletes = %v at %d, want %v above %d", ids, v1, want, v0)
	}
	var seen []string
	if err := s.ScanVectors(context.Background(), "t", func(id string, _ []float32) error {
		seen = append(seen, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	if want := []string{"b", "c"}; !slices.Equal(seen, want) {
		t.Fatalf("ScanVectors after the deletes: %v, want %v", seen, want)
	}
}
