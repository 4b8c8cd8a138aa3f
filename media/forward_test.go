package media

import (
	"os"
	"testing"
	"time"
)

// forwardingStream is a stream with both sides signalled and latched, and
// the peers, for calling receive directly. mutate changes the relay's
// config (nil: one socket per port).
func forwardingStream(t testing.TB, mutate ...func(*Config)) (st *Stream, a, b *peer) {
	r := newTestRelay(t, func(c *Config) {
		for _, m := range mutate {
			m(c)
		}
	})
	_, st = newSessionStream(t, r)
	a, b = newPeer(t), newPeer(t)
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr(), Mux: true})
	return st, a, b
}

// TestForwardDoesNotAllocate: the hot path (validate, check source, route,
// send, count) makes no heap allocation per packet. AllocsPerRun's warm-up
// call takes the one-time latch.
func TestForwardDoesNotAllocate(t *testing.T) {
	st, a, _ := forwardingStream(t)
	stranger := newPeer(t).addr()
	rtp, rtcp := rtpPacket(1, 160), rtcpPacket(1)
	tests := []struct {
		name     string
		k        sockKind
		b        []byte
		stranger bool
	}{
		{"rtp", rtpSock, rtp, false},
		{"rtcp", rtcpSock, rtcp, false},
		{"muxed rtcp", rtpSock, rtcp, false},
		{"dropped source", rtpSock, rtp, true},
		{"dropped invalid", rtpSock, rtp[:5], false},
	}
	const runs = 500
	for _, tc := range tests {
		src := a.addr()
		if tc.stranger {
			src = stranger
		}
		if n := testing.AllocsPerRun(runs, func() { st.receive(SideA, tc.k, tc.b, src) }); n != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", tc.name, n)
		}
	}
	// The packets really went out (B may drop them: nobody reads).
	got := st.Stats().AtoB
	if want := uint64(runs + 1); got.RTPPackets != want || got.RTCPPackets != 2*want || got.Dropped != 2*want {
		t.Errorf("AtoB stats %+v: want %d RTP, %d RTCP, %d dropped", got, want, 2*want, 2*want)
	}
}

// BenchmarkForward measures the hot path alone: one call is one packet
// validated, routed and sent by the SBC.
func BenchmarkForward(b *testing.B) {
	st, a, _ := forwardingStream(b)
	pkt, src := rtpPacket(1, 160), a.addr()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		st.receive(SideA, rtpSock, pkt, src)
	}
}

// BenchmarkRelay measures a packet end to end on loopback: peer A sends to
// the SBC, the reader goroutine relays, peer B receives. allocs/op covers
// the peers' syscalls too, which allocate nothing either.
func BenchmarkRelay(b *testing.B) { benchmarkRelay(b) }

// BenchmarkRelaySteered is the same through the steered relay (root only).
func BenchmarkRelaySteered(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	benchmarkRelay(b, func(c *Config) { c.Steering = SteeringOn })
}

func benchmarkRelay(b *testing.B, mutate ...func(*Config)) {
	st, a, peerB := forwardingStream(b, mutate...)
	aPort, _ := st.LocalPorts(SideA)
	dst := loopback(aPort)
	pkt := rtpPacket(1, 160)
	buf := make([]byte, readBuffer)
	peerB.conn.SetReadDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := a.conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatal(err)
		}
		if _, _, err := peerB.conn.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
}
