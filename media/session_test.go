package media

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSessionLastActivity(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		before := time.Now()
		s, st := newSessionStream(t, r)
		created := s.LastActivity()
		if created.Before(before) || created.After(time.Now()) {
			t.Fatalf("LastActivity before any packet = %v, want the creation time (after %v)", created, before)
		}
		a, b := newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		st.SetRemote(SideB, Peer{RTP: b.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)

		time.Sleep(5 * time.Millisecond)
		a.sendTo(aPort, rtpPacket(1, 160))
		b.recv()
		first := s.LastActivity()
		if !first.After(created) {
			t.Fatalf("LastActivity = %v after a packet, want after creation %v", first, created)
		}
		time.Sleep(5 * time.Millisecond)
		b.sendTo(bPort, rtpPacket(2, 160)) // the other side counts too
		a.recv()
		if second := s.LastActivity(); !second.After(first) {
			t.Errorf("LastActivity = %v after B's packet, want after %v", second, first)
		}

		// A dropped source is not the peer: no activity.
		last := s.LastActivity()
		newPeer(t).sendTo(bPort, rtpPacket(3, 160))
		waitFor(t, "drop counted", func() bool { return st.Stats().BtoA.Dropped == 1 })
		if got := s.LastActivity(); !got.Equal(last) {
			t.Errorf("LastActivity moved to %v on a packet from a foreign source", got)
		}
	})
}

func TestSessionCloseReleasesPortsAndSockets(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		total := r.TotalPairs()
		if total != (testPortMax-testPortMin+1)/2 {
			t.Fatalf("TotalPairs = %d, want %d", total, (testPortMax-testPortMin+1)/2)
		}
		s := r.NewSession("close")
		var ports []int
		for range 2 {
			st, err := s.AddStream()
			if err != nil {
				t.Fatal(err)
			}
			for _, side := range []Side{SideA, SideB} {
				p, _ := st.LocalPorts(side)
				ports = append(ports, p)
			}
		}
		if got := r.FreePairs(); got != total-4 {
			t.Fatalf("FreePairs with 2 streams = %d, want %d", got, total-4)
		}
		if n := len(s.Streams()); n != 2 {
			t.Fatalf("Streams() has %d, want 2", n)
		}

		s.Close()
		s.Close() // idempotent
		if got := r.FreePairs(); got != total {
			t.Fatalf("FreePairs after Close = %d, want %d", got, total)
		}
		for _, p := range ports { // the sockets are really closed
			rtp, rtcp, err := listenPair(r.bindIP, p)
			if err != nil {
				t.Fatalf("port %d still bound after Close: %v", p, err)
			}
			rtp.close()
			rtcp.close()
		}
		if _, err := s.AddStream(); !errors.Is(err, ErrClosed) {
			t.Errorf("AddStream after Close: err = %v, want ErrClosed", err)
		}
	})
}

func TestSessionStatsSumsStreams(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		s := r.NewSession("sum")
		t.Cleanup(s.Close)
		a, b := newPeer(t), newPeer(t)
		for i := range 2 {
			st, err := s.AddStream()
			if err != nil {
				t.Fatal(err)
			}
			st.SetRemote(SideB, Peer{RTP: b.addr()})
			aPort, _ := st.LocalPorts(SideA)
			for range i + 1 {
				a.sendTo(aPort, rtpPacket(1, 10))
				b.recv()
			}
		}
		want := Stats{AtoB: Direction{RTPPackets: 3, RTPBytes: 3 * 22}}
		waitFor(t, "session stats", func() bool { return s.Stats() == want })
	})
}

// TestAddStreamNoPorts: a range of 3 pairs holds one stream; the second
// AddStream fails and gives back the pair it took.
func TestAddStreamNoPorts(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, func(c *Config) { c.PortMin, c.PortMax = testPortMin+100, testPortMin+105 })
		s := r.NewSession("full")
		t.Cleanup(s.Close)
		if _, err := s.AddStream(); err != nil {
			t.Fatal(err)
		}
		if got := r.FreePairs(); got != 1 {
			t.Fatalf("FreePairs = %d, want 1", got)
		}
		st, err := s.AddStream()
		if !errors.Is(err, ErrNoPorts) || st != nil {
			t.Fatalf("AddStream on a full range = %v, %v; want nil, ErrNoPorts", st, err)
		}
		if got := r.FreePairs(); got != 1 {
			t.Errorf("FreePairs after failed AddStream = %d, want 1 (nothing kept)", got)
		}
		if n := len(s.Streams()); n != 1 {
			t.Errorf("Streams() has %d, want 1", n)
		}
	})
}

// TestAddStreamSkipsBusyPorts: a pair whose RTCP port another socket holds
// is skipped, and stays in the pool for later. Steered, the held port would
// otherwise lose its datagrams to the relay.
func TestAddStreamSkipsBusyPorts(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		const min = testPortMin + 200
		busy := newPeerAt(t, min+1)
		if busy == nil {
			t.Skipf("port %d is taken", min+1)
		}
		r := newTestRelay(t, func(c *Config) { c.PortMin, c.PortMax = min, min+5 })
		s := r.NewSession("busy")
		t.Cleanup(s.Close)
		st, err := s.AddStream()
		if err != nil {
			t.Fatalf("AddStream with one busy pair of three: %v", err)
		}
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)
		if aPort == min || bPort == min {
			t.Errorf("LocalPorts %d, %d include the busy pair %d", aPort, bPort, min)
		}
		if got := r.FreePairs(); got != 1 {
			t.Errorf("FreePairs = %d, want 1 (the busy pair stays in the pool)", got)
		}
		if _, err := s.AddStream(); !errors.Is(err, ErrNoPorts) || !strings.Contains(err.Error(), "held by other sockets") {
			t.Errorf("AddStream with only a busy pair left: err = %v, want ErrNoPorts naming the busy ports", err)
		}
	})
}

func TestRelayCloseClosesSessions(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		var sessions []*Session
		for i := range 3 {
			s := r.NewSession(string(rune('a' + i)))
			if _, err := s.AddStream(); err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		sessions[0].Close() // closed before the relay: no harm
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if r.FreePairs() != r.TotalPairs() {
			t.Errorf("FreePairs after Relay.Close = %d, want %d", r.FreePairs(), r.TotalPairs())
		}
		for _, s := range sessions {
			if _, err := s.AddStream(); !errors.Is(err, ErrClosed) {
				t.Errorf("AddStream on session %s after Relay.Close: %v, want ErrClosed", s.id, err)
			}
		}
		late := r.NewSession("late")
		if _, err := late.AddStream(); !errors.Is(err, ErrClosed) {
			t.Errorf("AddStream on a session made after Relay.Close: %v, want ErrClosed", err)
		}
		late.Close()
	})
}

// TestSessionCloseLogsStats checks the one Info line per session.
func TestSessionCloseLogsStats(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		var logs syncBuffer
		r := newTestRelay(t, nil)
		r.log = slogText(&logs)
		s := r.NewSession("call-7")
		st, err := s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		a, b := newPeer(t), newPeer(t)
		st.SetRemote(SideB, Peer{RTP: b.addr()})
		aPort, _ := st.LocalPorts(SideA)
		a.sendTo(aPort, rtpPacket(1, 160))
		b.recv()
		waitFor(t, "forward counted", func() bool { return st.Stats().AtoB.RTPPackets == 1 })
		s.Close()
		s.Close()
		out := logs.String()
		if n := strings.Count(out, "media session closed"); n != 1 {
			t.Fatalf("%d close lines, want 1:\n%s", n, out)
		}
		for _, want := range []string{"level=INFO", "call_id=call-7", "streams=1", "a_to_b.rtp_packets=1", "a_to_b.rtp_bytes=172", "b_to_a.dropped=0"} {
			if !strings.Contains(out, want) {
				t.Errorf("close log lacks %q:\n%s", want, out)
			}
		}
	})
}
