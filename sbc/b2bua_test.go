package sbc

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// These tests drive the B2BUA with hand-made SIP on loopback where a real
// peer cannot be told to misbehave on cue: responses crossing a CANCEL, a
// malformed 2xx. The well-behaved flows are covered with sipp in cmd/sbc.

// peer is a raw UDP SIP endpoint.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
	addr string
}

func newPeer(t testing.TB, ip string) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c, addr: c.LocalAddr().String()}
}

// recv returns the next message that is not a 100 Trying, or nil.
func (p *peer) recv(timeout time.Duration) sip.Message {
	p.t.Helper()
	buf := make([]byte, 8192)
	deadline := time.Now().Add(timeout)
	for {
		p.conn.SetReadDeadline(deadline)
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			p.t.Fatalf("peer %s got unparseable message: %v\n%s", p.addr, err, buf[:n])
		}
		if r, ok := m.(*sip.Response); ok && r.StatusCode == 100 {
			continue
		}
		return m
	}
}

func (p *peer) expectRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	m := p.recv(3 * time.Second)
	req, ok := m.(*sip.Request)
	if !ok || req.Method != method {
		p.t.Fatalf("peer %s: got %v; want a %s request", p.addr, m, method)
	}
	return req
}

func (p *peer) expectResponse(code int) *sip.Response {
	p.t.Helper()
	m := p.recv(3 * time.Second)
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode != code {
		p.t.Fatalf("peer %s: got %v; want a %d response", p.addr, m, code)
	}
	return res
}

func (p *peer) send(to string, raw string) {
	p.t.Helper()
	ua, _ := net.ResolveUDPAddr("udp4", to)
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	if _, err := p.conn.WriteTo([]byte(raw), ua); err != nil {
		p.t.Fatal(err)
	}
}

// reply answers req; drop removes header lines by name (case-sensitive
// prefix) to build malformed responses.
func (p *peer) reply(to string, req *sip.Request, code int, toTag string, drop ...string) {
	p.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason(code), nil)
	if toTag != "" {
		res.To().Params.Add("tag", toTag)
	}
	if code >= 200 && code < 300 && req.IsInvite() {
		la := p.conn.LocalAddr().(*net.UDPAddr)
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: la.IP.String(), Port: la.Port}})
		res.AppendHeader(ptr(sip.ContentTypeHeader("application/sdp")))
		res.SetBody([]byte(testSDP("127.0.0.1", 4100)))
	}
	var out []string
	for _, l := range strings.Split(res.String(), "\r\n") {
		keep := true
		for _, d := range drop {
			if strings.HasPrefix(l, d+":") {
				keep = false
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	p.send(to, strings.Join(out, "\r\n"))
}

func testSDP(ip string, port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", ip, ip, port)
}

// startCallee sets up a server whose trunk "t" is the caller (127.0.0.1)
// and whose callee trunk "b" is a raw peer on 127.0.0.2; extra is appended
// to the config.
func startCallee(t *testing.T, extra string) (*Server, *peer) {
	t.Helper()
	return startCalleeAt(t, newPeer(t, "127.0.0.2"), extra)
}

// startCalleeAt is startCallee with the callee b.
func startCalleeAt(t *testing.T, b *peer, extra string) (*Server, *peer) {
	t.Helper()
	s := startServer(t, fmt.Sprintf(`
[[trunk]]
name = "b"
address = %q
sources = ["127.0.0.2"]
[[route]]
from = "t"
prefix = "2"
to = "b"
%s`, b.addr, extra))
	return s, b
}

// inviteFrom is the caller's INVITE for number 200, with its own Call-ID
// and tags.
func inviteFrom(a *peer, sbcAddr string) string {
	body := testSDP("127.0.0.1", 4000)
	id := newID()
	return fmt.Sprintf("INVITE sip:200@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.1>;tag=a%s\nTo: <sip:200@%s>\nCall-ID: a-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		sbcAddr, a.addr, id, id, sbcAddr, id, a.addr, len(body), body)
}

// startCall starts a server with a raw callee and sends the caller's INVITE.
func startCall(t *testing.T) (s *Server, a, b *peer, sbcAddr string, invite string) {
	t.Helper()
	s, b = startCallee(t, "")
	a = newPeer(t, "127.0.0.1")
	sbcAddr = s.Addrs()[0].String()
	invite = inviteFrom(a, sbcAddr)
	a.send(sbcAddr, invite)
	return s, a, b, sbcAddr, invite
}

func cancelFor(invite string) string {
	lines := strings.Split(strings.SplitN(invite, "\n\n", 2)[0], "\n")
	out := []string{strings.Replace(lines[0], "INVITE", "CANCEL", 1)}
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "CSeq:"):
			out = append(out, "CSeq: 1 CANCEL")
		case strings.HasPrefix(l, "Content-"), strings.HasPrefix(l, "Contact:"):
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\nContent-Length: 0\n\n"
}

// waitIdle waits until the server has no call and every port is back.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if s.ActiveCalls() == 0 && s.relay.FreePairs() == s.relay.TotalPairs() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d calls active, %d of %d port pairs free; want none and all", s.ActiveCalls(), s.relay.FreePairs(), s.relay.TotalPairs())
}

// A 2xx from the callee without a To header cannot start a dialog: the
// caller gets 502 and the daemon carries on.
func TestCalleeMalformed2xx(t *testing.T) {
	s, a, b, sbcAddr, _ := startCall(t)
	inv := b.expectRequest(sip.INVITE)
	b.reply(s.Addrs()[0].String(), inv, 200, "btag", "To")
	a.expectResponse(502)
	waitIdle(t, s)
	if status, _ := exchange(t, "127.0.0.1", sbcAddr, "OPTIONS sip:1@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:1@y>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"); status != "SIP/2.0 200 OK" {
		t.Fatalf("after the malformed 2xx OPTIONS got %q; want the server alive", status)
	}
}

// The callee answers just as the caller cancels: the caller has its 487,
// so the callee's 200 is ACKed and hung up with BYE.
func TestCancelCrossing2xx(t *testing.T) {
	s, a, b, sbcAddr, invite := startCall(t)
	sbcSIP := s.Addrs()[0].String()
	inv := b.expectRequest(sip.INVITE)
	b.reply(sbcSIP, inv, 180, "btag")
	a.expectResponse(180)
	a.send(sbcAddr, cancelFor(invite))
	cancel := b.expectRequest(sip.CANCEL)
	b.reply(sbcSIP, cancel, 200, "")
	b.reply(sbcSIP, inv, 200, "btag") // crosses the CANCEL
	b.expectRequest(sip.ACK)
	bye := b.expectRequest(sip.BYE)
	b.reply(sbcSIP, bye, 200, "")
	seen := map[int]bool{}
	for m := a.recv(time.Second); m != nil; m = a.recv(500 * time.Millisecond) {
		if r, ok := m.(*sip.Response); ok {
			seen[r.StatusCode] = true
		}
	}
	if !seen[487] {
		t.Fatalf("caller got %v; want 487 for the INVITE", seen)
	}
	waitIdle(t, s)
}

// RFC 3261 §9.1: CANCEL may follow any provisional response, 100 included.
func TestCancelAfterTrying(t *testing.T) {
	s, a, b, sbcAddr, invite := startCall(t)
	sbcSIP := s.Addrs()[0].String()
	inv := b.expectRequest(sip.INVITE)
	b.reply(sbcSIP, inv, 100, "")
	time.Sleep(100 * time.Millisecond)
	a.send(sbcAddr, cancelFor(invite))
	cancel := b.expectRequest(sip.CANCEL)
	b.reply(sbcSIP, cancel, 200, "")
	b.reply(sbcSIP, inv, 487, "btag")
	b.expectRequest(sip.ACK)
	waitIdle(t, s)
}

// A second fork answering (another To tag) after the call was answered is
// ACKed and hung up at once; the call itself goes on with the first.
func TestForked2xx(t *testing.T) {
	s, a, b, _, _ := startCall(t)
	sbcSIP := s.Addrs()[0].String()
	inv := b.expectRequest(sip.INVITE)
	b.reply(sbcSIP, inv, 200, "first")
	if ack := b.expectRequest(sip.ACK); !strings.Contains(ack.To().Value(), "tag=first") {
		t.Fatalf("ACK for the first 2xx: %s", ack.To().Value())
	}
	a.expectResponse(200)
	b.reply(sbcSIP, inv, 200, "second")
	got := map[string]string{}
	for i := 0; i < 2; i++ {
		req, ok := b.recv(3 * time.Second).(*sip.Request)
		if !ok {
			t.Fatalf("want ACK and BYE for the second fork; got %v", got)
		}
		got[req.Method.String()] = req.To().Value()
		if req.Method == sip.BYE {
			b.reply(sbcSIP, req, 200, "")
		}
	}
	if !strings.Contains(got["ACK"], "tag=second") || !strings.Contains(got["BYE"], "tag=second") {
		t.Fatalf("second fork got %v; want ACK and BYE in its own dialog", got)
	}
	if s.ActiveCalls() != 1 {
		t.Fatalf("%d active calls; want the first fork's call to go on", s.ActiveCalls())
	}
}

// Past calls.max_active new calls get 503 with Retry-After, and nothing is
// sent to the callee trunk for them.
func TestCapacity(t *testing.T) {
	s, b := startCallee(t, "[calls]\nmax_active = 1\n")
	a := newPeer(t, "127.0.0.1")
	sbcAddr := s.Addrs()[0].String()
	a.send(sbcAddr, inviteFrom(a, sbcAddr))
	inv := b.expectRequest(sip.INVITE) // the first call rings at the callee
	b.reply(s.Addrs()[0].String(), inv, 180, "btag")
	a.expectResponse(180)
	a.send(sbcAddr, inviteFrom(a, sbcAddr))
	res := a.expectResponse(503)
	if h := res.GetHeader("Retry-After"); h == nil {
		t.Error("503 without Retry-After")
	}
	if m := b.recv(300 * time.Millisecond); m != nil {
		t.Fatalf("the callee got %v for a call over capacity", m)
	}
}
