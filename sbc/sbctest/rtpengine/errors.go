//go:build linux

package rtpengine

import (
	"errors"
	"fmt"
)

var (
	// ErrNotInstalled: no rtpengine binary where Config.Bin says.
	ErrNotInstalled = errors.New("rtpengine is not installed (Debian: apt-get install rtpengine-daemon)")
	// ErrClosed: the client was closed while a request waited.
	ErrClosed = errors.New("ng client closed")
	// ErrExited: the daemon ended before it was stopped.
	ErrExited = errors.New("rtpengine exited")
	// ErrNoCounters: a statistics reply lacks a counter this package reads
	// (another rtpengine version may name them otherwise).
	ErrNoCounters = errors.New("ng statistics: counters missing")
)

// Error is rtpengine's "result": "error" reply to a command.
type Error struct {
	Command string
	Reason  string // its "error-reason"
}

func (e *Error) Error() string {
	return fmt.Sprintf("rtpengine %s: %s", e.Command, e.Reason)
}
