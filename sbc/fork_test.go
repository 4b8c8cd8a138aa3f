package sbc

import (
	"bufio"
	"fmt"
	"net"
	"sbc/sbc/digest"
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

// callAlice has the carrier call alice's number; cancel CANCELs it.
func callAlice(s *Server, carrier *peer) (cancel func()) {
	body := testSDP("127.0.0.1", 4000)
	id := newID()
	head := fmt.Sprintf("sip:+14155550400@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:+14155550100@127.0.0.1>;tag=c%s\nTo: <sip:+14155550400@127.0.0.1>\nCall-ID: fork-%s\n",
		carrier.addr, id, id, id)
	carrier.send(s.addrOf("udp"), fmt.Sprintf("INVITE %sCSeq: 1 INVITE\nContact: <sip:c@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		head, carrier.addr, len(body), body))
	return func() {
		carrier.send(s.addrOf("udp"), "CANCEL "+head+"CSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n")
	}
}

// finalTo reads the carrier's responses up to its INVITE's final one.
func finalTo(t *testing.T, p *peer) *sip.Response {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if res, ok := p.recv(time.Until(deadline)).(*sip.Response); ok && res.StatusCode >= 200 && res.CSeq().MethodName == sip.INVITE {
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

// A device that declines (6xx) declines for all: the others stop ringing
// and the caller gets the 6xx at once (RFC 3261 §16.7 step 5).
func TestForkDeclined(t *testing.T) {
	s, d1, d2, carrier := forkServer(t)
	sbcAddr := s.addrOf("udp")
	callAlice(s, carrier)
	inv1, inv2 := d1.expectRequest(sip.INVITE), d2.expectRequest(sip.INVITE)
	d1.reply(sbcAddr, inv1, 180, "d1")
	d2.reply(sbcAddr, inv2, 603, "d2")
	if res := finalTo(t, carrier); res.StatusCode != 603 {
		t.Fatalf("carrier got %d; want 603", res.StatusCode)
	}
	cancel := d1.expectRequest(sip.CANCEL)
	if r := cancel.GetHeader("Reason"); r != nil {
		t.Errorf("CANCEL after a decline says %q; the call was not completed elsewhere", r.Value())
	}
	d1.reply(sbcAddr, cancel, 200, "")
	d1.reply(sbcAddr, inv1, 487, "d1")
	waitIdle(t, s)
}

// The caller's CANCEL reaches every ringing device; a device whose 2xx
// is broken fails alone while the others ring on.
func TestForkCancelAndBroken2xx(t *testing.T) {
	s, d1, d2, carrier := forkServer(t)
	sbcAddr := s.addrOf("udp")
	cancel := callAlice(s, carrier)
	inv1, inv2 := d1.expectRequest(sip.INVITE), d2.expectRequest(sip.INVITE)
	d1.reply(sbcAddr, inv1, 180, "d1")
	d2.reply(sbcAddr, inv2, 180, "d2")
	d1.reply(sbcAddr, inv1, 200, "d1", "To") // no To: cannot be ACKed
	cancel()
	c := d2.expectRequest(sip.CANCEL)
	d2.reply(sbcAddr, c, 200, "")
	d2.reply(sbcAddr, inv2, 487, "d2")
	if res := finalTo(t, carrier); res.StatusCode != 487 {
		t.Fatalf("carrier got %d; want 487", res.StatusCode)
	}
	waitIdle(t, s)
}

// A device registered over TCP whose connection is gone is not called:
// the SBC never connects to a device (behind a NAT its port is the
// NAT's); the others ring at once.
func TestForkSkipsClosedConnection(t *testing.T) {
	s, _ := registrarServer(t, "")
	sbcAddr := s.addrOf("udp")
	d1 := newPeer(t, "127.0.0.34")
	c := register(d1, sbcAddr, "alice", "", 1, 120, nil)
	if res := register(d1, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	// A phone over TCP registers last, then its connection drops.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.36")}}
	conn, err := d.Dial("tcp", s.addrOf("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	tcpAddr := conn.LocalAddr().String()
	regOver := func(cseq int, auth string) *sip.Response {
		fmt.Fprint(conn, strings.ReplaceAll(fmt.Sprintf("REGISTER sip:%s SIP/2.0\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%s\nFrom: <sip:alice@%s>;tag=t\nTo: <sip:alice@%s>\nCall-ID: tcp-reg\nCSeq: %d REGISTER\nContact: <sip:alice@%s;transport=tcp>\nExpires: 120\n%sMax-Forwards: 70\nContent-Length: 0\n\n",
			s.addrOf("tcp"), tcpAddr, newID(), s.addrOf("tcp"), s.addrOf("tcp"), cseq, tcpAddr, auth), "\n", "\r\n"))
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := readMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Response)
	}
	ch, err := digest.Parse(regOver(1, "").GetHeader("WWW-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	ruri := "sip:" + s.addrOf("tcp")
	ha1, _ := digest.HA1(ch["algorithm"], "alice", ch["realm"], "Str0ng-Passw0rd!")
	ch["uri"], ch["nc"], ch["cnonce"], ch["qop"] = ruri, "00000001", "c0ffee", "auth"
	resp, _ := digest.Response(ha1, "REGISTER", ch)
	if res := regOver(2, fmt.Sprintf("Authorization: Digest username=\"alice\", realm=%q, nonce=%q, uri=%q, response=%q, algorithm=%s, qop=auth, nc=00000001, cnonce=\"c0ffee\"\n",
		ch["realm"], ch["nonce"], ruri, resp, ch["algorithm"])); res.StatusCode != 200 {
		t.Fatalf("TCP register: %d", res.StatusCode)
	}
	conn.(*net.TCPConn).SetLinger(0) // a reset: its port is free at once
	conn.Close()
	time.Sleep(100 * time.Millisecond)    // the SBC sees the close
	ln, err := net.Listen("tcp", tcpAddr) // where a connection to the phone would land
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			dialled <- struct{}{}
		}
	}()
	carrier := newPeer(t, "127.0.0.1")
	cancel := callAlice(s, carrier)
	inv := d1.expectRequest(sip.INVITE)
	d1.reply(sbcAddr, inv, 180, "d1")
	select {
	case <-dialled:
		t.Fatal("the SBC connected to the phone whose connection was gone")
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	c1 := d1.expectRequest(sip.CANCEL)
	d1.reply(sbcAddr, c1, 200, "")
	d1.reply(sbcAddr, inv, 487, "d1")
	finalTo(t, carrier)
	waitIdle(t, s)
}
