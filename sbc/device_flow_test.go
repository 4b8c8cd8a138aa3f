package sbc

import (
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A device that calls without registering is answered over its flow, and
// its own answers (the 200 to the callee's BYE) are let in: the BYE is
// not sent again.
func TestUnregisteredDeviceAnswers(t *testing.T) {
	b := newPeer(t, "127.0.0.2")
	s := startServerWith(t, deviceCallConf(t.TempDir(), b), nil, func(s *Server) { s.SetControl(devicePlane(t)) })
	d := newPeer(t, "127.0.0.33")
	inv, _ := deviceCall(t, s, d, b)
	b.send(s.addrOf("udp"), fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: %s;tag=btag\nTo: %s\nCall-ID: %s\nCSeq: 5 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		s.addrOf("udp"), b.addr, newID(), inv.To().Address.String(), inv.From().Value(), inv.CallID().Value()))
	b.expectResponse(200)
	bye := d.expectRequest(sip.BYE)
	d.reply(s.addrOf("udp"), bye, 200, "")
	if m := d.recv(1200 * time.Millisecond); m != nil { // T1 is 500 ms: a retransmission comes by then
		t.Fatalf("after the device's 200: %v", m)
	}
}
