package webhook

import (
	"container/heap"
	"time"
)

// A key's pending requests form a chain linked by next, oldest first. Only
// the oldest is ever ready, in flight or waiting to retry; tails maps the
// key to the newest so Post appends in O(1). Requests without a key are
// not chained.

// enqueue makes r ready, or chains it behind its key's pending requests.
// s.mu is held.
func (s *Sender) enqueue(r *request) {
	if r.key != "" {
		if tail := s.tails[r.key]; tail != nil {
			tail.next = r
			s.tails[r.key] = r
			return
		}
		s.tails[r.key] = r
	}
	s.ready <- r
}

// finish ends r (delivered or given up) and readies the next request of
// its key. s.mu is held.
func (s *Sender) finish(r *request) {
	s.stats.Pending--
	if r.key == "" {
		return
	}
	if r.next == nil {
		delete(s.tails, r.key)
		return
	}
	s.ready <- r.next
	r.next = nil
}

// schedule parks r until its retry is due. s.mu is held.
func (s *Sender) schedule(r *request, wait time.Duration) {
	r.due = time.Now().Add(wait)
	heap.Push(&s.waiting, r)
	if s.waiting[0] == r {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// timers readies each parked request when its retry is due, with one timer
// for the earliest: parked requests cost memory, not goroutines or workers.
func (s *Sender) timers() {
	defer s.wg.Done()
	t := time.NewTimer(maxBackoff)
	defer t.Stop()
	for {
		if wait, ok := s.releaseDue(time.Now()); ok {
			t.Reset(wait)
		} else {
			t.Stop()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// releaseDue readies the requests due by now and returns the wait until the
// next one, false if none is parked.
func (s *Sender) releaseDue(now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.waiting) > 0 {
		if wait := s.waiting[0].due.Sub(now); wait > 0 {
			return wait, true
		}
		s.ready <- heap.Pop(&s.waiting).(*request)
	}
	return 0, false
}

// retryHeap is the parked requests, earliest due first.
type retryHeap []*request

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*request)) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}
