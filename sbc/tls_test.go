package sbc

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/sbc/sbctest/testpki"
)

// tlsServer starts a server with a TLS listener whose certificate ca
// issued, a mutual-TLS trunk "m" (127.0.0.3, client names carrier.test),
// a TLS-only trunk "o" (127.0.0.4) and extra appended to the config.
func tlsServer(t testing.TB, ca *testpki.CA, extra string, change ...func(*Config)) (*Server, *testpki.Leaf) {
	t.Helper()
	leaf := ca.Issue(t, "sbc.test", "127.0.0.1")
	s := startServerWith(t, fmt.Sprintf(`
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[sip.tls]
cert = %q
key = %q
handshake_timeout = "300ms"
keepalive = "1s"
[[trunk]]
name = "m"
address = "127.0.0.3:5061"
transport = "tls"
sources = ["127.0.0.3"]
tls_ca = %q
tls_client_ca = %q
tls_client_names = ["carrier.test"]
[[trunk]]
name = "o"
address = "127.0.0.4:5060"
sources = ["127.0.0.4"]
tls_only = true
%s`, leaf.CertFile, leaf.KeyFile, ca.CertFile, ca.CertFile, extra), func(c *Config) {
		for _, f := range change {
			f(c)
		}
	})
	return s, leaf
}

func (s *Server) addrOf(transport string) string {
	for i, l := range s.cfg.SIP.Listen {
		if l.Transport == transport {
			return s.listeners[i].String()
		}
	}
	return ""
}

// sipTLSConn is a SIP client over TLS from src.
type sipTLSConn struct {
	*tls.Conn
	r *bufio.Reader
}

func dialTLS(t testing.TB, src, dst string, cfg *tls.Config) (*sipTLSConn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", dst, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &sipTLSConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// options sends an OPTIONS and returns the response's status line and
// Warning header.
func (c *sipTLSConn) options(t *testing.T) (string, string) {
	t.Helper()
	id := newID()
	msg := strings.ReplaceAll(fmt.Sprintf("OPTIONS sip:sbc@%s;transport=tls SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%s\nFrom: <sip:probe@%s>;tag=%s\nTo: <sip:sbc@%s>\nCall-ID: %s\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
		c.RemoteAddr(), c.LocalAddr(), id, c.LocalAddr(), id, c.RemoteAddr(), id), "\n", "\r\n")
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	status, warning := "", ""
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response: %v (so far %q)", err, status)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case status == "":
			status = line
		case strings.HasPrefix(line, "Warning:"):
			warning = line
		case line == "":
			return status, warning
		}
	}
}

func TestTLSTrunks(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	s, leaf := tlsServer(t, ca, "")
	addr := s.addrOf("tls")
	carrier := ca.Issue(t, "carrier.test", "127.0.0.3")
	intruder := ca.Issue(t, "intruder.test", "127.0.0.3")
	other := testpki.NewCA(t, "other CA").Issue(t, "carrier.test", "127.0.0.3")
	verify := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	with := func(c tls.Certificate) *tls.Config {
		v := verify.Clone()
		v.Certificates = []tls.Certificate{c}
		return v
	}
	for _, tt := range []struct {
		name, src string
		cfg       *tls.Config
		status    string
	}{
		{"mutual TLS, the carrier's certificate", "127.0.0.3", with(carrier.TLS), "SIP/2.0 200 OK"},
		{"mutual TLS trunk without a certificate", "127.0.0.3", verify, "SIP/2.0 403 Forbidden"},
		{"the right CA, another name", "127.0.0.3", with(intruder.TLS), "SIP/2.0 403 Forbidden"},
		{"the right name, another CA", "127.0.0.3", with(other.TLS), "SIP/2.0 403 Forbidden"},
		{"the carrier's certificate from another address", "127.0.0.9", with(carrier.TLS), "SIP/2.0 403 Forbidden"},
		{"TLS-only trunk over TLS", "127.0.0.4", verify, "SIP/2.0 200 OK"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dialTLS(t, tt.src, addr, tt.cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(leaf.Cert.SerialNumber) != 0 {
				t.Fatalf("the SBC presented certificate %v; want the configured one", got)
			}
			if status, warning := c.options(t); status != tt.status {
				t.Fatalf("OPTIONS: %q %q; want %q", status, warning, tt.status)
			}
		})
	}
	t.Run("TLS-only trunk over UDP", func(t *testing.T) {
		status, warning := exchange(t, "127.0.0.4", s.addrOf("udp"), "OPTIONS sip:sbc@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:p@127.0.0.4>;tag=1\nTo: <sip:sbc@127.0.0.1>\nCall-ID: tlsonly\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n")
		if !strings.HasPrefix(status, "SIP/2.0 403") || !strings.Contains(warning, "accepts TLS only") {
			t.Fatalf("%q %q; want 403 saying TLS only", status, warning)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		v := verify.Clone()
		v.MinVersion, v.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
		if _, err := dialTLS(t, "127.0.0.3", addr, v); err == nil {
			t.Fatal("TLS 1.1 handshake accepted")
		}
	})
	t.Run("silent client dropped after handshake_timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) || time.Since(start) > 2*time.Second {
			t.Fatalf("read after %v: %v; want EOF after ~300ms", time.Since(start), err)
		}
	})
}

// A renewed certificate is presented to new connections once reloaded;
// a connection made before stays up and in use.
func TestTLSCertificateReload(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	s, leaf := tlsServer(t, ca, "")
	addr := s.addrOf("tls")
	carrier := ca.Issue(t, "carrier.test", "127.0.0.3")
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{carrier.TLS}}
	before, err := dialTLS(t, "127.0.0.3", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	renewed := ca.Issue(t, "sbc-renewed.test", "127.0.0.1")
	for _, f := range [][2]string{{renewed.CertFile, leaf.CertFile}, {renewed.KeyFile, leaf.KeyFile}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Certificate().Reload(); err != nil {
		t.Fatal(err)
	}
	after, err := dialTLS(t, "127.0.0.3", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "sbc-renewed.test" {
		t.Fatalf("after the reload the SBC presents %q", got)
	}
	if status, _ := before.options(t); status != "SIP/2.0 200 OK" {
		t.Fatalf("the connection made before the reload: %q", status)
	}
	// A file that does not load leaves the certificate in use.
	os.WriteFile(leaf.CertFile, []byte("not a certificate"), 0o600)
	if err := s.Certificate().Reload(); err == nil {
		t.Fatal("a broken certificate file reloaded")
	}
	if again, err := dialTLS(t, "127.0.0.3", addr, cfg); err != nil || again.ConnectionState().PeerCertificates[0].Subject.CommonName != "sbc-renewed.test" {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// tlsTrunk is a trunk's TLS server: it accepts one connection, answers
// keepalive pings while pong is set, and reports how the connection ended.
type tlsTrunk struct {
	ln     net.Listener
	pong   chan bool // set answering
	pings  chan struct{}
	closed chan error // the connection's end (io.EOF: the SBC closed it)
}

func newTLSTrunk(t *testing.T, ip string, cert tls.Certificate) *tlsTrunk {
	t.Helper()
	ln := tlsTrunkListener(t, ip, cert)
	k := &tlsTrunk{ln: ln, pong: make(chan bool, 1), pings: make(chan struct{}, 100), closed: make(chan error, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		answer := true
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				k.closed <- err
				return
			}
			select {
			case answer = <-k.pong:
			default:
			}
			if m, err := sip.NewParser().ParseSIP(buf[:n]); err == nil {
				if req, ok := m.(*sip.Request); ok && req.IsInvite() {
					// The call ends; the connection stays for the next.
					c.Write([]byte(sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil).String()))
				}
				continue
			}
			if strings.Contains(string(buf[:n]), "\r\n\r\n") && strings.TrimSpace(string(buf[:n])) == "" {
				k.pings <- struct{}{}
				if answer {
					c.Write([]byte("\r\n"))
				}
			}
		}
	}()
	return k
}

// The SBC verifies a TLS trunk's certificate, keeps the connection alive
// with CRLF pings while pongs come, and closes it when they stop.
func TestTLSTrunkKeepalive(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	good := newTLSTrunk(t, "127.0.0.5", ca.Issue(t, "k.test", "127.0.0.5").TLS)
	bad := newTLSTrunk(t, "127.0.0.6", testpki.NewCA(t, "other CA").Issue(t, "k.test", "127.0.0.6").TLS)
	old := pongTimeout
	pongTimeout = 500 * time.Millisecond
	t.Cleanup(func() { pongTimeout = old })
	s, _ := tlsServer(t, ca, fmt.Sprintf(`
[[trunk]]
name = "k"
address = %q
transport = "tls"
sources = ["127.0.0.5"]
tls_ca = %q
[[trunk]]
name = "bad"
address = %q
transport = "tls"
sources = ["127.0.0.6"]
tls_ca = %q
[[route]]
from = "t"
prefix = "5"
to = "k"
[[route]]
from = "t"
prefix = "6"
to = "bad"
`, good.ln.Addr(), ca.CertFile, bad.ln.Addr(), ca.CertFile))
	a := newPeer(t, "127.0.0.1")
	call := func(number string) {
		body := testSDP("127.0.0.1", 4000)
		id := newID()
		a.send(s.addrOf("udp"), fmt.Sprintf("INVITE sip:%s@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.1>;tag=a%s\nTo: <sip:%s@127.0.0.1>\nCall-ID: k-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
			number, a.addr, id, id, number, id, a.addr, len(body), body))
	}
	// The trunk whose certificate another CA signed is refused.
	call("600")
	select {
	case err := <-bad.closed:
		if err == io.EOF {
			t.Fatalf("the SBC completed a handshake with a trunk whose certificate does not verify")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the SBC never connected to the bad trunk")
	}
	call("500")
	for i := range 2 {
		select {
		case <-good.pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	select {
	case err := <-good.closed:
		t.Fatalf("connection closed while pongs came: %v", err)
	default:
	}
	good.pong <- false
	select {
	case err := <-good.closed:
		if err != io.EOF {
			t.Fatalf("connection ended with %v; want the SBC to close it", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the SBC kept a connection whose pongs stopped")
	}
}

// A mutual-TLS trunk's requests on the connection the SBC opened to it
// are the trunk's: its certificate was checked as the SBC connected.
func TestTLSTrunkRequestsOnDialledConnection(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	ln := tlsTrunkListener(t, "127.0.0.3", ca.Issue(t, "carrier.test", "127.0.0.3").TLS)
	s := startServerWith(t, fmt.Sprintf(`
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[[trunk]]
name = "m"
address = %q
transport = "tls"
sources = ["127.0.0.3"]
tls_ca = %q
tls_client_ca = %q
tls_client_names = ["carrier.test"]
[[route]]
from = "t"
prefix = "3"
to = "m"
`, ln.Addr(), ca.CertFile, ca.CertFile), nil)
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := readMessage(r); err != nil { // the SBC's INVITE
			got <- err.Error()
			return
		}
		id := newID()
		fmt.Fprintf(c, "OPTIONS sip:sbc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%s\r\nFrom: <sip:carrier@127.0.0.3>;tag=%s\r\nTo: <sip:sbc@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			c.LocalAddr(), id, id, id)
		for {
			m, err := readMessage(r)
			if err != nil {
				got <- err.Error()
				return
			}
			if res, ok := m.(*sip.Response); ok && res.CSeq().MethodName == sip.OPTIONS {
				got <- res.StartLine()
				return
			}
		}
	}()
	a := newPeer(t, "127.0.0.1")
	body := testSDP("127.0.0.1", 4000)
	a.send(s.addrOf("udp"), fmt.Sprintf("INVITE sip:300@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.1>;tag=a1\nTo: <sip:300@127.0.0.1>\nCall-ID: dialled-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		a.addr, newID(), newID(), a.addr, len(body), body))
	select {
	case line := <-got:
		if !strings.HasPrefix(line, "SIP/2.0 200") {
			t.Fatalf("the trunk's OPTIONS on the SBC's connection: %q; want 200", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the trunk's OPTIONS")
	}
}

// A carrier that called over TLS and closed its connection still gets
// the call's BYE: the SBC connects to the trunk's address, checking its
// certificate, rather than writing to a connection that is gone.
func TestTLSByeAfterCarrierClosed(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	carrierCert := ca.Issue(t, "carrier.test", "127.0.0.3")
	ln := tlsTrunkListener(t, "127.0.0.3", carrierCert.TLS)
	callee := newPeer(t, "127.0.0.2")
	leaf := ca.Issue(t, "sbc.test", "127.0.0.1")
	s := startServerWith(t, fmt.Sprintf(`
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[sip.tls]
cert = %q
key = %q
[[trunk]]
name = "m"
address = %q
transport = "tls"
sources = ["127.0.0.3"]
tls_ca = %q
tls_client_ca = %q
tls_client_names = ["carrier.test"]
[[trunk]]
name = "b"
address = %q
sources = ["127.0.0.2"]
[[route]]
from = "m"
prefix = "2"
to = "b"
`, leaf.CertFile, leaf.KeyFile, ln.Addr(), ca.CertFile, ca.CertFile, callee.addr), nil)
	sbcAddr := s.addrOf("tls")
	c, err := dialTLS(t, "127.0.0.3", sbcAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{carrierCert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	body := testSDP("127.0.0.3", 4000)
	id := newID()
	fmt.Fprintf(c, "%s", strings.ReplaceAll(fmt.Sprintf("INVITE sip:200@%s;transport=tls SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.3>;tag=a%s\nTo: <sip:200@%s>\nCall-ID: closed-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s;transport=tls>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		sbcAddr, c.LocalAddr(), id, id, sbcAddr, id, c.LocalAddr(), len(body)), "\n", "\r\n")+body)
	inv := callee.expectRequest(sip.INVITE)
	callee.reply(s.addrOf("udp"), inv, 200, "b1")
	callee.expectRequest(sip.ACK)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := readMessage(c.r)
		if err != nil {
			t.Fatalf("waiting for the 200: %v", err)
		}
		if res, ok := m.(*sip.Response); ok && res.StatusCode == 200 {
			break
		}
	}
	c.Close() // the carrier's side goes away; the call stays up
	bye := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := readMessage(r)
		if err != nil {
			bye <- err.Error()
			return
		}
		if req, ok := m.(*sip.Request); ok {
			conn.Write([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()))
			bye <- string(req.Method) + " " + req.CallID().Value()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the SBC notices the close
	callee.send(s.addrOf("udp"), fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: %s;tag=b1\nTo: %s\nCall-ID: %s\nCSeq: 1 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		inv.Contact().Address.String(), callee.addr, newID(), inv.To().Value(), inv.From().Value(), inv.CallID().Value()))
	callee.expectResponse(200)
	select {
	case got := <-bye:
		if got != "BYE closed-"+id {
			t.Fatalf("the carrier got %q; want the call's BYE", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the BYE never reached the carrier")
	}
}

// A TLS trunk that closes its connection with an INVITE pending fails
// the call at once, not after Timer B (32 s).
func TestTLSTrunkClosedDuringInvite(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	ln := tlsTrunkListener(t, "127.0.0.5", ca.Issue(t, "k.test", "127.0.0.5").TLS)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		readMessage(bufio.NewReader(c)) // the INVITE, unanswered
		c.Close()
	}()
	s, _ := tlsServer(t, ca, fmt.Sprintf(`
[[trunk]]
name = "k"
address = %q
transport = "tls"
sources = ["127.0.0.5"]
tls_ca = %q
[[route]]
from = "t"
prefix = "5"
to = "k"
`, ln.Addr(), ca.CertFile))
	a := newPeer(t, "127.0.0.1")
	body := testSDP("127.0.0.1", 4000)
	id := newID()
	a.send(s.addrOf("udp"), fmt.Sprintf("INVITE sip:500@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.1>;tag=a%s\nTo: <sip:500@127.0.0.1>\nCall-ID: gone-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		a.addr, id, id, id, a.addr, len(body), body))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if res, ok := a.recv(time.Until(deadline)).(*sip.Response); ok && res.StatusCode >= 300 {
			return
		}
	}
	t.Fatal("no final answer 5 s after the trunk closed its connection")
}

// One address may hold sip.max_connections_per_source TCP or TLS
// connections; more are closed unanswered, while other addresses connect,
// and a closed connection frees its place.
func TestConnectionLimit(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	s, _ := tlsServer(t, ca, "", func(c *Config) { c.SIP.MaxConnectionsPerSource = 2 })
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	var held []*sipTLSConn
	for i := range 2 {
		c, err := dialTLS(t, "127.0.0.7", s.addrOf("tls"), cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	if _, err := dialTLS(t, "127.0.0.7", s.addrOf("tls"), cfg); err == nil {
		t.Fatal("a third TLS connection from one address was served")
	}
	tcp, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s.addrOf("tcp"))))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tcp.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a third connection (TCP) from one address: %v; want it closed", err)
	}
	if _, err := dialTLS(t, "127.0.0.8", s.addrOf("tls"), cfg); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if n := s.ConnectionsRefused(); n != 2 {
		t.Fatalf("%d connections refused; want 2", n)
	}
	// A trunk's connections are not limited.
	for i := range 3 {
		if _, err := dialTLS(t, "127.0.0.4", s.addrOf("tls"), cfg); err != nil {
			t.Fatalf("trunk o's connection %d: %v", i+1, err)
		}
	}
	held[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := dialTLS(t, "127.0.0.7", s.addrOf("tls"), cfg)
		if err == nil {
			if status, _ := c.options(t); !strings.HasPrefix(status, "SIP/2.0 ") {
				t.Fatalf("OPTIONS on the freed place: %q", status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's place was not freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A connection left silent is closed (after twice max_expires; made
	// short here).
	short, _ := tlsServer(t, ca, "", func(c *Config) { c.SIP.Registrar.MaxExpires = 100 * time.Millisecond })
	quiet, err := dialTLS(t, "127.0.0.9", short.addrOf("tls"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	quiet.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := quiet.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a silent connection: %v; want it closed by the SBC", err)
	}
}

// A call whose Request-URI is a SIPS URI, over TLS, is answered with a
// SIPS Contact (RFC 3261 §12.1.1); over UDP it is refused (416): the
// hop it came over was not secure.
func TestSIPSCall(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	callee := newPeer(t, "127.0.0.2")
	s, _ := tlsServer(t, ca, fmt.Sprintf("[[trunk]]\nname = \"b\"\naddress = %q\nsources = [\"127.0.0.2\"]\n[[route]]\nfrom = \"o\"\nprefix = \"2\"\nto = \"b\"\n", callee.addr))
	c, err := dialTLS(t, "127.0.0.4", s.addrOf("tls"), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	body := testSDP("127.0.0.4", 4000)
	sbcAddr := s.addrOf("tls")
	id := newID()
	fmt.Fprintf(c, "%s", strings.ReplaceAll(fmt.Sprintf("INVITE sips:200@%s SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%s\nFrom: <sips:a@127.0.0.4>;tag=a%s\nTo: <sips:200@%s>\nCall-ID: sips-%s\nCSeq: 1 INVITE\nContact: <sips:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		sbcAddr, c.LocalAddr(), id, id, sbcAddr, id, c.LocalAddr(), len(body)), "\n", "\r\n")+body)
	inv := callee.expectRequest(sip.INVITE)
	if inv.Recipient.Scheme != "sip" {
		t.Errorf("the UDP callee's Request-URI %s; want a SIP URI", inv.Recipient.String())
	}
	callee.reply(s.addrOf("udp"), inv, 200, "b1")
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := readMessage(c.r)
		if err != nil {
			t.Fatalf("waiting for the 200: %v", err)
		}
		if res, ok := m.(*sip.Response); ok && res.StatusCode == 200 {
			if ct := res.Contact(); ct == nil || ct.Address.Scheme != "sips" || ct.Address.Port != s.ports["tls"] {
				t.Fatalf("200's Contact %v; want a SIPS URI of the TLS port", ct)
			}
			break
		}
	}
	a := newPeer(t, "127.0.0.1")
	a.send(s.addrOf("udp"), fmt.Sprintf("INVITE sips:200@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:a@127.0.0.1>;tag=u%s\nTo: <sips:200@127.0.0.1>\nCall-ID: sips-udp-%s\nCSeq: 1 INVITE\nContact: <sip:a@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
		a.addr, id, id, id, a.addr, len(body), body))
	a.expectResponse(416)
	go func() { // the call's BYE at the server's close, answered
		buf := make([]byte, 4096)
		callee.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, _, err := callee.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...)); err == nil {
				if req, ok := m.(*sip.Request); ok && req.Method == sip.BYE {
					callee.conn.WriteTo([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s.addrOf("udp"))))
					return
				}
			}
		}
	}()
}

// A call a TLS carrier made, taken over by a restarted daemon: the
// carrier's connection died with the old one, so the call's BYE goes over
// a new connection to the trunk's address; the dialog stays a SIPS one.
func TestTLSCallTakenOver(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	ln := tlsTrunkListener(t, "127.0.0.3", ca.Issue(t, "carrier.test", "127.0.0.3").TLS)
	got := make(chan *sip.Request, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if m, err := readMessage(bufio.NewReader(conn)); err == nil {
			if req, ok := m.(*sip.Request); ok {
				conn.Write([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()))
				got <- req
			}
		}
	}()
	dir := t.TempDir()
	a, b := newPeer(t, "127.0.0.3"), newPeer(t, "127.0.0.2")
	rec := testRecord(a, b)
	rec.From = "m"
	rec.A.Transport, rec.A.Target, rec.A.SIPS = "tls", "sips:a@127.0.0.3:40001", true
	data, _ := json.Marshal(rec)
	os.WriteFile(filepath.Join(dir, rec.ID+".json"), data, 0o600)
	s, _ := tlsServer(t, ca, fmt.Sprintf("[calls]\nstate_dir = %q\n[[trunk]]\nname = \"b\"\naddress = %q\nsources = [\"127.0.0.2\"]\n", dir, b.addr),
		func(c *Config) {
			for i := range c.Trunks {
				if c.Trunks[i].Name == "m" {
					c.Trunks[i].Address = ln.Addr().String()
				}
			}
		})
	if adopted, ended, err := s.Adopt(); adopted != 1 || ended != 0 || err != nil {
		t.Fatalf("Adopt = %d, %d, %v; want the call taken over", adopted, ended, err)
	}
	b.send(s.addrOf("udp"), fmt.Sprintf("BYE sip:a@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\nFrom: <sip:200@127.0.0.2>;tag=b1\nTo: <sip:a@127.0.0.1>;tag=s2\nCall-ID: b-1\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		s.addrOf("udp"), b.addr, newID()))
	b.expectResponse(200)
	select {
	case bye := <-got:
		if bye.Method != sip.BYE || bye.CallID().Value() != "a-1" || bye.Recipient.Scheme != "sips" {
			t.Fatalf("the carrier got %s %s for %s; want the call's BYE to its SIPS Contact", bye.Method, bye.Recipient.String(), bye.CallID().Value())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the BYE never reached the carrier")
	}
}

// readMessage reads one SIP message from a stream.
func readMessage(r *bufio.Reader) (sip.Message, error) {
	var head strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		head.WriteString(line)
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			if head.Len() <= 2 {
				head.Reset() // a keepalive CRLF
				continue
			}
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return sip.ParseMessage(append([]byte(head.String()), body...))
}

func TestIsSIPS(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want bool
	}{
		{"INVITE sips:200@sbc SIP/2.0\nContact: <sip:a@x>\n", true},
		{"INVITE sip:200@sbc SIP/2.0\nContact: <sips:a@x>\n", true},
		{"INVITE sip:200@sbc SIP/2.0\nRecord-Route: <sips:p1;lr>, <sip:p2;lr>\nContact: <sip:a@x>\n", true},
		{"INVITE sip:200@sbc SIP/2.0\nRecord-Route: <sip:p1;lr>\nContact: <sips:a@x>\n", false}, // the top Record-Route decides
		{"INVITE sip:200@sbc SIP/2.0\nContact: <sip:a@x>\n", false},
	} {
		m, err := sip.ParseMessage([]byte(strings.ReplaceAll(tt.msg+"Via: SIP/2.0/TLS x;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>\nCall-ID: 1\nCSeq: 1 INVITE\nContent-Length: 0\n\n", "\n", "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		req := m.(*sip.Request)
		if got := isSIPS(req, recordRoutes(req.GetHeaders("Record-Route"))); got != tt.want {
			t.Errorf("%q: %v; want %v", strings.SplitN(tt.msg, "\n", 3)[:2], got, tt.want)
		}
	}
}

// tlsTrunkListener is a TLS trunk's listener at ip, presenting cert;
// closed when the test ends.
func tlsTrunkListener(t *testing.T, ip string, cert tls.Certificate) net.Listener {
	t.Helper()
	ln, err := tls.Listen("tcp", ip+":0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
