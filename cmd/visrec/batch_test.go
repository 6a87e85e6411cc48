package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/visrec/visrec/models"
)

// writeRatings writes a small MovieLens-style ratings.csv: 30 users rating 8 of 20 items
// each, stars from a planted taste.
func writeRatings(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("userId,movieId,rating,timestamp\n")
	for u := range 30 {
		for n := range 8 {
			i := (u*7 + n*3) % 20
			stars := 1 + (u%5+i%5)%5
			fmt.Fprintf(&b, "%d,%d,%d.0,%d\n", u+1, i+100, stars, 1000+u*10+n)
		}
	}
	path := filepath.Join(t.TempDir(), "ratings.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBatchPMF: pmf-als and mf-als are batch models for eval and retrain; trainBatch honours
// K and the iteration count, and their snapshot file loads back into the same model.
func TestBatchPMF(t *testing.T) {
	ds, err := loadData(writeRatings(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pmf-als", "mf-als"} {
		if !batchModels[name] {
			t.Errorf("%s is not a batch model", name)
		}
		ticks := 0
		m, err := trainBatch(name, ds, ds.Interactions, 3, 4, func(int) { ticks++ })
		if err != nil {
			t.Fatal(err)
		}
		p := m.(*models.PMF)
		if ticks != 4 || p.Factors() != 3 || p.Options().Iterations != 4 || p.Name() != name {
			t.Errorf("%s: %d ticks, K=%d, %d iterations, name %q", name, ticks, p.Factors(), p.Options().Iterations, p.Name())
		}
		path := filepath.Join(t.TempDir(), name+".snap")
		if err := writeSnapshotFile(path, m.Snapshot()); err != nil {
			t.Fatal(err)
		}
		snap, err := readSnapshotFile(path)
		if err != nil {
			t.Fatal(err)
		}
		back, err := models.PMFFromSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		for u := range int32(len(ds.Users)) {
			if !slices.Equal(back.ScoreAll(u, nil), m.ScoreAll(u, nil)) {
				t.Fatalf("%s user %d: loaded model scores differently", name, u)
			}
		}
	}
}

// TestRetrainForUpdate: retrain --for-update writes mf-als as the online mf's snapshot, rows
// named by the data set's ids and predicting as the batch model; other models refuse it.
func TestRetrainForUpdate(t *testing.T) {
	data := writeRatings(t)
	out := filepath.Join(t.TempDir(), "mf.snap")
	ctx := context.Background()
	if err := runRetrain(ctx, zap.NewNop(), []string{"--models", "pmf-als", "--for-update", "--data", data, "--out", out}); err == nil {
		t.Error("pmf-als --for-update accepted")
	}
	args := []string{"--models", "mf-als", "--factors", "4", "--epochs", "5", "--for-update", "--data", data, "--out", out}
	if err := runRetrain(ctx, zap.NewNop(), args); err != nil {
		t.Fatal(err)
	}
	snap, err := readSnapshotFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := loadData(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := trainBatch("mf-als", ds, ds.Interactions, 4, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Model != "mf" {
		t.Fatalf("model %q, want mf", snap.Model)
	}
	rows := map[string]models.Table{}
	for _, tab := range snap.Tables {
		rows[tab.Name] = tab
	}
	users, items, global := rows["users"], rows["items"], rows["global"]
	if !slices.Equal(users.IDs, ds.Users) || !slices.Equal(items.IDs, ds.Items) || global.Rows != 1 || users.Cols != 5 {
		t.Fatalf("tables %v %v %v", users.IDs, items.IDs, global)
	}
	for u := range users.Rows {
		for i := range items.Rows {
			p, q := users.Data[u*5:u*5+5], items.Data[i*5:i*5+5]
			s := float64(global.Data[0]) + float64(p[0]) + float64(q[0])
			for d := 1; d < 5; d++ {
				s += float64(p[d]) * float64(q[d])
			}
			if want := m.(*models.PMF).Predict(int32(u), int32(i)); math.Abs(s-want) > 1e-6 {
				t.Fatalf("user %d item %d: snapshot rows predict %v, model %v", u, i, s, want)
			}
		}
	}
}
