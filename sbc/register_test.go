package sbc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/digest"
)

// registrarServer is a server with a control plane holding user alice.
func registrarServer(t testing.TB, extra string, change ...func(*Config)) (*Server, *control.Plane) {
	t.Helper()
	p := devicePlane(t)
	s := startServerWith(t, extra, func(c *Config) {
		for _, f := range change {
			f(c)
		}
	}, func(s *Server) { s.SetControl(p) })
	return s, p
}

// register sends a REGISTER for user from d, with credentials answering
// challenge (none when nil), and returns the response.
func register(d *peer, sbcAddr, user, password string, cseq int, expires int, challenge *sip.Response) *sip.Response {
	d.t.Helper()
	ruri := "sip:" + sbcAddr
	auth := ""
	if challenge != nil {
		p, err := digest.Parse(challenge.GetHeader("WWW-Authenticate").Value())
		if err != nil {
			d.t.Fatal(err)
		}
		ha1, _ := digest.HA1(p["algorithm"], user, p["realm"], password)
		p["uri"], p["nc"], p["cnonce"], p["qop"] = ruri, "00000001", "c0ffee", "auth"
		resp, _ := digest.Response(ha1, "REGISTER", p)
		auth = fmt.Sprintf("Authorization: Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q, algorithm=%s, qop=auth, nc=00000001, cnonce=\"c0ffee\"\n",
			user, p["realm"], p["nonce"], ruri, resp, p["algorithm"])
	}
	d.send(sbcAddr, fmt.Sprintf("REGISTER %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\nFrom: <sip:%s@%s>;tag=r%d\nTo: <sip:%s@%s>\nCall-ID: reg-%s-%s\nCSeq: %d REGISTER\nContact: <sip:%s@%s>\nExpires: %d\n%sMax-Forwards: 70\nContent-Length: 0\n\n",
		ruri, d.addr, newID(), user, sbcAddr, cseq, user, sbcAddr, user, d.addr, cseq, user, d.addr, expires, auth))
	m, ok := d.recv(3 * time.Second).(*sip.Response)
	if !ok {
		d.t.Fatal("no response to REGISTER")
	}
	return m
}

func TestRegister(t *testing.T) {
	s, _ := registrarServer(t, "[sip.registrar]\nauth_failures = 3\n")
	sbcAddr := s.addrOf("udp")

	// A known and an unknown user: the same challenge, SHA-256 first.
	var first *sip.Response
	for _, user := range []string{"alice", "mallory"} {
		res := register(newPeer(t, "127.0.0.41"), sbcAddr, user, "", 1, 3600, nil)
		hs := res.GetHeaders("WWW-Authenticate")
		if res.StatusCode != 401 || len(hs) != 2 || !strings.Contains(hs[0].Value(), "algorithm=SHA-256") || !strings.Contains(hs[1].Value(), "algorithm=MD5") {
			t.Fatalf("%s: %d %v; want 401 with SHA-256 and MD5 challenges", user, res.StatusCode, hs)
		}
		first = res
	}
	// Right password: registered, its 3600 s cut to max_expires.
	d := newPeer(t, "127.0.0.42")
	first = register(d, sbcAddr, "alice", "", 1, 3600, nil)
	res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 3600, first)
	if res.StatusCode != 200 || !strings.Contains(res.GetHeader("Contact").Value(), "expires=120") {
		t.Fatalf("register: %v", res)
	}
	if b := s.dev.reg.Lookup("alice", time.Now()); len(b) != 1 || b[0].Source != d.addr || b[0].Transport != "udp" {
		t.Fatalf("bindings %+v; want alice at %s over udp", b, d.addr)
	}
	// The same nonce and count again: a replay, challenged afresh.
	if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 3, 3600, first); res.StatusCode != 401 {
		t.Fatalf("replayed credentials: %d", res.StatusCode)
	}
	// Too brief: 423 with Min-Expires.
	c := register(newPeer(t, "127.0.0.42"), sbcAddr, "alice", "", 1, 30, nil)
	if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 4, 30, c); res.StatusCode != 423 || res.GetHeader("Min-Expires").Value() != "60" {
		t.Fatalf("30 s: %v", res)
	}
	// Wrong password and unknown user: the same 401 again.
	for _, user := range []string{"alice", "mallory"} {
		c := register(newPeer(t, "127.0.0.43"), sbcAddr, user, "", 1, 120, nil)
		if res := register(newPeer(t, "127.0.0.43"), sbcAddr, user, "wrong", 2, 120, c); res.StatusCode != 401 {
			t.Fatalf("%s with a wrong password: %d; want 401", user, res.StatusCode)
		}
	}
	// auth_failures (3) from one address lock alice out there: even the
	// right password gets 403 from it, while another address is not held.
	for range 3 {
		c = register(newPeer(t, "127.0.0.44"), sbcAddr, "alice", "", 1, 120, nil)
		register(newPeer(t, "127.0.0.44"), sbcAddr, "alice", "wrong", 2, 120, c)
	}
	c = register(newPeer(t, "127.0.0.44"), sbcAddr, "alice", "", 3, 120, nil)
	if res := register(newPeer(t, "127.0.0.44"), sbcAddr, "alice", "Str0ng-Passw0rd!", 4, 120, c); res.StatusCode != 403 {
		t.Fatalf("locked out user: %d; want 403", res.StatusCode)
	}
	other := newPeer(t, "127.0.0.49")
	c = register(other, sbcAddr, "alice", "", 1, 120, nil)
	if res := register(other, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
		t.Fatalf("alice from another address during the lockout: %d; want 200", res.StatusCode)
	}
	// alice's own phone, registered over its flow before, is not locked
	// out by a stranger's guesses.
	c = register(d, sbcAddr, "alice", "", 10, 120, nil)
	if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 11, 120, c); res.StatusCode != 200 {
		t.Fatalf("the registered phone during the lockout: %d; want 200", res.StatusCode)
	}
}

// A restarted daemon has its devices' registrations back from the store.
func TestRegistrationsRestored(t *testing.T) {
	s, p := registrarServer(t, "")
	d := newPeer(t, "127.0.0.46")
	c := register(d, s.addrOf("udp"), "alice", "", 1, 120, nil)
	if res := register(d, s.addrOf("udp"), "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	next := startServerWith(t, "", nil, func(s *Server) { s.SetControl(p) }) // Listen restores
	b := next.dev.reg.Lookup("alice", time.Now())
	if len(b) != 1 || b[0].Source != d.addr || b[0].Transport != "udp" || time.Until(b[0].Expires) > 120*time.Second {
		t.Fatalf("restored %+v; want alice at %s", b, d.addr)
	}
	if to := next.deviceOf("alice"); to == nil || to.Address != d.addr {
		t.Fatalf("a call to alice after the restart goes to %+v", to)
	}
}

// Failures sent from a forged address (UDP) count against nobody: a
// nonce is good only from the address it was sent to, so a forger who
// asks for one from its own address and guesses from its victim's is
// challenged again, as is a request with no nonce at all.
func TestForgedFailuresNotCounted(t *testing.T) {
	s, _ := registrarServer(t, "[sip.registrar]\nauth_failures = 3\n", func(c *Config) { c.SIP.BanThreshold = ptr(3) })
	sbcAddr := s.addrOf("udp")
	forger, victim := newPeer(t, "127.0.0.45"), newPeer(t, "127.0.0.46")
	c := register(forger, sbcAddr, "alice", "", 1, 120, nil)
	for i := range 10 {
		res := register(victim, sbcAddr, "alice", "guess", 2+i, 120, c)
		if v := res.GetHeader("WWW-Authenticate"); res.StatusCode != 401 || v == nil || !strings.Contains(v.Value(), "stale=true") {
			t.Fatalf("guess %d with the forger's nonce: %v; want 401 stale=true", i+1, res)
		}
		victim.send(sbcAddr, fmt.Sprintf("REGISTER sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\nFrom: <sip:alice@%s>;tag=f%d\nTo: <sip:alice@%s>\nCall-ID: forged-%d\nCSeq: 1 REGISTER\nContact: <sip:alice@%s>\nAuthorization: Digest username=\"alice\", realm=\"x\", uri=\"sip:%s\", response=\"00\"\nMax-Forwards: 70\nContent-Length: 0\n\n",
			sbcAddr, victim.addr, newID(), sbcAddr, i, sbcAddr, i, victim.addr, sbcAddr))
		if res, ok := victim.recv(3 * time.Second).(*sip.Response); !ok || res.StatusCode != 401 {
			t.Fatalf("credentials without a nonce %d: %v; want 401", i+1, res)
		}
	}
	c = register(victim, sbcAddr, "alice", "", 20, 120, nil)
	if res := register(victim, sbcAddr, "alice", "Str0ng-Passw0rd!", 21, 120, c); res.StatusCode != 200 {
		t.Fatalf("the victim registering: %d; want 200", res.StatusCode)
	}
	// Now the victim's host holds a registration: requests from strangers'
	// ports there, garbage and scanners' requests count against it no
	// more (a forger's, maybe); the phone goes on.
	other := newPeer(t, "127.0.0.46")
	for i := range 10 {
		other.send(sbcAddr, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:x@%s>;tag=o%d\nTo: <sip:%s>\nCall-ID: stranger-%d\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
			sbcAddr, other.addr, newID(), other.addr, i, sbcAddr, i))
		other.recv(time.Second) // 403
		other.send(sbcAddr, "garbage\n\n")
		other.send(sbcAddr, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:x@%s>;tag=s%d\nTo: <sip:%s>\nCall-ID: scan-%d\nCSeq: 1 OPTIONS\nUser-Agent: friendly-scanner\nMax-Forwards: 70\nContent-Length: 0\n\n",
			sbcAddr, other.addr, newID(), other.addr, i, sbcAddr, i))
	}
	c = register(victim, sbcAddr, "alice", "", 30, 120, nil)
	if res := register(victim, sbcAddr, "alice", "Str0ng-Passw0rd!", 31, 120, c); res.StatusCode != 200 {
		t.Fatalf("the victim registering after forged strangers' requests: %d; want 200", res.StatusCode)
	}
	if n := s.Bans(); n != 0 {
		t.Fatalf("%d bans after forged failures", n)
	}
}

// Devices registered over UDP get a double CRLF every
// sip.registrar.keepalive from the SBC's SIP port, to their flow; others
// get nothing.
func TestRegisteredDevicesPinged(t *testing.T) {
	s, _ := registrarServer(t, "[sip.registrar]\nkeepalive = \"1s\"\n")
	sbcAddr := s.addrOf("udp")
	d, stranger := newPeer(t, "127.0.0.48"), newPeer(t, "127.0.0.48")
	c := register(d, sbcAddr, "alice", "", 1, 120, nil)
	if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	register(stranger, sbcAddr, "alice", "", 1, 120, nil) // challenged only
	buf := make([]byte, 64)
	for i := range 2 {
		d.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != "\r\n\r\n" || from.String() != sbcAddr {
			t.Fatalf("keepalive %d: %q from %v, %v; want a double CRLF from %s", i+1, buf[:n], from, err, sbcAddr)
		}
	}
	stranger.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if n, _, err := stranger.conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("an unregistered address got %q", buf[:n])
	}
}

// A registered phone's SUBSCRIBEs (busy lamps, voicemail) are refused
// without counting towards a ban of its own address.
func TestRegisteredDeviceNotBanned(t *testing.T) {
	s, _ := registrarServer(t, "", func(c *Config) { c.SIP.BanThreshold = ptr(3) })
	sbcAddr := s.addrOf("udp")
	d := newPeer(t, "127.0.0.47")
	c := register(d, sbcAddr, "alice", "", 1, 120, nil)
	if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	for i := range 10 {
		d.send(sbcAddr, fmt.Sprintf("SUBSCRIBE sip:alice@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:alice@%s>;tag=s%d\nTo: <sip:alice@%s>\nCall-ID: sub-%d\nCSeq: 1 SUBSCRIBE\nEvent: message-summary\nMax-Forwards: 70\nContent-Length: 0\n\n",
			sbcAddr, d.addr, newID(), sbcAddr, i, sbcAddr, i))
		if res, ok := d.recv(time.Second).(*sip.Response); !ok || res.StatusCode != 405 {
			t.Fatalf("SUBSCRIBE %d: %v; want 405 (and never a ban: silence)", i+1, res)
		}
	}
	if n := s.Bans(); n != 0 {
		t.Fatalf("%d bans of a registered phone", n)
	}
}

// An expired binding leaves memory, the flow index and the store.
func TestRegistrationExpires(t *testing.T) {
	s, p := registrarServer(t, "")
	d := newPeer(t, "127.0.0.48")
	c := register(d, s.addrOf("udp"), "alice", "", 1, 60, nil)
	if res := register(d, s.addrOf("udp"), "alice", "Str0ng-Passw0rd!", 2, 60, c); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	s.expireRegistrations(time.Now().Add(61 * time.Second))
	if s.dev.reg.Registered(d.addr) || len(s.dev.reg.Lookup("alice", time.Now())) != 0 {
		t.Fatal("expired binding still in memory")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		regs, err := p.Store().Registrations(context.Background(), store.RegistrationFilter{Username: "alice"}, time.Now())
		if err == nil && len(regs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired binding still stored: %+v %v", regs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
