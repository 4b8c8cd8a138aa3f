package media

import (
	"net/netip"
	"testing"
	"time"
)

// TestListenPairAllOrNothing: when RTCP's port is held, the RTP socket is
// released again and the error says the address is in use.
func TestListenPairAllOrNothing(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	const port = testPortMin + 300
	held := newPeerAt(t, port+1)
	if held == nil {
		t.Skipf("port %d is taken", port+1)
	}
	if _, _, err := listenPair(ip, port); !isAddrInUse(err) {
		t.Fatalf("listenPair with RTCP port held: err = %v, want address in use", err)
	}
	rtp, err := listen(ip, port)
	if err != nil {
		t.Fatalf("RTP port %d not released after the failed pair: %v", port, err)
	}
	rtp.close()
}

// TestSocketUnmapsSource: on a dual-stack socket an IPv4 peer shows as
// ::ffff:a.b.c.d; readLoop hands out the plain IPv4 address so it compares
// equal to the signalled one.
func TestSocketUnmapsSource(t *testing.T) {
	s, err := listen(netip.IPv6Unspecified(), 0)
	if err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	port := s.conn.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	got := make(chan netip.AddrPort, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readLoop(func(_ []byte, src netip.AddrPort) {
			select {
			case got <- src:
			default:
			}
		})
	}()
	p := newPeer(t)
	p.sendTo(int(port), rtpPacket(1, 0))
	select {
	case src := <-got:
		if src != p.addr() {
			t.Errorf("source %v, want %v", src, p.addr())
		}
	case <-time.After(2 * time.Second):
		t.Error("no datagram read")
	}
	s.close()
	<-done
}
