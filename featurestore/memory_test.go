package featurestore_test

import (
	"testing"

	"github.com/visrec/visrec/featurestore"
	"github.com/visrec/visrec/featurestore/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) featurestore.Store {
		s := featurestore.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func BenchmarkMemory(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) featurestore.Store {
		s := featurestore.NewMemory()
		b.Cleanup(func() { _ = s.Close() })
		return s
	})
}
