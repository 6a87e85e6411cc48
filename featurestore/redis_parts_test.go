package featurestore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/featurestore"
)

// partsCase seeds a store and builds a Tx whose 16 row writes span six parts of three:
// user rows set, item rows merged (half of them moved by another writer since the base was
// read, so the script adds the change), an AddVector, a counter, a catalog append, an
// offset.
type partsCase struct{}

func (partsCase) seed(t *testing.T, s featurestore.Store) {
	tx := s.Begin()
	for i := range 4 {
		tx.SetVector("items", fmt.Sprintf("i%d", i), []float32{float32(i), 1, 2})
	}
	tx.IncrCounter("cnt", "i0", 5)
	tx.AppendCatalog("items", "i0")
	tx.SetOffset("events", 0, featurestore.NoOffset, 100)
	if _, err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (partsCase) write(tx featurestore.Tx) {
	for i := range 10 {
		tx.SetVector("users", fmt.Sprintf("u%d", i), []float32{float32(i), -1, 0.5})
	}
	for i := range 4 {
		base := []float32{float32(i), 1, 2}
		if i%2 == 1 {
			base[0] += 0.25 // another writer moved the row since
		}
		tx.MergeVector("items", fmt.Sprintf("i%d", i), base, []float32{base[0] + 1, 1.5, 2})
	}
	tx.AddVector("items", "i9", []float64{0.5, 0.25, 2})
	tx.AddVector("items", "i9", []float64{1, 1, 1})
	tx.IncrCounter("cnt", "i0", 3)
	tx.AppendCatalog("items", "i9")
	tx.SetOffset("events", 0, 100, 110)
}

// storeState is everything partsCase touches, read back.
type storeState struct {
	users, items [][]float32
	counter      []int64
	catalog      []string
	offsets      map[int]int64
}

func readState(t *testing.T, s featurestore.Store) storeState {
	t.Helper()
	ctx := context.Background()
	var st storeState
	var err error
	users := make([]string, 10)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	if st.users, err = s.Vectors(ctx, "users", users); err != nil {
		t.Fatal(err)
	}
	if st.items, err = s.Vectors(ctx, "items", []string{"i0", "i1", "i2", "i3", "i9"}); err != nil {
		t.Fatal(err)
	}
	if st.counter, err = s.Counters(ctx, "cnt", []string{"i0"}); err != nil {
		t.Fatal(err)
	}
	if st.catalog, err = s.Catalog(ctx, "items"); err != nil {
		t.Fatal(err)
	}
	if st.offsets, err = s.Offsets(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	return st
}

// wantInMemory returns the state and merged rows that the memory store (an independent
// implementation, always in one piece) reaches from partsCase.
func wantInMemory(t *testing.T) (storeState, [][]float32) {
	m := featurestore.NewMemory()
	partsCase{}.seed(t, m)
	tx := m.Begin()
	partsCase{}.write(tx)
	merged, err := tx.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return readState(t, m), merged
}

var errCrash = errors.New("writer crashed")

// TestRedisRecoverAfterCrash stops a commit in parts after its second part, as a crash of
// the writer would: the commit stands (offsets and counters moved, the redo entries hold
// the rest), a later Commit on the old offsets is fenced, and Recover from another client
// brings the state to what the whole commit makes.
func TestRedisRecoverAfterCrash(t *testing.T) {
	want, _ := wantInMemory(t)
	s, admin, ns := newRedisStorePart(t, 3)
	partsCase{}.seed(t, s)
	featurestore.SetAfterPart(s, func(part int) error {
		if part == 1 {
			return errCrash
		}
		return nil
	})
	tx := s.Begin()
	partsCase{}.write(tx)
	if _, err := tx.Commit(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("Commit = %v, want the crash", err)
	}
	ctx := context.Background()
	if n := pendingParts(t, admin, ns); n != 4 {
		t.Fatalf("%d parts pending after two of six applied, want 4", n)
	}
	half := readState(t, s)
	if !reflect.DeepEqual(half.offsets, want.offsets) || !reflect.DeepEqual(half.counter, want.counter) {
		t.Fatalf("after the stage: offsets %v, counter %v; want %v, %v", half.offsets, half.counter, want.offsets, want.counter)
	}
	if reflect.DeepEqual(half.catalog, want.catalog) {
		t.Fatal("the catalog append (last part) landed before its part")
	}

	// The writer's next commit, on the offsets it had, is fenced: the commit stands.
	tx = s.Begin()
	tx.SetVector("users", "late", []float32{1, 2, 3})
	tx.SetOffset("events", 0, 100, 101)
	if _, err := tx.Commit(ctx); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("commit on the old offsets = %v, want ErrFenced", err)
	}

	other, err := featurestore.NewRedis(newRedisClient(t), featurestore.RedisOptions{Namespace: ns, CommitPart: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Recover:\n got %+v\nwant %+v", got, want)
	}
	if n := admin.Exists(ctx, "{"+ns+"}:redo:pending").Val(); n != 0 || pendingParts(t, admin, ns) != 0 {
		t.Fatal("pending parts left after Recover")
	}
	if err := other.Recover(ctx); err != nil { // nothing left: a no-op
		t.Fatal(err)
	}
	if got := readState(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a second Recover:\n got %+v\nwant %+v", got, want)
	}
}

// TestRedisRecoverRacesWriter lets another client Recover the commit while the writer is
// between its parts: every part lands once, and the writer's Commit succeeds. The parts
// that Recover applied (every merge is in them) return the rows as stored then: here the
// final ones.
func TestRedisRecoverRacesWriter(t *testing.T) {
	want, _ := wantInMemory(t)
	it := want.items
	wantMerged := [][]float32{it[0], it[1], it[2], it[3], it[4], it[4]}
	s, _, ns := newRedisStorePart(t, 3)
	partsCase{}.seed(t, s)
	other, err := featurestore.NewRedis(newRedisClient(t), featurestore.RedisOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	featurestore.SetAfterPart(s, func(part int) error {
		if part == 0 {
			return other.Recover(ctx)
		}
		return nil
	})
	tx := s.Begin()
	partsCase{}.write(tx)
	merged, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged, wantMerged) {
		t.Fatalf("merged rows %v, want %v", merged, wantMerged)
	}
	if got := readState(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("state:\n got %+v\nwant %+v", got, want)
	}
}

// TestRedisRecoverCorruptEntry: an entry that is not a part is reported, named, and kept.
func TestRedisRecoverCorruptEntry(t *testing.T) {
	s, admin, ns := newRedisStorePart(t, 3)
	ctx := context.Background()
	admin.HSet(ctx, "{"+ns+"}:redo:x", "0000", "\xff\xff")
	admin.SAdd(ctx, "{"+ns+"}:redo:pending", "x")
	err := s.Recover(ctx)
	if err == nil || pendingParts(t, admin, ns) != 1 {
		t.Fatalf("Recover = %v, %d parts pending; want an error and the entry kept", err, pendingParts(t, admin, ns))
	}
	t.Log(err)
}

// TestRedisStageRefusedLeavesNothing: a commit in parts that the stage refuses (fenced, or a
// delta that does not fit its stored row) leaves neither state nor parts behind.
func TestRedisStageRefusedLeavesNothing(t *testing.T) {
	s, admin, ns := newRedisStorePart(t, 3)
	partsCase{}.seed(t, s)
	before := readState(t, s)
	ctx := context.Background()
	for name, bad := range map[string]func(featurestore.Tx){
		"fenced":     func(tx featurestore.Tx) { tx.SetOffset("events", 0, 99, 120) },
		"bad length": func(tx featurestore.Tx) { tx.AddVector("items", "i0", []float64{1, 2}) },
	} {
		tx := s.Begin()
		partsCase{}.write(tx)
		bad(tx)
		_, err := tx.Commit(ctx)
		if err == nil {
			t.Fatalf("%s: Commit succeeded", name)
		}
		if got := readState(t, s); !reflect.DeepEqual(got, before) {
			t.Fatalf("%s: state changed:\n got %+v\nwant %+v", name, got, before)
		}
		if keys := admin.Keys(ctx, "{"+ns+"}:redo:*").Val(); len(keys) != 0 {
			t.Fatalf("%s: redo keys left: %v", name, keys)
		}
	}
}

// pendingParts counts the parts of pending commits in namespace ns.
func pendingParts(t *testing.T, admin *redis.Client, ns string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	for _, id := range admin.SMembers(ctx, "{"+ns+"}:redo:pending").Val() {
		n += admin.HLen(ctx, "{"+ns+"}:redo:"+id).Val()
	}
	return n
}

// TestRedisChecksAheadThenWriter: a commit in parts checks its rows ahead of its stage; a
// row that another writer rewrites in between is checked again by the stage. Rewritten with
// another length, the stage refuses the commit and nothing of it lands; rewritten with the
// same length, the commit lands on top of it exactly as the memory store computes.
func TestRedisChecksAheadThenWriter(t *testing.T) {
	ctx := context.Background()
	for name, row := range map[string][]float32{"another length": {7, 7, 7, 7}, "same length": {7, 7, 7}} {
		t.Run(name, func(t *testing.T) {
			s, _, _ := newRedisStorePart(t, 3)
			partsCase{}.seed(t, s)
			other := func(st featurestore.Store) error {
				tx := st.Begin()
				tx.SetVector("items", "i1", row) // i1: a row the Tx merges
				_, err := tx.Commit(ctx)
				return err
			}
			featurestore.SetAfterChecks(s, func() error { return other(s) })
			tx := s.Begin()
			partsCase{}.write(tx)
			merged, err := tx.Commit(ctx)
			featurestore.SetAfterChecks(s, nil)

			m := featurestore.NewMemory()
			partsCase{}.seed(t, m)
			if err := other(m); err != nil {
				t.Fatal(err)
			}
			if len(row) != 3 {
				if err == nil || !strings.Contains(err.Error(), "row has 4") {
					t.Fatalf("Commit after a rewrite to 4 values: %v, want the stage's length error", err)
				}
				if got, want := readState(t, s), readState(t, m); !reflect.DeepEqual(got, want) {
					t.Fatalf("state after the refused commit:\n got %+v\nwant %+v", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mtx := m.Begin()
			partsCase{}.write(mtx)
			wantMerged, err := mtx.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := readState(t, s), readState(t, m); !reflect.DeepEqual(got, want) {
				t.Fatalf("state:\n got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(merged, wantMerged) {
				t.Fatalf("merged rows:\n got %v\nwant %v", merged, wantMerged)
			}
		})
	}
}
