// Package storetest is the test suite that every featurestore.Store implementation passes:
// the memory store and the Redis store run the very same cases, so they have the very same
// semantics. Randomness is seeded; a failure names its seed.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

// Run runs the suite. newStore returns a new, empty store for one subtest and arranges its
// cleanup (t.Cleanup); the suite may Close the store itself, so cleanup must not need it.
func Run(t *testing.T, newStore func(t *testing.T) featurestore.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s featurestore.Store)
	}{
		{"VectorRoundTrip", testVectorRoundTrip},
		{"Missing", testMissing},
		{"SetVectorReplaces", testSetVectorReplaces},
		{"DeleteVector", testDeleteVector},
		{"ScanVectors", testScanVectors},
		{"DeltaMergeExact", testDeltaMergeExact},
		{"DeltaMergeRounding", testDeltaMergeRounding},
		{"LongRows", testLongRows},
		{"CommitReturnsMerged", testCommitReturnsMerged},
		{"MergeVector", testMergeVector},
		{"MergeVectorErrors", testMergeVectorErrors},
		{"Counters", testCounters},
		{"Catalog", testCatalog},
		{"Offsets", testOffsets},
		{"CatalogFrom", testCatalogFrom},
		{"ChangeLog", testChangeLog},
		{"Sets", testSets},
		{"Fencing", testFencing},
		{"AllOrNothing", testAllOrNothing},
		{"BadOffsetArguments", testBadOffsetArguments},
		{"Rollback", testRollback},
		{"CallerBuffers", testCallerBuffers},
		{"EmptyCommit", testEmptyCommit},
		{"ConcurrentWriters", testConcurrentWriters},
		{"BigCommit", testBigCommit},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

// newRand returns the seeded source of a case and logs the seed (not in benchmarks, where
// logs clutter the results).
func newRand(t testing.TB, seed uint64) *rand.Rand {
	if _, bench := t.(*testing.B); !bench {
		t.Logf("seed %d", seed)
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// commit commits tx and fails the test on error.
func commit(t testing.TB, tx featurestore.Tx) [][]float32 {
	t.Helper()
	merged, err := tx.Commit(context.Background())
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return merged
}

// vectors reads rows and fails the test on error.
func vectors(t testing.TB, s featurestore.Store, table string, ids ...string) [][]float32 {
	t.Helper()
	rows, err := s.Vectors(context.Background(), table, ids)
	if err != nil {
		t.Fatalf("Vectors(%s): %v", table, err)
	}
	if len(rows) != len(ids) {
		t.Fatalf("Vectors(%s): %d rows for %d ids", table, len(rows), len(ids))
	}
	return rows
}

// counters reads counters and fails the test on error.
func counters(t testing.TB, s featurestore.Store, table string, ids ...string) []int64 {
	t.Helper()
	c, err := s.Counters(context.Background(), table, ids)
	if err != nil {
		t.Fatalf("Counters(%s): %v", table, err)
	}
	if len(c) != len(ids) {
		t.Fatalf("Counters(%s): %d values for %d ids", table, len(c), len(ids))
	}
	return c
}

// catalog reads a catalog and fails the test on error.
func catalog(t testing.TB, s featurestore.Store, name string) []string {
	t.Helper()
	c, err := s.Catalog(context.Background(), name)
	if err != nil {
		t.Fatalf("Catalog(%s): %v", name, err)
	}
	return c
}

// offsets reads offsets and fails the test on error.
func offsets(t testing.TB, s featurestore.Store, topic string) map[int]int64 {
	t.Helper()
	o, err := s.Offsets(context.Background(), topic)
	if err != nil {
		t.Fatalf("Offsets(%s): %v", topic, err)
	}
	return o
}

// bits returns v's bit patterns, so that rows with NaN and -0 compare exactly.
func bits(v []float32) []uint32 {
	if v == nil {
		return nil
	}
	b := make([]uint32, len(v))
	for i, f := range v {
		b[i] = math.Float32bits(f)
	}
	return b
}

// sameRow reports whether a and b are the same row bit for bit, nil (missing) differing from
// empty.
func sameRow(a, b []float32) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// wantRow fails the test unless got is want bit for bit.
func wantRow(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if sameRow(got, want) {
		return
	}
	if (got == nil) != (want == nil) || len(got) != len(want) {
		t.Fatalf("%s: got %d values (nil %v), want %d (nil %v)", what, len(got), got == nil, len(want), want == nil)
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %g (%#08x), want %g (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// state is everything a store holds under the names that a case uses, for before/after
// comparisons.
type state struct {
	Rows     map[string]map[string][]uint32
	Counters map[string][]int64
	Catalogs map[string][]string
	Offsets  map[string]map[int]int64
}

// names lists what snapshot reads.
type names struct {
	tables     []string // rows, read by ScanVectors
	counters   []string // counter tables
	counterIDs []string
	catalogs   []string
	topics     []string
}

func snapshot(t testing.TB, s featurestore.Store, n names) state {
	t.Helper()
	st := state{
		Rows:     make(map[string]map[string][]uint32),
		Counters: make(map[string][]int64),
		Catalogs: make(map[string][]string),
		Offsets:  make(map[string]map[int]int64),
	}
	for _, tb := range n.tables {
		rows := make(map[string][]uint32)
		err := s.ScanVectors(context.Background(), tb, func(id string, v []float32) error {
			rows[id] = bits(v)
			return nil
		})
		if err != nil {
			t.Fatalf("ScanVectors(%s): %v", tb, err)
		}
		st.Rows[tb] = rows
	}
	for _, tb := range n.counters {
		st.Counters[tb] = counters(t, s, tb, n.counterIDs...)
	}
	for _, c := range n.catalogs {
		st.Catalogs[c] = catalog(t, s, c)
	}
	for _, tp := range n.topics {
		st.Offsets[tp] = offsets(t, s, tp)
	}
	return st
}

// wantUnchanged fails the test if the store's state under n differs from before.
func wantUnchanged(t testing.TB, s featurestore.Store, n names, before state) {
	t.Helper()
	after := snapshot(t, s, n)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", describe(before), describe(after))
	}
}

func describe(st state) string {
	var tables []string
	for tb := range st.Rows {
		tables = append(tables, tb)
	}
	sort.Strings(tables)
	out := ""
	for _, tb := range tables {
		out += fmt.Sprintf("rows %s: %d; ", tb, len(st.Rows[tb]))
	}
	return out + fmt.Sprintf("counters %v; catalogs %v; offsets %v", st.Counters, st.Catalogs, st.Offsets)
}

// wantErr fails the test unless err is non-nil, and ErrFenced exactly when fenced.
func wantErr(t testing.TB, err error, fenced bool) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("Commit succeeded, want an error")
	case fenced && !errors.Is(err, featurestore.ErrFenced):
		t.Fatalf("Commit: %v, want ErrFenced", err)
	case !fenced && errors.Is(err, featurestore.ErrFenced):
		t.Fatalf("Commit: %v, want an error other than ErrFenced", err)
	}
}

// randRow returns n values in [-scale, scale).
func randRow(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((2*r.Float64() - 1) * scale)
	}
	return v
}
