package snapshots_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/models"
	"github.com/visrec/visrec/snapshots"
)

func newRegistry(t *testing.T) (*snapshots.Registry, *redis.Client, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	ns := testenv.Unique("snaptest")
	r, err := snapshots.New(c, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keys := c.Keys(context.Background(), "\\{"+ns+"\\}:*").Val()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return r, c, ns
}

func snap(model string, fill float32, offs map[string]string) models.Snapshot {
	meta := map[string]string{"k": "v"}
	for k, v := range offs {
		meta[k] = v
	}
	return models.Snapshot{Model: model, Version: 1, Meta: meta, Tables: []models.Table{
		{Name: "items", Rows: 2, Cols: 2, Data: []float32{fill, 1, 2, 3}, IDs: []string{"a", "b"}},
	}}
}

// TestPublishListRollback: versions accumulate beside the live one, the pointer follows
// each publish, a rollback flips it back, and each version loads bit-exactly.
func TestPublishListRollback(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	if v, err := r.Live(ctx, "wmf"); err != nil || v != 0 {
		t.Fatalf("Live of an unpublished model = %d, %v; want 0", v, err)
	}
	if _, _, err := r.Load(ctx, "wmf", 0); !errors.Is(err, snapshots.ErrNoVersion) {
		t.Fatalf("Load of an unpublished model: %v, want ErrNoVersion", err)
	}
	var infos []snapshots.Info
	for i := range 3 {
		in, err := r.Publish(ctx, snap("wmf", float32(i), map[string]string{"offset:visrec.events:0": "100", "offset:visrec.events:3": "7"}))
		if err != nil {
			t.Fatal(err)
		}
		if in.Version != int64(i+1) {
			t.Fatalf("publish %d got version %d", i, in.Version)
		}
		if live, _ := r.Live(ctx, "wmf"); live != in.Version {
			t.Fatalf("after publishing v%d the live version is %d", in.Version, live)
		}
		infos = append(infos, in)
	}
	if want := map[string]map[int]int64{"visrec.events": {0: 100, 3: 7}}; !reflect.DeepEqual(infos[0].Offsets, want) {
		t.Fatalf("offsets = %v, want %v", infos[0].Offsets, want)
	}
	list, err := r.List(ctx, "wmf")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || !list[2].Live || list[0].Live || list[0].Version != 1 {
		t.Fatalf("List = %+v", list)
	}
	got, info, err := r.Load(ctx, "wmf", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := snap("wmf", 1, map[string]string{"offset:visrec.events:0": "100", "offset:visrec.events:3": "7"}); !reflect.DeepEqual(got, want) || info.Version != 2 {
		t.Fatalf("Load v2 = %+v (info %+v), want %+v", got, info, want)
	}

	if err := r.Rollback(ctx, "wmf", 1); err != nil {
		t.Fatal(err)
	}
	if live, _ := r.Live(ctx, "wmf"); live != 1 {
		t.Fatalf("after rollback to v1 the live version is %d", live)
	}
	if s, _, err := r.Load(ctx, "wmf", 0); err != nil || s.Tables[0].Data[0] != 0 {
		t.Fatalf("live load after rollback: %v, %v", s, err)
	}
	if err := r.Rollback(ctx, "wmf", 9); !errors.Is(err, snapshots.ErrNoVersion) {
		t.Fatalf("rollback to an unknown version: %v, want ErrNoVersion", err)
	}
	if _, _, err := r.Load(ctx, "wmf", 9); !errors.Is(err, snapshots.ErrNoVersion) {
		t.Fatalf("load of an unknown version: %v, want ErrNoVersion", err)
	}
}

// TestPrune keeps the newest versions and the live one, and deletes orphaned blobs.
func TestPrune(t *testing.T) {
	r, c, ns := newRegistry(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := r.Publish(ctx, snap("bpr", float32(i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Rollback(ctx, "bpr", 1); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "{"+ns+"}:snap:bpr:0", "orphan", 0) // a blob whose publisher died before its flip
	gone, err := r.Prune(ctx, "bpr", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2, 3, 0}; !reflect.DeepEqual(gone, want) {
		t.Fatalf("pruned %v, want %v", gone, want)
	}
	list, _ := r.List(ctx, "bpr")
	var vs []int64
	for _, in := range list {
		vs = append(vs, in.Version)
	}
	if want := []int64{1, 4, 5}; !reflect.DeepEqual(vs, want) {
		t.Fatalf("left %v, want %v", vs, want)
	}
	if n := c.Exists(ctx, "{"+ns+"}:snap:bpr:2", "{"+ns+"}:snap:bpr:0").Val(); n != 0 {
		t.Fatalf("%d pruned blobs remain", n)
	}
	if _, _, err := r.Load(ctx, "bpr", 0); err != nil {
		t.Fatalf("the live version must survive pruning: %v", err)
	}
}

// TestBadMetaOffsets: a snapshot whose offset entries are malformed is refused, and
// nothing is published.
func TestBadMetaOffsets(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	for _, bad := range []map[string]string{{"offset:t": "1"}, {"offset:t:x": "1"}, {"offset:t:0": "-4"}} {
		if _, err := r.Publish(ctx, snap("mf", 0, bad)); err == nil {
			t.Fatalf("published with meta %v", bad)
		}
	}
	if v, _ := r.Live(ctx, "mf"); v != 0 {
		t.Fatalf("a refused publish made v%d live", v)
	}
}

// TestAddIsNotLive: Add lists a version without moving the pointer; Rollback makes it live
// (what publish --install does after installing it).
func TestAddIsNotLive(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	if _, err := r.Publish(ctx, snap("bpr", 1, nil)); err != nil {
		t.Fatal(err)
	}
	in, err := r.Add(ctx, snap("bpr", 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if live, _ := r.Live(ctx, "bpr"); live != 1 || in.Version != 2 {
		t.Fatalf("after Add of v%d the live version is %d, want 1", in.Version, live)
	}
	list, err := r.List(ctx, "bpr")
	if err != nil || len(list) != 2 || list[1].Live {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := r.Rollback(ctx, "bpr", 2); err != nil {
		t.Fatal(err)
	}
	if live, _ := r.Live(ctx, "bpr"); live != 2 {
		t.Fatalf("after the flip the live version is %d, want 2", live)
	}
}
