package netlab

import (
	"testing"

	"go.uber.org/goleak"
)

// Do's goroutines end with it: none is left running, on a thread in a lab's
// namespace or elsewhere.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
