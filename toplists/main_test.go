package toplists_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts goroutines (with the index it ranks with): every test must stop them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
