package sbc

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// sipgo's own lines, as the daemon has them: its connections'
	// bookkeeping at debug level, not warnings amid benchmark results.
	SetLibraryLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	os.Exit(m.Run())
}
