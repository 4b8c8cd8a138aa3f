package webhook

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestBoundedQueue: a receiver that never answers fills the queue; Posts
// beyond QueueSize are dropped and counted, and Close cancels the attempts
// in flight, drops the rest and leaves no goroutine behind. Not parallel:
// goleak sees the whole process.
func TestBoundedQueue(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	const size, extra, workers = 8, 5, 2
	rc := newReceiver(t, func(_ http.ResponseWriter, h hit) { <-h.gone })
	s := New(Options{QueueSize: size, Workers: workers, Timeout: time.Minute}, testLogger(t))

	dropped := 0
	for i := range size + extra {
		key := fmt.Sprint("SM", i%4)
		if !s.Post(rc.URL, url.Values{"I": {fmt.Sprint(i)}}, key, "tok") {
			dropped++
		}
	}
	if dropped != extra {
		t.Errorf("Post dropped %d, want %d", dropped, extra)
	}
	want := Stats{Posted: size + extra, Dropped: extra, Pending: size}
	if st := s.Stats(); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	waitStats(t, s, "attempts in flight", func(Stats) bool { return len(rc.Hits()) == workers })

	start := time.Now()
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if s.Post(rc.URL, nil, "", "") {
		t.Error("Post after Close queued")
	}
	want = Stats{Posted: size + extra + 1, Dropped: size + extra + 1}
	if st := s.Stats(); st != want {
		t.Errorf("after Close stats %+v, want %+v", st, want)
	}
	rc.Close()
	goleak.VerifyNone(t, leaks)
}

// TestQueueBoundUnderRetries: a receiver failing every attempt keeps
// requests pending for their retries; Pending never passes QueueSize
// however fast concurrent Posts come.
func TestQueueBoundUnderRetries(t *testing.T) {
	t.Parallel()
	const size, posters, each = 50, 4, 200
	rc := newReceiver(t, status(http.StatusServiceUnavailable))
	s := newTestSender(t, Options{QueueSize: size, Attempts: 100, Workers: 4})

	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				s.Post(rc.URL, nil, fmt.Sprint(p, "/", i%7), "")
				if st := s.Stats(); st.Pending > size {
					t.Errorf("Pending %d > QueueSize %d", st.Pending, size)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Posted != posters*each || st.Pending != size || st.Dropped != posters*each-size {
		t.Errorf("stats %+v, want Posted %d, Pending %d, Dropped %d", st, posters*each, size, posters*each-size)
	}
}

// TestCloseAfter: a stop lets the requests pending go, within its bound;
// one that cannot go in time is dropped when the bound runs out.
func TestCloseAfter(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, h hit) {
		if h.form.Get("slow") != "" {
			<-h.gone
			return
		}
		time.Sleep(100 * time.Millisecond)
	})
	s := New(Options{Workers: 2, Timeout: time.Minute}, testLogger(t))
	s.Post(rc.URL, url.Values{"I": {"1"}}, "a", "tok")
	s.Post(rc.URL, url.Values{"I": {"2"}}, "a", "tok")
	s.CloseAfter(2 * time.Second)
	if st := s.Stats(); st.Delivered != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v; want both delivered before the close", st)
	}
	s2 := New(Options{Workers: 2, Timeout: time.Minute}, testLogger(t))
	s2.Post(rc.URL, url.Values{"slow": {"1"}}, "b", "tok")
	start := time.Now()
	s2.CloseAfter(200 * time.Millisecond)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("CloseAfter(200ms) took %v", d)
	}
	if st := s2.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v; want the hanging one dropped", st)
	}
}
