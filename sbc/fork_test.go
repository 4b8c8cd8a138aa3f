package sbc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// forkServer has alice register two devices and returns them, the server
// and a carrier (trunk t) calling her number.
func forkServer(t *testing.T) (*Server, *peer, *peer, *peer) {
	t.Helper()
	s, _ := registrarServer(t, "")
	sbcAddr := s.addrOf("udp")
	var devs []*peer
	for _, ip := range []string{"127.0.0.34", "127.0.0.35"} {
		d := newPeer(t, ip)
		c := register(d, sbcAddr, "alice", "", 1, 120, nil)
		if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
			t.Fatalf("register %s: %d", ip, res.StatusCode)
		}
		devs = append(devs, d)
	}
	return s, devs[0], devs[1], newPeer(t, "127.0.0.1")
}

func callAlice(s *Server, carrier *peer) {
	body := testSDP("127.0.0.1", 4000)
	id := newID()
	carrier.send(s.addrOf("udp"), fmt.Sprintf("INVITE sip:+14155550400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:+14155550100@127.0.0.1>;tag=c%s\nTo: <sip:+14155550400@127.0.0.1>\nCall-ID: fork-%s\nCSeq: 1 INVITE\nContact: <sip:c@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		carrier.addr, id, id, id, carrier.addr, len(body), body))
}

// finalTo reads the carrier's responses up to the final one.
func finalTo(t *testing.T, p *peer) *sip.Response {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if res, ok := p.recv(time.Until(deadline)).(*sip.Response); ok && res.StatusCode >= 200 {
			return res
		}
	}
	t.Fatal("no final response")
	return nil
}

// A call to a user with two devices rings both; the one that answers has
// the call, the other is cancelled as completed elsewhere, and a 2xx of
// it that crosses the CANCEL is ACKed and hung up.
func TestForkToDevices(t *testing.T) {
	s, d1, d2, carrier := forkServer(t)
	sbcAddr := s.addrOf("udp")
	callAlice(s, carrier)
	inv1, inv2 := d1.expectRequest(sip.INVITE), d2.expectRequest(sip.INVITE)
	if inv1.CallID().Value() == inv2.CallID().Value() {
		t.Fatal("both devices' INVITEs in one dialog")
	}
	d1.reply(sbcAddr, inv1, 180, "d1")
	d2.reply(sbcAddr, inv2, 180, "d2")
	d2.reply(sbcAddr, inv2, 200, "d2")
	d2.expectRequest(sip.ACK)
	if res := finalTo(t, carrier); res.StatusCode != 200 {
		t.Fatalf("carrier got %d; want 200", res.StatusCode)
	}
	cancel := d1.expectRequest(sip.CANCEL)
	if r := cancel.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=200") {
		t.Errorf("CANCEL to the other device: Reason %v; want completed elsewhere", r)
	}
	// Its 200 crossed the CANCEL: ACKed and hung up.
	d1.reply(sbcAddr, inv1, 200, "d1")
	d1.expectRequest(sip.ACK)
	bye := d1.expectRequest(sip.BYE)
	if bye.CallID().Value() != inv1.CallID().Value() {
		t.Fatalf("BYE for %s; want the crossing dialog %s", bye.CallID().Value(), inv1.CallID().Value())
	}
	d1.reply(sbcAddr, bye, 200, "")
	if s.ActiveCalls() != 1 {
		t.Fatalf("%d calls; want the answered one", s.ActiveCalls())
	}
	// The call is the answering device's: its BYE ends it.
	d2.send(sbcAddr, fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: %s;tag=d2\nTo: %s\nCall-ID: %s\nCSeq: 9 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		inv2.Contact().Address.String(), d2.addr, newID(), inv2.To().Value(), inv2.From().Value(), inv2.CallID().Value()))
	d2.expectResponse(200)
	bye = carrier.expectRequest(sip.BYE)
	carrier.reply(sbcAddr, bye, 200, "")
	waitIdle(t, s)
}

// When every device refuses, the caller gets the best refusal: a 6xx
// over a 4xx (RFC 3261 §16.7).
func TestForkAllRefuse(t *testing.T) {
	s, d1, d2, carrier := forkServer(t)
	sbcAddr := s.addrOf("udp")
	callAlice(s, carrier)
	inv1, inv2 := d1.expectRequest(sip.INVITE), d2.expectRequest(sip.INVITE)
	d1.reply(sbcAddr, inv1, 486, "d1")
	d2.reply(sbcAddr, inv2, 603, "d2")
	if res := finalTo(t, carrier); res.StatusCode != 603 {
		t.Fatalf("carrier got %d; want 603", res.StatusCode)
	}
	waitIdle(t, s)
}
