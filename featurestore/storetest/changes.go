package storetest

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/visrec/visrec/featurestore"
)

// changed calls s.Changed and sorts the ids.
func changed(t testing.TB, s featurestore.Store, table string, since int64) ([]string, int64) {
	t.Helper()
	ids, v, err := s.Changed(context.Background(), table, since)
	if err != nil {
		t.Fatalf("Changed(%s, %d): %v", table, since, err)
	}
	slices.Sort(ids)
	return ids, v
}

func testChangeLog(t *testing.T, s featurestore.Store) {
	if ids, v := changed(t, s, "t", 0); len(ids) != 0 || v != 0 {
		t.Fatalf("empty table: Changed = %v at version %d, want nothing at 0", ids, v)
	}
	tx := s.Begin()
	tx.SetVector("t", "a", []float32{1})
	tx.AddVector("t", "b", []float64{1})
	tx.AddVector("t", "b", []float64{1}) // twice in one commit
	tx.SetVector("u", "x", []float32{1})
	tx.IncrCounter("t", "c", 1) // counters are not rows
	commit(t, tx)
	ids, v1 := changed(t, s, "t", 0)
	// A commit advances the version by one, or by one per part where a store applies it in
	// parts.
	if want := []string{"a", "b"}; !reflect.DeepEqual(ids, want) || v1 < 1 {
		t.Fatalf("after one commit: Changed = %v at version %d, want %v at 1 or more", ids, v1, want)
	}
	if ids, v := changed(t, s, "t", v1); len(ids) != 0 || v != v1 {
		t.Fatalf("nothing new: Changed = %v at version %d, want nothing at %d", ids, v, v1)
	}

	tx = s.Begin()
	tx.AddVector("t", "b", []float64{1})
	tx.SetVector("t", "d", []float32{2})
	commit(t, tx)
	ids, v2 := changed(t, s, "t", v1)
	if want := []string{"b", "d"}; !reflect.DeepEqual(ids, want) || v2 <= v1 {
		t.Fatalf("second commit: Changed = %v at version %d, want %v above %d", ids, v2, want, v1)
	}
	tx = s.Begin()
	tx.AppendCatalog("cat", "z") // a commit without row writes leaves the version
	tx.SetVector("u", "y", []float32{1})
	commit(t, tx)
	if ids, v := changed(t, s, "t", v2); len(ids) != 0 || v != v2 {
		t.Fatalf("commit without rows of t: Changed = %v at version %d, want nothing at %d", ids, v, v2)
	}
	if ids, _ := changed(t, s, "t", 0); !reflect.DeepEqual(ids, []string{"a", "b", "d"}) {
		t.Fatalf("since 0: Changed = %v, want [a b d]", ids)
	}
	if ids, v := changed(t, s, "u", 0); !reflect.DeepEqual(ids, []string{"x", "y"}) || v < 2 {
		t.Fatalf("table u: Changed = %v at version %d, want [x y] at 2 or more", ids, v)
	}

	// A fenced commit records no change.
	tx = s.Begin()
	tx.SetVector("t", "e", []float32{3})
	tx.SetOffset("topic", 0, 41, 42)
	if _, err := tx.Commit(context.Background()); err == nil {
		t.Fatal("commit with a wrong prev offset succeeded")
	}
	if ids, v := changed(t, s, "t", v2); len(ids) != 0 || v != v2 {
		t.Fatalf("after a fenced commit: Changed = %v at version %d, want nothing at %d", ids, v, v2)
	}
}

func testCatalogFrom(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	for _, id := range []string{"c", "a", "b"} {
		tx.AppendCatalog("items", id)
	}
	commit(t, tx)
	ctx := context.Background()
	for start, want := range map[int][]string{0: {"c", "a", "b"}, 1: {"a", "b"}, 3: {}, 9: {}} {
		got, err := s.CatalogFrom(ctx, "items", start)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CatalogFrom(%d) = %v, want %v", start, got, want)
		}
	}
	if got, err := s.CatalogFrom(ctx, "none", 0); err != nil || len(got) != 0 {
		t.Fatalf("missing catalog: %v, %v", got, err)
	}
}

func testSets(t *testing.T, s featurestore.Store) {
	ctx := context.Background()
	members := func(name, id string) []string {
		t.Helper()
		m, err := s.SetMembers(ctx, name, id)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m)
		return m
	}
	if m := members("seen", "u1"); len(m) != 0 {
		t.Fatalf("missing set has members %v", m)
	}
	tx := s.Begin()
	tx.AddToSet("seen", "u1", "i1", "i2")
	tx.AddToSet("seen", "u1", "i2", "i3")
	tx.AddToSet("seen", "u2", "i1")
	tx.AddToSet("other", "u1", "x")
	tx.AddToSet("seen", "u3") // no member: nothing
	commit(t, tx)
	big := make([]string, 1200) // more members than one SADD call takes in the script
	for i := range big {
		big[i] = "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	tx = s.Begin()
	tx.AddToSet("seen", "u2", big...)
	commit(t, tx)
	if got, want := members("seen", "u1"), []string{"i1", "i2", "i3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("seen/u1 = %v, want %v", got, want)
	}
	if got := members("seen", "u2"); len(got) != 1+len(big) {
		t.Fatalf("seen/u2 has %d members, want %d", len(got), 1+len(big))
	}
	if got, want := members("other", "u1"), []string{"x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("other/u1 = %v, want %v", got, want)
	}
	if m := members("seen", "u3"); len(m) != 0 {
		t.Fatalf("seen/u3 = %v, want empty", m)
	}
}
