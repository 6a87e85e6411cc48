package storetest

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

// testMergeVector checks MergeVector's two cases against an independent computation: a row
// still at base becomes value bit for bit, even where base + (value - base) would round
// elsewhere (exponents up to 90 bits apart); a row another writer moved gets value - base
// added, as AddVector would; a missing row counts as zeros. Merged rows come back in call
// order, interleaved with AddVector's.
func testMergeVector(t *testing.T, s featurestore.Store) {
	r := newRand(t, 11)
	const rows, dim = 30, 65
	base, value, other := make([][]float32, rows), make([][]float32, rows), make([][]float32, rows)
	tx := s.Begin()
	for i := range rows {
		base[i], value[i], other[i] = make([]float32, dim), make([]float32, dim), make([]float32, dim)
		for j := range dim {
			base[i][j], value[i][j] = exactPair(r)
			other[i][j] = base[i][j]
			if i%3 == 1 { // another writer moved the row
				other[i][j] = base[i][j] + float32(r.NormFloat64())
			}
		}
		if i%3 != 2 { // every third row is missing
			tx.SetVector("m", fmt.Sprint(i), other[i])
		}
	}
	commit(t, tx)

	want := make([][]float32, rows)
	for i := range rows {
		want[i] = make([]float32, dim)
		for j := range dim {
			switch i % 3 {
			case 0:
				want[i][j] = value[i][j]
			case 1:
				want[i][j] = float32(float64(other[i][j]) + (float64(value[i][j]) - float64(base[i][j])))
			case 2:
				want[i][j] = float32(0 + (float64(value[i][j]) - float64(base[i][j])))
			}
		}
	}
	tx = s.Begin()
	for i := range rows {
		tx.MergeVector("m", fmt.Sprint(i), base[i], value[i])
		if i == 4 {
			tx.AddVector("m", "added", []float64{1, 2})
		}
	}
	merged := commit(t, tx)
	if len(merged) != rows+1 {
		t.Fatalf("Commit returned %d merged rows, want %d", len(merged), rows+1)
	}
	wantRow(t, "merged AddVector row (5th call)", merged[5], []float32{1, 2})
	merged = append(merged[:5], merged[6:]...)
	ids := make([]string, rows)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	got := vectors(t, s, "m", ids...)
	for i := range rows {
		wantRow(t, fmt.Sprintf("merged row %d (case %d)", i, i%3), merged[i], want[i])
		wantRow(t, fmt.Sprintf("stored row %d (case %d)", i, i%3), got[i], want[i])
	}

	// Twice in one Tx: the second call's base is the first's value.
	tx = s.Begin()
	next := []float32{float32(math.Ldexp(1, -90)), 3, -0.0}
	tx.MergeVector("twice", "x", make([]float32, 3), []float32{1e30, 2, 5})
	tx.MergeVector("twice", "x", []float32{1e30, 2, 5}, next)
	commit(t, tx)
	wantRow(t, "row merged twice in one Tx", vectors(t, s, "twice", "x")[0], next)
}

// testMergeVectorErrors checks that a MergeVector whose lengths do not fit fails the whole
// Commit and writes nothing.
func testMergeVectorErrors(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	tx.SetVector("m", "a", []float32{1, 2})
	commit(t, tx)
	for name, fill := range map[string]func(featurestore.Tx){
		"base and value lengths differ": func(tx featurestore.Tx) { tx.MergeVector("m", "b", []float32{1}, []float32{1, 2}) },
		"stored row is longer":          func(tx featurestore.Tx) { tx.MergeVector("m", "a", []float32{1}, []float32{3}) },
	} {
		tx := s.Begin()
		tx.SetVector("m", "c", []float32{9})
		fill(tx)
		if _, err := tx.Commit(context.Background()); err == nil {
			t.Fatalf("%s: Commit succeeded", name)
		}
		got := vectors(t, s, "m", "a", "b", "c")
		wantRow(t, name+": row a", got[0], []float32{1, 2})
		if got[1] != nil || got[2] != nil {
			t.Fatalf("%s: the failed Commit wrote rows: %v", name, got)
		}
	}
}
