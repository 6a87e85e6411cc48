package models_test

import (
	"bytes"
	"testing"

	"github.com/visrec/visrec/models"
)

// roundTrip writes snap, reads it back, loads it with load, and requires the loaded model's
// own snapshot to encode to the very same bytes. It returns the loaded model.
func roundTrip[M models.Snapshotter](t *testing.T, snap models.Snapshot, load func(models.Snapshot) (M, error)) M {
	t.Helper()
	first := encode(t, snap)
	s, err := models.ReadSnapshot(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := load(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, encode(t, m2.Snapshot())) {
		t.Fatal("snapshot bytes differ after a round trip")
	}
	return m2
}
