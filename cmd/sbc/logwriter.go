package main

import (
	"io"
	"sync"
	"time"
)

const (
	// logDelay is the longest a log line waits before it is written out.
	logDelay = 10 * time.Millisecond
	// logPending is how many bytes of log lines are written out at once,
	// without waiting for logDelay.
	logPending = 64 << 10
)

// logWriter gathers the log's lines and writes them out together, at most
// logDelay after the first of them: at 1,000 calls/s the daemon logs 4,000
// lines/s, and one write system call per line (each waking the reader of a
// pipe) cost more CPU than a goroutine hand-off per line, which costs more
// than this. A line is never held longer than logDelay, and Close writes out
// what is left.
type logWriter struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer // armed while buf holds lines
	closed bool
}

func newLogWriter(w io.Writer) *logWriter {
	l := &logWriter{w: w}
	l.timer = time.AfterFunc(time.Hour, l.flush)
	l.timer.Stop()
	return l
}

// Write takes p, a whole log line (slog handlers write each record with one
// call), and writes it out with the lines around it.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.w.Write(p)
	}
	if len(l.buf) == 0 {
		l.timer.Reset(logDelay)
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logPending {
		l.writeOut()
	}
	return len(p), nil
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeOut()
}

// writeOut writes buf under l.mu: lines go out whole and in order, and a
// slow reader slows the loggers down rather than letting buf grow.
func (l *logWriter) writeOut() {
	if len(l.buf) == 0 {
		return
	}
	l.timer.Stop()
	l.w.Write(l.buf) // an error here has nowhere to be reported
	if cap(l.buf) > 4*logPending {
		l.buf = nil // do not keep a burst's buffer for good
	}
	l.buf = l.buf[:0]
}

// Close writes out what is gathered; later lines are written at once.
func (l *logWriter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeOut()
	l.closed = true
}
