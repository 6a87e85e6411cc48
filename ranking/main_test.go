package ranking_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts goroutines (the sync loop, the ranking workers): every test must stop them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
