package media

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSideString(t *testing.T) {
	for side, want := range map[Side]string{SideA: "A", SideB: "B", Side(7): "Side(7)"} {
		if got := side.String(); got != want {
			t.Errorf("Side(%d).String() = %q, want %q", int(side), got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	rtp := rtpPacket(1, 160)
	marked := rtpPacket(1, 0)
	marked[1] = 0x80 | 8 // marker + PCMA: 136, not in 192..223
	rr := rtcpPacket(1)
	smallRR := []byte{0x80, 201, 0, 1, 1, 2, 3, 4}
	tests := []struct {
		name     string
		k        sockKind
		b        []byte
		rtcp, ok bool
	}{
		{"rtp on rtp socket", rtpSock, rtp, false, true},
		{"marked rtp on rtp socket", rtpSock, marked, false, true},
		{"rtcp on rtcp socket", rtcpSock, rr, true, true},
		{"muxed rtcp on rtp socket", rtpSock, rr, true, true},
		{"8-byte RR (RFC 5506)", rtcpSock, smallRR, true, true},
		{"PT 192 is rtcp", rtpSock, append([]byte{0x80, 192}, rr[2:]...), true, true},
		{"PT 223 is rtcp", rtpSock, append([]byte{0x80, 223}, rr[2:]...), true, true},
		{"PT 224 is rtp", rtpSock, append([]byte{0x80, 224}, rtp[2:]...), false, true},
		{"rtp on rtcp socket", rtcpSock, rtp, false, false},
		{"rtp under 12 bytes", rtpSock, rtp[:11], false, false},
		{"rtcp under 8 bytes", rtcpSock, rr[:7], false, false},
		{"empty", rtpSock, nil, false, false},
		{"version 1", rtpSock, append([]byte{0x40}, rtp[1:]...), false, false},
		{"version 0 (STUN)", rtpSock, append([]byte{0x00, 0x01}, rtp[2:]...), false, false},
		{"oversize", rtpSock, rtpPacket(1, maxPacket), false, false},
		{"largest", rtpSock, rtpPacket(1, maxPacket-12), false, true},
	}
	for _, tc := range tests {
		rtcp, ok := classify(tc.k, tc.b)
		if rtcp != tc.rtcp || ok != tc.ok {
			t.Errorf("%s: classify = (rtcp %v, ok %v), want (%v, %v)", tc.name, rtcp, ok, tc.rtcp, tc.ok)
		}
	}
}

// TestRelayForwards sends RTP and RTCP both ways and checks that each peer
// receives it from the SBC port facing it (symmetric RTP, RFC 4961).
func TestRelayForwards(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a, b := newPeer(t), newPeer(t)
		aRTCP, bRTCP := newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr(), RTCP: aRTCP.addr()})
		st.SetRemote(SideB, Peer{RTP: b.addr(), RTCP: bRTCP.addr()})
		aPort, aCtl := st.LocalPorts(SideA)
		bPort, bCtl := st.LocalPorts(SideB)
		if aCtl != aPort+1 || bCtl != bPort+1 || aPort%2 != 0 || bPort%2 != 0 || aPort == bPort {
			t.Fatalf("LocalPorts A %d/%d, B %d/%d: want two distinct even RTP ports with RTCP = RTP+1", aPort, aCtl, bPort, bCtl)
		}

		p1, p2, p3 := rtpPacket(1, 160), rtpPacket(2, 160), rtpPacket(3, 20)
		a.sendTo(aPort, p1)
		b.expect(p1, bPort)
		a.sendTo(aPort, p2)
		b.expect(p2, bPort)
		b.sendTo(bPort, p3)
		a.expect(p3, aPort)

		c1, c2 := rtcpPacket(1), rtcpPacket(2)
		aRTCP.sendTo(aCtl, c1)
		bRTCP.expect(c1, bCtl)
		bRTCP.sendTo(bCtl, c2)
		aRTCP.expect(c2, aCtl)

		waitStats(t, st, Stats{
			AtoB: Direction{RTPPackets: 2, RTPBytes: 2 * 172, RTCPPackets: 1, RTCPBytes: 32},
			BtoA: Direction{RTPPackets: 1, RTPBytes: 32, RTCPPackets: 1, RTCPBytes: 32},
		})
	})
}

// TestRelayRTCPMux: side A uses rtcp-mux (RFC 5761), side B does not. RTCP
// from A on its RTP port reaches B's RTCP port from the SBC's B-side RTCP
// port; RTCP from B reaches A on A's RTP port.
func TestRelayRTCPMux(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a, b, bRTCP := newPeer(t), newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr(), Mux: true})
		st.SetRemote(SideB, Peer{RTP: b.addr(), RTCP: bRTCP.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, bCtl := st.LocalPorts(SideB)

		c1, c2, p := rtcpPacket(1), rtcpPacket(2), rtpPacket(1, 160)
		a.sendTo(aPort, c1) // muxed: RTCP on the RTP port
		bRTCP.expect(c1, bCtl)
		a.sendTo(aPort, p)
		b.expect(p, bPort)
		bRTCP.sendTo(bCtl, c2)
		a.expect(c2, aPort) // to the mux side: out of its RTP socket to its RTP address
		b.sendTo(bPort, p)
		a.expect(p, aPort)

		waitStats(t, st, Stats{
			AtoB: Direction{RTPPackets: 1, RTPBytes: 172, RTCPPackets: 1, RTCPBytes: 32},
			BtoA: Direction{RTPPackets: 1, RTPBytes: 172, RTCPPackets: 1, RTCPBytes: 32},
		})
	})
}

// TestRelayRTCPDefaultsToRTPPlusOne: a Peer without RTCP gets RTCP on RTP+1.
func TestRelayRTCPDefaultsToRTPPlusOne(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a := newPeer(t)
		var b, bRTCP *peer
		for b == nil { // find a free loopback pair p, p+1 for B
			p := newPeer(t)
			if port := p.addr().Port(); port < 65535 {
				b, bRTCP = p, newPeerAt(t, port+1)
			}
			if bRTCP == nil {
				b = nil
			}
		}
		st.SetRemote(SideA, Peer{RTP: a.addr(), Mux: true})
		st.SetRemote(SideB, Peer{RTP: b.addr()})
		aPort, _ := st.LocalPorts(SideA)
		_, bCtl := st.LocalPorts(SideB)
		c := rtcpPacket(9)
		a.sendTo(aPort, c)
		bRTCP.expect(c, bCtl)
	})
}

// TestRelayLatching: a peer behind NAT sends from another port than it
// signalled; replies follow the real source (RFC 4961), and other sources
// are dropped until SetRemote signals a new address.
func TestRelayLatching(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a, signalled, real, intruder := newPeer(t), newPeer(t), newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		st.SetRemote(SideB, Peer{RTP: signalled.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)

		// Before B sends, media goes to the signalled address.
		p1 := rtpPacket(1, 160)
		a.sendTo(aPort, p1)
		signalled.expect(p1, bPort)

		// B's first packet comes from elsewhere: latch it.
		p2 := rtpPacket(2, 160)
		real.sendTo(bPort, p2)
		a.expect(p2, aPort)
		p3 := rtpPacket(3, 160)
		a.sendTo(aPort, p3)
		real.expect(p3, bPort)
		signalled.expectNothing()

		// Another source on B's port is dropped, the signalled one too.
		intruder.sendTo(bPort, rtpPacket(4, 160))
		signalled.sendTo(bPort, rtpPacket(5, 160))
		a.expectNothing()
		waitStats(t, st, Stats{
			AtoB: Direction{RTPPackets: 2, RTPBytes: 2 * 172},
			BtoA: Direction{RTPPackets: 1, RTPBytes: 172, Dropped: 2},
		})

		// A re-INVITE with the same address keeps the latch.
		st.SetRemote(SideB, Peer{RTP: signalled.addr()})
		p6 := rtpPacket(6, 160)
		a.sendTo(aPort, p6)
		real.expect(p6, bPort)

		// A new address resets latching: media goes there until B sends again.
		moved := newPeer(t)
		st.SetRemote(SideB, Peer{RTP: moved.addr()})
		p7 := rtpPacket(7, 160)
		a.sendTo(aPort, p7)
		moved.expect(p7, bPort)
		p8 := rtpPacket(8, 160)
		intruder.sendTo(bPort, p8) // first source after the reset wins
		a.expect(p8, aPort)
		p9 := rtpPacket(9, 160)
		a.sendTo(aPort, p9)
		intruder.expect(p9, bPort)
	})
}

// TestRelayLatchesBeforeAnswer: B sends before its address is signalled
// (early media before the SDP answer). Its packets latch and later replies
// go to it.
func TestRelayLatchesBeforeAnswer(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a, b := newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)

		a.sendTo(aPort, rtpPacket(1, 160)) // nowhere to go yet
		waitStats(t, st, Stats{AtoB: Direction{Dropped: 1}})
		p2 := rtpPacket(2, 160)
		b.sendTo(bPort, p2)
		a.expect(p2, aPort)
		p3 := rtpPacket(3, 160)
		a.sendTo(aPort, p3)
		b.expect(p3, bPort)
		waitStats(t, st, Stats{
			AtoB: Direction{RTPPackets: 1, RTPBytes: 172, Dropped: 1},
			BtoA: Direction{RTPPackets: 1, RTPBytes: 172},
		})
	})
}

// TestRelayStrict: only the signalled addresses may send, nothing latches.
func TestRelayStrict(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, func(c *Config) { c.Latching = LatchingStrict })
		_, st := newSessionStream(t, r)
		a, b, other := newPeer(t), newPeer(t), newPeer(t)
		aPort, _ := st.LocalPorts(SideA)
		bPort, bCtl := st.LocalPorts(SideB)

		// Nothing signalled for B: even its first packet is dropped.
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		b.sendTo(bPort, rtpPacket(1, 160))
		a.expectNothing()

		st.SetRemote(SideB, Peer{RTP: b.addr(), Mux: true})
		other.sendTo(bPort, rtpPacket(2, 160))
		other.sendTo(bCtl, rtcpPacket(2)) // also not B's signalled RTCP address
		a.expectNothing()
		p3 := rtpPacket(3, 160)
		b.sendTo(bPort, p3)
		a.expect(p3, aPort)
		// The dropped source did not latch: A's media still goes to b.
		p4 := rtpPacket(4, 160)
		a.sendTo(aPort, p4)
		b.expect(p4, bPort)
		other.expectNothing()
		waitStats(t, st, Stats{
			AtoB: Direction{RTPPackets: 1, RTPBytes: 172},
			BtoA: Direction{RTPPackets: 1, RTPBytes: 172, Dropped: 3},
		})
	})
}

// TestRelayDropsInvalid: what is not RTP/RTCP is counted and not relayed.
func TestRelayDropsInvalid(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		_, st := newSessionStream(t, r)
		a, aRTCP, b, bRTCP := newPeer(t), newPeer(t), newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr(), RTCP: aRTCP.addr()})
		st.SetRemote(SideB, Peer{RTP: b.addr(), RTCP: bRTCP.addr()})
		aPort, aCtl := st.LocalPorts(SideA)
		bPort, bCtl := st.LocalPorts(SideB)

		good := rtpPacket(1, 160)
		a.sendTo(aPort, good) // latches a
		b.expect(good, bPort)
		bad := [][]byte{
			good[:11],
			append([]byte{0x40}, good[1:]...), // version 1
			rtpPacket(2, maxPacket),           // oversize
			{},
		}
		for _, p := range bad {
			a.sendTo(aPort, p)
		}
		aRTCP.sendTo(aCtl, good) // RTP on the RTCP socket
		b.expectNothing()
		bRTCP.expectNothing()
		small := []byte{0x80, 201, 0, 1, 1, 2, 3, 4} // an RFC 5506 bare RR passes
		aRTCP.sendTo(aCtl, small)
		bRTCP.expect(small, bCtl)
		waitStats(t, st, Stats{AtoB: Direction{RTPPackets: 1, RTPBytes: 172, RTCPPackets: 1, RTCPBytes: 8, Dropped: 5}})
	})
}

// TestLatchLogged checks the Debug line of a latching event.
func TestLatchLogged(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		var logs syncBuffer
		r := newTestRelay(t, nil)
		r.log = slogText(&logs)
		s := r.NewSession("call-42")
		defer s.Close()
		st, err := s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		a := newPeer(t)
		aPort, _ := st.LocalPorts(SideA)
		a.sendTo(aPort, rtpPacket(1, 160))
		want := "msg=latched call_id=call-42 side=A socket=rtp source=" + a.addr().String()
		waitFor(t, "latched log line", func() bool { return strings.Contains(logs.String(), want) })
	})
}

// newPeerAt is newPeer on a given loopback port, nil if it is taken.
func newPeerAt(t testing.TB, port uint16) *peer {
	s, err := listen(netip.MustParseAddr("127.0.0.1"), int(port))
	if err != nil {
		return nil
	}
	t.Cleanup(func() { s.close() })
	return &peer{t: t, conn: s.conn}
}
