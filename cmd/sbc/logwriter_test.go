package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder records what is written and how many Write calls it took.
type recorder struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
}

func (w *recorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.buf.Write(p)
}

func (w *recorder) snapshot() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.calls
}

func TestLogWriterKeepsEveryLineWholeAndInOrder(t *testing.T) {
	var w recorder
	l := newLogWriter(&w)
	const writers, lines = 4, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(l, "g%d line %d %s\n", g, i, strings.Repeat("x", i%200))
			}
		}()
	}
	wg.Wait()
	l.Close()
	got, calls := w.snapshot()
	next := make([]int, writers)
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		var g, i int
		if _, err := fmt.Sscanf(line, "g%d line %d", &g, &i); err != nil || len(line) != len(fmt.Sprintf("g%d line %d ", g, i))+i%200 {
			t.Fatalf("torn line %q", line)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g, n := range next {
		if n != lines {
			t.Errorf("goroutine %d: %d lines out, want %d", g, n, lines)
		}
	}
	if calls >= writers*lines/10 {
		t.Errorf("%d writes for %d lines: not gathered", calls, writers*lines)
	}
}

func TestLogWriterWritesALineOutWithinItsDelay(t *testing.T) {
	var w recorder
	l := newLogWriter(&w)
	defer l.Close()
	for round := range 3 { // the timer is armed again after each write out
		for i := range 50 {
			fmt.Fprintf(l, "round %d line %d\n", round, i)
		}
		start := time.Now()
		for {
			got, calls := w.snapshot()
			if strings.Count(got, "\n") == 50*(round+1) {
				if calls != round+1 {
					t.Fatalf("round %d: %d writes, want one per round", round, calls)
				}
				break
			}
			if time.Since(start) > 100*logDelay {
				t.Fatalf("round %d: lines still held after %v (delay %v): %q", round, time.Since(start), logDelay, got)
			}
			time.Sleep(logDelay / 10)
		}
	}
}

func TestLogWriterWritesAFullBufferAtOnce(t *testing.T) {
	var w recorder
	l := newLogWriter(&w)
	defer l.Close()
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	for range logPending / len(line) {
		l.Write(line)
	}
	if got, calls := w.snapshot(); calls != 1 || len(got) != logPending {
		t.Errorf("after %d bytes: %d writes of %d bytes, want 1 of %d without waiting", logPending, calls, len(got), logPending)
	}
}

func TestLogWriterCloseWritesTheRestThenWritesThrough(t *testing.T) {
	var w recorder
	l := newLogWriter(&w)
	fmt.Fprintln(l, "gathered")
	l.Close()
	if got, _ := w.snapshot(); got != "gathered\n" {
		t.Fatalf("after Close: %q", got)
	}
	fmt.Fprintln(l, "after close")
	if got, calls := w.snapshot(); got != "gathered\nafter close\n" || calls != 2 {
		t.Errorf("got %q in %d writes", got, calls)
	}
	time.Sleep(2 * logDelay) // a stale timer writes nothing twice
	if got, _ := w.snapshot(); got != "gathered\nafter close\n" {
		t.Errorf("got %q", got)
	}
}
