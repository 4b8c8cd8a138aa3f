// Package logtail reads the log of a process the harness runs, line by
// line, and keeps its last lines for the harness's error messages.
package logtail

import (
	"bufio"
	"io"
	"strings"
	"sync"
)

const (
	keepLines = 10  // lines a Tail keeps
	keepBytes = 300 // of each line
)

// Scan calls f with each line of r, from the calling goroutine, until r
// ends. A line longer than 1 MiB ends the scan, but r is still read to its
// end, so that the process writing it never blocks on a full pipe.
func Scan(r io.Reader, f func(line string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f(sc.Text())
	}
	io.Copy(io.Discard, r)
}

// Tail is the last lines of a log. The zero value is empty; it is safe
// for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
}

// Add keeps the start of line, and forgets the oldest line beyond ten.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line[:min(len(line), keepBytes)])
	if len(t.lines) > keepLines {
		t.lines = t.lines[len(t.lines)-keepLines:]
	}
}

// String is the end of an error message: "; its last log lines:" and the
// lines kept, indented, or "" when there are none.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "; its last log lines:\n  " + strings.Join(t.lines, "\n  ")
}
