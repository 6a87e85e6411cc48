package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

func testCounters(t *testing.T, s featurestore.Store) {
	steps := []struct {
		table, id string
		n         int64
	}{
		{"clicks", "a", 1}, {"clicks", "b", 5}, {"clicks", "a", 2}, {"views", "a", 100},
		{"clicks", "b", -7}, {"clicks", "c", 0}, {"clicks", "a", math.MaxInt64 - 3},
	}
	tx := s.Begin()
	for _, st := range steps[:3] {
		tx.IncrCounter(st.table, st.id, st.n)
	}
	commit(t, tx)
	tx = s.Begin()
	for _, st := range steps[3:] {
		tx.IncrCounter(st.table, st.id, st.n)
	}
	commit(t, tx)
	got := counters(t, s, "clicks", "a", "b", "c", "d", "a")
	want := []int64{math.MaxInt64, -2, 0, 0, math.MaxInt64}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("clicks = %v, want %v", got, want)
	}
	if got := counters(t, s, "views", "a", "b"); !reflect.DeepEqual(got, []int64{100, 0}) {
		t.Fatalf("views = %v, want [100 0]", got)
	}
	tx = s.Begin()
	tx.IncrCounter("neg", "x", math.MinInt64)
	commit(t, tx)
	if got := counters(t, s, "neg", "x")[0]; got != math.MinInt64 {
		t.Fatalf("neg/x = %d, want MinInt64", got)
	}
}

func testCatalog(t *testing.T, s featurestore.Store) {
	appends := [][]string{
		{"a", "b", "c"},
		{"b", "d", "a", "e", "d"}, // repeats, also within one Tx
		{"c"},
	}
	for _, ids := range appends {
		tx := s.Begin()
		for _, id := range ids {
			tx.AppendCatalog("items", id)
		}
		tx.AppendCatalog("other", ids[0])
		commit(t, tx)
	}
	if got, want := catalog(t, s, "items"), []string{"a", "b", "c", "d", "e"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("items = %v, want %v", got, want)
	}
	if got, want := catalog(t, s, "other"), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("other = %v, want %v", got, want)
	}
	// Insertion order, not lexical order, over many members and commits.
	r := newRand(t, 6)
	perm := r.Perm(700)
	var want []string
	for start := 0; start < len(perm); start += 100 {
		tx := s.Begin()
		for _, p := range perm[start : start+100] {
			id := fmt.Sprintf("m%d", p)
			tx.AppendCatalog("big", id)
			want = append(want, id)
		}
		tx.AppendCatalog("big", want[0]) // already a member
		commit(t, tx)
	}
	if got := catalog(t, s, "big"); !reflect.DeepEqual(got, want) {
		t.Fatalf("big catalog out of insertion order (%d members, want %d)", len(got), len(want))
	}
}

func testOffsets(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	tx.SetOffset("events", 0, featurestore.NoOffset, 10)
	tx.SetOffset("events", 1, featurestore.NoOffset, 0)
	tx.SetOffset("events", 7, featurestore.NoOffset, 1<<40)
	tx.SetOffset("items", 0, featurestore.NoOffset, 3)
	commit(t, tx)
	if got, want := offsets(t, s, "events"), map[int]int64{0: 10, 1: 0, 7: 1 << 40}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events offsets = %v, want %v", got, want)
	}
	// Advance, chaining two SetOffsets of one partition in one Tx.
	tx = s.Begin()
	tx.SetOffset("events", 0, 10, 15)
	tx.SetOffset("events", 0, 15, 20)
	tx.SetOffset("events", 1, 0, 4)
	commit(t, tx)
	if got, want := offsets(t, s, "events"), map[int]int64{0: 20, 1: 4, 7: 1 << 40}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events offsets = %v, want %v", got, want)
	}
	if got, want := offsets(t, s, "items"), map[int]int64{0: 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("items offsets = %v, want %v", got, want)
	}
	// A reset to an earlier offset is allowed (replays do it).
	tx = s.Begin()
	tx.SetOffset("items", 0, 3, 0)
	commit(t, tx)
	if got := offsets(t, s, "items")[0]; got != 0 {
		t.Fatalf("items/0 = %d after reset, want 0", got)
	}
}

// everyKind buffers one write of every kind, to check that a failing Commit writes none.
func everyKind(tx featurestore.Tx) {
	tx.SetVector("rows", "set", []float32{7, 7, 7})
	tx.AddVector("rows", "base", []float64{1, 1, 1})
	tx.AddVector("rows", "fresh", []float64{2, 2})
	tx.IncrCounter("cnt", "x", 5)
	tx.IncrCounter("cnt", "new", 1)
	tx.AppendCatalog("cat", "new")
	tx.SetOffset("other", 0, featurestore.NoOffset, 1)
}

// seedState commits the state that the failing-Commit cases start from.
func seedState(t *testing.T, s featurestore.Store) names {
	tx := s.Begin()
	tx.SetVector("rows", "base", []float32{1, 2, 3})
	tx.SetVector("rows", "set", []float32{0})
	tx.IncrCounter("cnt", "x", 2)
	tx.IncrCounter("cnt", "max", math.MaxInt64-1)
	tx.AppendCatalog("cat", "old")
	tx.SetOffset("events", 0, featurestore.NoOffset, 10)
	commit(t, tx)
	return names{
		tables:     []string{"rows"},
		counters:   []string{"cnt"},
		counterIDs: []string{"x", "new", "max", "other"},
		catalogs:   []string{"cat"},
		topics:     []string{"events", "other"},
	}
}

func testFencing(t *testing.T, s featurestore.Store) {
	n := seedState(t, s)
	cases := []struct {
		name string
		off  func(tx featurestore.Tx)
	}{
		{"stale prev", func(tx featurestore.Tx) { tx.SetOffset("events", 0, 9, 12) }},
		{"prev ahead", func(tx featurestore.Tx) { tx.SetOffset("events", 0, 11, 12) }},
		{"NoOffset but stored", func(tx featurestore.Tx) { tx.SetOffset("events", 0, featurestore.NoOffset, 12) }},
		{"prev but none stored", func(tx featurestore.Tx) { tx.SetOffset("events", 1, 0, 5) }},
		{"second partition stale", func(tx featurestore.Tx) {
			tx.SetOffset("events", 0, 10, 12)
			tx.SetOffset("events", 1, 3, 5)
		}},
		{"broken chain in one Tx", func(tx featurestore.Tx) {
			tx.SetOffset("events", 0, 10, 12)
			tx.SetOffset("events", 0, 10, 13)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, s, n)
			for _, offFirst := range []bool{true, false} {
				tx := s.Begin()
				if offFirst {
					c.off(tx)
				}
				everyKind(tx)
				if !offFirst {
					c.off(tx)
				}
				merged, err := tx.Commit(context.Background())
				wantErr(t, err, true)
				if merged != nil {
					t.Fatalf("fenced Commit returned rows %v", merged)
				}
				wantUnchanged(t, s, n, before)
			}
		})
	}
	// Fencing wins over other errors: a writer that lost its partition learns that first.
	tx := s.Begin()
	tx.AddVector("rows", "base", []float64{1})
	tx.SetOffset("events", 0, 3, 4)
	_, err := tx.Commit(context.Background())
	wantErr(t, err, true)
	// The right prev commits.
	tx = s.Begin()
	everyKind(tx)
	tx.SetOffset("events", 0, 10, 12)
	commit(t, tx)
	if got := offsets(t, s, "events"); !reflect.DeepEqual(got, map[int]int64{0: 12}) {
		t.Fatalf("offsets = %v, want map[0:12]", got)
	}
	wantRow(t, "rows/base", vectors(t, s, "rows", "base")[0], []float32{2, 3, 4})
}

func testAllOrNothing(t *testing.T, s featurestore.Store) {
	n := seedState(t, s)
	cases := []struct {
		name string
		bad  func(tx featurestore.Tx)
	}{
		{"delta longer than row", func(tx featurestore.Tx) { tx.AddVector("rows", "base", []float64{1, 2, 3, 4}) }},
		{"delta shorter than row", func(tx featurestore.Tx) { tx.AddVector("rows", "base", []float64{1}) }},
		{"empty delta on row", func(tx featurestore.Tx) { tx.AddVector("rows", "base", []float64{}) }},
		{"delta after SetVector in Tx", func(tx featurestore.Tx) {
			tx.SetVector("rows", "y", []float32{1, 2, 3, 4, 5})
			tx.AddVector("rows", "y", []float64{1, 2, 3})
		}},
		{"second delta on new row", func(tx featurestore.Tx) {
			tx.AddVector("rows", "z", []float64{1, 2})
			tx.AddVector("rows", "z", []float64{1, 2, 3})
		}},
		{"counter overflow", func(tx featurestore.Tx) {
			tx.IncrCounter("cnt", "other", 3)
			tx.IncrCounter("cnt", "max", 1) // reaches MaxInt64: fine
			tx.IncrCounter("cnt", "max", 1) // overflows
		}},
		{"counter underflow", func(tx featurestore.Tx) {
			tx.IncrCounter("cnt", "other", math.MinInt64)
			tx.IncrCounter("cnt", "other", -1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, s, n)
			for _, badFirst := range []bool{true, false} {
				tx := s.Begin()
				if badFirst {
					c.bad(tx)
				}
				everyKind(tx)
				if !badFirst {
					c.bad(tx)
				}
				tx.SetOffset("events", 0, 10, 11)
				merged, err := tx.Commit(context.Background())
				wantErr(t, err, false)
				if merged != nil {
					t.Fatalf("failed Commit returned rows %v", merged)
				}
				wantUnchanged(t, s, n, before)
			}
		})
	}
	// A row's length may change by SetVector, after which deltas of the new length fit.
	tx := s.Begin()
	tx.SetVector("rows", "base", []float32{1, 1, 1, 1, 1})
	tx.AddVector("rows", "base", []float64{1, 2, 3, 4, 5})
	tx.SetOffset("events", 0, 10, 11)
	commit(t, tx)
	wantRow(t, "rows/base", vectors(t, s, "rows", "base")[0], []float32{2, 3, 4, 5, 6})
}

func testBadOffsetArguments(t *testing.T, s featurestore.Store) {
	n := seedState(t, s)
	before := snapshot(t, s, n)
	for _, c := range []struct {
		name       string
		part       int
		prev, next int64
	}{
		{"prev below NoOffset", 0, -2, 5},
		{"negative next", 0, 10, -1},
		{"negative partition", -1, featurestore.NoOffset, 1},
	} {
		tx := s.Begin()
		everyKind(tx)
		tx.SetOffset("events", c.part, c.prev, c.next)
		_, err := tx.Commit(context.Background())
		if err == nil {
			t.Fatalf("%s: Commit succeeded", c.name)
		}
		wantUnchanged(t, s, n, before)
	}
}

func testRollback(t *testing.T, s featurestore.Store) {
	n := seedState(t, s)
	before := snapshot(t, s, n)
	tx := s.Begin()
	everyKind(tx)
	tx.Rollback()
	if _, err := tx.Commit(context.Background()); err == nil {
		t.Fatal("Commit after Rollback succeeded")
	}
	tx.Rollback() // twice: no-op
	wantUnchanged(t, s, n, before)

	// Rollback after Commit is a no-op, and a finished Tx ignores further writes.
	tx = s.Begin()
	tx.SetVector("rows", "kept", []float32{1})
	commit(t, tx)
	tx.Rollback()
	tx.SetVector("rows", "late", []float32{2})
	if _, err := tx.Commit(context.Background()); err == nil {
		t.Fatal("second Commit succeeded")
	}
	got := vectors(t, s, "rows", "kept", "late")
	wantRow(t, "rows/kept", got[0], []float32{1})
	wantRow(t, "rows/late", got[1], nil)

	// Begin hands out independent transactions.
	a, b := s.Begin(), s.Begin()
	a.IncrCounter("cnt", "ab", 1)
	b.IncrCounter("cnt", "ab", 10)
	a.Rollback()
	commit(t, b)
	if got := counters(t, s, "cnt", "ab")[0]; got != 10 {
		t.Fatalf("cnt/ab = %d, want 10", got)
	}
}

func testCallerBuffers(t *testing.T, s featurestore.Store) {
	ctx := context.Background()
	v := []float32{1, 2, 3}
	d := []float64{0.5, 0.5, 0.5}
	tx := s.Begin()
	tx.SetVector("buf", "set", v)
	tx.AddVector("buf", "add", d)
	v[0], d[0] = 100, 100 // the Tx copied them
	merged := commit(t, tx)
	wantRow(t, "merged", merged[0], []float32{0.5, 0.5, 0.5})
	merged[0][1] = 100 // the caller owns the merged rows
	ids := []string{"set", "add"}
	rows := vectors(t, s, "buf", ids...)
	wantRow(t, "buf/set", rows[0], []float32{1, 2, 3})
	wantRow(t, "buf/add", rows[1], []float32{0.5, 0.5, 0.5})
	rows[0][0], rows[1][0], ids[0] = -1, -1, "zzz" // the caller owns what reads return
	err := s.ScanVectors(ctx, "buf", func(_ string, v []float32) error {
		v[2] = -1 // fn may keep and change v
		return nil
	})
	if err != nil {
		t.Fatalf("ScanVectors: %v", err)
	}
	names := []string{"set"}
	rows = vectors(t, s, "buf", "set", "add")
	wantRow(t, "buf/set after edits", rows[0], []float32{1, 2, 3})
	wantRow(t, "buf/add after edits", rows[1], []float32{0.5, 0.5, 0.5})

	tx = s.Begin()
	tx.AppendCatalog("c", names[0])
	names[0] = "changed"
	commit(t, tx)
	got := catalog(t, s, "c")
	if !reflect.DeepEqual(got, []string{"set"}) {
		t.Fatalf("catalog c = %v", got)
	}
	got[0] = "changed"
	if got := catalog(t, s, "c"); !reflect.DeepEqual(got, []string{"set"}) {
		t.Fatalf("catalog c after editing a read = %v", got)
	}
	o := offsets(t, s, "none")
	o[3] = 3
	if got := offsets(t, s, "none"); len(got) != 0 {
		t.Fatalf("offsets after editing a read = %v", got)
	}
}

func testEmptyCommit(t *testing.T, s featurestore.Store) {
	merged, err := s.Begin().Commit(context.Background())
	if err != nil || len(merged) != 0 {
		t.Fatalf("empty Commit = %v, %v; want no rows, no error", merged, err)
	}
}

func testClose(t *testing.T, s featurestore.Store) {
	ctx := context.Background()
	tx := s.Begin()
	tx.SetVector("t", "x", []float32{1})
	commit(t, tx)
	pending := s.Begin()
	pending.SetVector("t", "y", []float32{1})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, featurestore.ErrClosed) {
			t.Fatalf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	_, err := pending.Commit(ctx)
	check("Commit", err)
	_, err = s.Vectors(ctx, "t", []string{"x"})
	check("Vectors", err)
	_, err = s.Counters(ctx, "t", []string{"x"})
	check("Counters", err)
	_, err = s.Catalog(ctx, "t")
	check("Catalog", err)
	_, err = s.Offsets(ctx, "t")
	check("Offsets", err)
	check("ScanVectors", s.ScanVectors(ctx, "t", func(string, []float32) error { return nil }))
	tx = s.Begin()
	tx.SetVector("t", "z", []float32{1})
	_, err = tx.Commit(ctx)
	check("Commit of a Tx begun after Close", err)
}
