package main

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/visrec/visrec/internal/testenv"
	"github.com/visrec/visrec/toplists"
)

// TestListsCommand runs `visrec lists` on a namespace of synthetic rows: every user gets a
// list of --k items (seen items left out, best first) that a client reads with one GET and
// toplists.DecodeList, and the command stops cleanly when its context ends.
func TestListsCommand(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ns := testenv.Unique("listscmd")
	ctx := context.Background()
	store, err := openRedis(ctx, addr, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer dropNamespace(addr, ns)
	defer store.Close()
	mf := modelFlags{names: "bpr,mf", factors: 8}
	ms, err := servableModels(&mf)
	if err != nil {
		t.Fatal(err)
	}
	if err := fillSynthetic(ctx, store, ms, 500, 20, 5); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runLists(rctx, zap.NewNop(), []string{"--redis", addr, "--namespace", ns, "--models", "bpr,mf",
			"--factors", "8", "--k", "7", "--progress", "50ms"})
	}()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for _, model := range []string{"bpr", "mf"} {
		for u := range 20 {
			user := "u" + strconv.Itoa(u)
			key := toplists.ListKey(ns, model, user)
			var items []toplists.Entry
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				l, err := toplists.ReadList(ctx, c, key)
				if err != nil {
					t.Fatal(err)
				}
				if age := time.Since(l.Written); len(l.Items) > 0 && (age < -time.Second || age > time.Minute) {
					t.Fatalf("%s was written at %v, %v ago", key, l.Written, age)
				}
				items = l.Items
				if len(items) == 7 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s has %d entries after 20s, want 7", key, len(items))
				}
			}
			seen, err := store.SetMembers(ctx, "seen", user)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range items {
				for _, s := range seen {
					if e.Item == s {
						t.Fatalf("%s lists %s, which the user has seen", key, s)
					}
				}
				if i > 0 && e.Score > items[i-1].Score {
					t.Fatalf("%s is not in descending order: %v", key, items)
				}
			}
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("lists returned %v, want context.Canceled", err)
	}
	err = runLists(ctx, zap.NewNop(), []string{"--redis", addr, "--namespace", ns, "--models", "vae"})
	if err == nil {
		t.Fatal("an unknown model was accepted")
	}
}
