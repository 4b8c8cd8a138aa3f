package sbc

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// Inbound MESSAGEs a carrier trunk sends: to a number no account has 404,
// of a type other than text (or an IMDN) 415, a delivery report on no
// message of ours 481; a stranger's 403 (as any request).
func TestInboundMessageRefusals(t *testing.T) {
	s, _ := registrarServer(t, "")
	sbcAddr := s.addrOf("udp")
	carrier := newPeer(t, "127.0.0.1") // trunk t
	send := func(p *peer, to, ctype, extra, body string) int {
		t.Helper()
		p.send(sbcAddr, fmt.Sprintf("MESSAGE sip:%s@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:+14155550199@%s>;tag=m%s\nTo: <sip:%s@%s>\nCall-ID: msg-%s\nCSeq: 1 MESSAGE\nMax-Forwards: 70\nContent-Type: %s\n%sContent-Length: %d\n\n%s",
			to, sbcAddr, p.addr, newID(), p.addr, newID(), to, sbcAddr, newID(), ctype, extra, len(body), body))
		res, ok := p.recv(3e9).(*sip.Response)
		if !ok {
			t.Fatalf("no answer to MESSAGE to %s", to)
		}
		return res.StatusCode
	}
	for _, tt := range []struct {
		name                   string
		to, ctype, extra, body string
		want                   int
	}{
		{"nobody's number", "+14155550999", "text/plain", "", "hi", 404},
		{"an image", "+14155550400", "image/png", "", "x", 415},
		{"a report on nothing of ours", "+14155550400", "text/plain", "In-Reply-To: nothing@sbc\n", "Delivered to handset", 481},
		{"a broken IMDN", "+14155550400", "message/imdn+xml", "", "<imdn>", 400},
		{"not UTF-8", "+14155550400", "text/plain", "", "caf\xe9", 415},
		{"a charset unknown", "+14155550400", "text/plain;charset=koi8-r", "", "x", 415},
		{"text to alice's number (no SMS)", "+14155550400", "text/plain", "", "hi", 403},
	} {
		if got := send(carrier, tt.to, tt.ctype, tt.extra, tt.body); got != tt.want {
			t.Errorf("%s: %d; want %d", tt.name, got, tt.want)
		}
	}
	if got := send(newPeer(t, "127.0.0.77"), "+14155550400", "text/plain", "", "hi"); got != 403 {
		t.Errorf("a stranger's MESSAGE: %d; want 403", got)
	}
}

// A customer's PBX trunk sends no SMS: it could write STOP in a
// recipient's name into other accounts.
func TestMessageFromCustomerTrunk(t *testing.T) {
	s, _ := registrarServer(t, "", func(c *Config) { c.Trunks[0].Account = "AC0123456789abcdef0123456789abcdef" })
	pbx := newPeer(t, "127.0.0.1")
	pbx.send(s.addrOf("udp"), fmt.Sprintf("MESSAGE sip:+14155550400@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:+14155550199@x>;tag=p\nTo: <sip:+14155550400@x>\nCall-ID: pbx-%s\nCSeq: 1 MESSAGE\nMax-Forwards: 70\nContent-Type: text/plain\nContent-Length: 4\n\nSTOP",
		s.addrOf("udp"), pbx.addr, newID(), newID()))
	pbx.expectResponse(403)
}

func TestTextOf(t *testing.T) {
	for _, tt := range []struct {
		body, charset, want string
		ok                  bool
	}{
		{"Grüße", "", "Grüße", true},
		{"caf\xe9", "iso-8859-1", "café", true},
		{"caf\xe9", "utf-8", "", false},
		{"a\x00b", "", "", false},
		{"x", "koi8-r", "", false},
	} {
		got, ok := textOf([]byte(tt.body), tt.charset)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("textOf(%q, %q) = %q %v; want %q %v", tt.body, tt.charset, got, ok, tt.want, tt.ok)
		}
	}
}
