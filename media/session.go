package media

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Session is the media of one call: its streams and their reader
// goroutines. Safe for concurrent use; Close ends every goroutine it started.
type Session struct {
	id      string
	relay   *Relay
	log     *slog.Logger // carries call_id
	created time.Time
	// active is when the last packet was accepted (or the session made),
	// on the relay's clock: an atomic int on the hot path, a monotonic
	// time.Time for the caller.
	active atomic.Int64
	// hasKernel says one of its streams was handed to the kernel (Offload):
	// its stats and activity are the kernel's too.
	hasKernel atomic.Bool
	// kernelSeen is the last reading of when the kernel last forwarded
	// for the session (kernelLastSeen).
	kernelMu   sync.Mutex
	kernelSeen time.Time

	mu      sync.Mutex // guards streams and closed
	streams []*Stream
	closed  bool

	closeOnce sync.Once
}

// AddStream opens a stream: one port pair facing each side. It returns
// ErrNoPorts when the range is exhausted and ErrClosed after Close; on error
// nothing stays allocated.
func (s *Session) AddStream() (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := newStream(s)
	for i := range st.legs {
		// The pinholes open once both peers are signalled (SetRemote).
		if err := s.relay.tr.open(st, &st.legs[i], &st.wg, 0); err != nil {
			s.closeStreams([]*Stream{st})
			return nil, err
		}
	}
	s.streams = append(s.streams, st)
	return st, nil
}

// Streams returns the streams in the order they were added.
func (s *Session) Streams() []*Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Stream(nil), s.streams...)
}

// LastActivity is when the last packet from either peer was accepted on any
// socket of the session, or the session's creation before any packet. The
// caller ends the call when it is older than Config.Timeout.
func (s *Session) LastActivity() time.Time {
	t := s.relay.epoch.Add(time.Duration(s.active.Load()))
	if k := s.kernelLastSeen(); k.After(t) {
		return k
	}
	return t
}

// touch records activity at now (Relay.clock). Only a move of a millisecond
// or more is stored, so that the workers relaying a busy call do not write
// the same cache line for every packet; two racing stores both hold about
// now.
func (s *Session) touch(now int64) {
	if now-s.active.Load() >= int64(time.Millisecond) {
		s.active.Store(now)
	}
}

// Stats sums the stats of every stream.
func (s *Session) Stats() Stats {
	var sum Stats
	for _, st := range s.Streams() {
		sum.add(st.Stats())
	}
	return sum
}

// Close closes the sockets, waits for the readers to end, returns the ports
// and logs the session's stats. It is idempotent.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		streams := s.streams
		s.mu.Unlock()

		// The stats first: once closeStreams gave the ports back, another
		// call may reopen one and reset its kernel counters.
		stats := s.Stats()
		s.closeStreams(streams)
		s.relay.forget(s)

		s.log.Info("media session closed", "streams", len(streams),
			"duration", time.Since(s.created), "a_to_b", stats.AtoB, "b_to_a", stats.BtoA)
	})
}

// closeStreams stops receiving on the streams' ports, waits for their
// readers to end and only then returns the ports: no reader of this call is
// left on them.
func (s *Session) closeStreams(streams []*Stream) {
	for _, st := range streams {
		for i := range st.legs {
			if st.legs[i].rtpPort != 0 {
				s.relay.shutPinholes(&st.legs[i])
				s.relay.tr.shut(&st.legs[i])
			}
		}
	}
	s.relay.tr.quiesce()
	for _, st := range streams {
		st.wg.Wait()
	}
	for _, st := range streams {
		st.freePorts(s.relay.ports)
	}
}
