//go:build linux

package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress keeps one status line up to date on a terminal. A nil *progress
// prints nothing, which is what a non-terminal or -quiet gets.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
}

// set replaces the status line; it redraws at most 5 times a second.
func (p *progress) set(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		fmt.Fprintf(p.w, "\r\x1b[K"+format, args...)
	}
}

// clear removes the status line.
func (p *progress) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
	p.last = time.Time{}
}

// media shows the media phase of gen until the returned stop is called.
func (p *progress) media(name string, g *generator, d time.Duration) (stop func()) {
	if p == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		var lastRx uint64
		lastAt := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				rx, sent := g.received.Load(), g.sent.Load()
				pps := float64(rx-lastRx) / now.Sub(lastAt).Seconds()
				lastRx, lastAt = rx, now
				loss := 0.0
				if sent > 0 && rx < sent {
					loss = 100 * float64(sent-rx) / float64(sent)
				}
				p.set("%s: media %4.1fs/%v  %7.0f pps received  sent %d  not (yet) received %.2f %%",
					name, now.Sub(start).Seconds(), d, pps, sent, loss)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
