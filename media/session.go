package media

import (
	"log/slog"
	"net/netip"
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
	// active is when the last packet was accepted, as time since created:
	// an atomic int on the hot path, a monotonic time.Time for the caller.
	active atomic.Int64

	mu      sync.Mutex // guards streams and closed
	streams []*Stream
	closed  bool

	wg        sync.WaitGroup // reader goroutines
	closeOnce sync.Once
}

// AddStream binds a stream: one port pair facing each side, four UDP
// sockets, four readers. It returns ErrNoPorts when the range is exhausted
// and ErrClosed after Close; on error nothing stays allocated.
func (s *Session) AddStream() (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := newStream(s)
	for i := range st.legs {
		port, rtp, rtcp, err := s.relay.bindPair()
		if err != nil {
			st.closeSockets()
			st.freePorts(s.relay.ports)
			return nil, err
		}
		st.legs[i].rtpPort = port
		st.legs[i].sock = [2]*socket{rtp, rtcp}
	}
	for i := range st.legs {
		side := Side(i)
		for k, sock := range st.legs[i].sock {
			kind := sockKind(k)
			s.wg.Go(func() {
				sock.readLoop(func(b []byte, src netip.AddrPort) { st.receive(side, kind, b, src) })
			})
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
	return s.created.Add(time.Duration(s.active.Load()))
}

// touch records activity now. Readers race to store; keep the latest.
func (s *Session) touch() {
	d := int64(time.Since(s.created))
	for {
		old := s.active.Load()
		if d <= old || s.active.CompareAndSwap(old, d) {
			return
		}
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

		for _, st := range streams {
			st.closeSockets()
		}
		s.wg.Wait()
		// Ports go back only now: no reader of this call is left on them.
		for _, st := range streams {
			st.freePorts(s.relay.ports)
		}
		s.relay.forget(s)

		stats := s.Stats()
		s.log.Info("media session closed", "streams", len(streams),
			"duration", time.Since(s.created), "a_to_b", stats.AtoB, "b_to_a", stats.BtoA)
	})
}
