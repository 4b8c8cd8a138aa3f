package sbc

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"sbc/sbc/sbctest/testpki"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkTLSHandshake measures TLS handshakes per second on the SIP TLS
// listener (ECDSA P-256 certificate, TLS 1.3, X25519), client and server
// on one machine: full handshakes, and resumed ones (session tickets).
func BenchmarkTLSHandshake(b *testing.B) {
	ca := testpki.NewCA(b, "bench CA")
	s, _ := tlsServer(b, ca, "")
	addr := s.addrOf("tls")
	for _, mode := range []struct {
		name   string
		resume bool
	}{{"full", false}, {"resumed", true}} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
			if mode.resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				warm(b, addr, cfg)
			}
			resumed := 0
			var spent time.Duration // in handshakes, not in waiting for tickets
			for b.Loop() {
				t0 := time.Now()
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				spent += time.Since(t0)
				if c.ConnectionState().DidResume {
					resumed++
				}
				if mode.resume {
					ticket(c)
				}
				c.Close()
			}
			if mode.resume && resumed < b.N*9/10 {
				b.Fatalf("%d of %d handshakes resumed", resumed, b.N)
			}
			b.ReportMetric(float64(b.N)/spent.Seconds(), "handshakes/s")
		})
	}
}

// ticket reads what the server sent after the handshake: TLS 1.3 session
// tickets come then, and resumption needs them.
func ticket(c *tls.Conn) {
	c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
	c.Read(make([]byte, 1))
}

func warm(b *testing.B, addr string, cfg *tls.Config) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ticket(c)
	c.Close()
}

// BenchmarkRegisterDigest measures digest-authenticated REGISTERs per
// second over UDP, each the two round trips a device makes (REGISTER,
// 401, REGISTER with credentials, 200), the binding stored in SQLite.
func BenchmarkRegisterDigest(b *testing.B) {
	s, _ := registrarServer(b, "")
	sbcAddr := s.addrOf("udp")
	d := newPeer(b, "127.0.0.45")
	start := time.Now()
	cseq := 0
	for b.Loop() {
		cseq += 2
		c := register(d, sbcAddr, "alice", "", cseq, 120, nil)
		if res := register(d, sbcAddr, "alice", "Str0ng-Passw0rd!", cseq+1, 120, c); res.StatusCode != 200 {
			b.Fatalf("register: %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registers/s")
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

// BenchmarkTLSCalls measures calls per second set up and torn down over
// one TLS connection (a TLS-only trunk) to a UDP callee: INVITE, 200,
// ACK, BYE, 200 on each side, media anchored; load client, SBC and callee
// on the same two cores.
func BenchmarkTLSCalls(b *testing.B) {
	ca := testpki.NewCA(b, "bench CA")
	callee := newPeer(b, "127.0.0.2")
	s, _ := tlsServer(b, ca, fmt.Sprintf("[[trunk]]\nname = \"b\"\naddress = %q\nsources = [\"127.0.0.2\"]\n[[route]]\nfrom = \"o\"\nprefix = \"2\"\nto = \"b\"\n", callee.addr))
	udp := s.addrOf("udp")
	go func() { // the callee answers every call and every BYE
		buf := make([]byte, 8192)
		for {
			n, _, err := callee.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			req, ok := m.(*sip.Request)
			if err != nil || !ok {
				continue
			}
			switch req.Method {
			case sip.INVITE:
				callee.reply(udp, req, 200, "b"+newID())
			case sip.BYE:
				callee.reply(udp, req, 200, "")
			}
		}
	}()
	c, err := dialTLS(b, "127.0.0.4", s.addrOf("tls"), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	sbcAddr := s.addrOf("tls")
	body := testSDP("127.0.0.4", 4000)
	send := func(msg string) { // headers with \n, a body with CRLF already
		head, body, _ := strings.Cut(msg, "\n\n")
		if _, err := c.Write([]byte(strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body)); err != nil {
			b.Fatal(err)
		}
	}
	final := func(method sip.RequestMethod) *sip.Response {
		for {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := readMessage(c.r)
			if err != nil {
				b.Fatalf("reading the answer to %s: %v", method, err)
			}
			if res, ok := m.(*sip.Response); ok && res.StatusCode >= 200 && res.CSeq().MethodName == method {
				return res
			}
		}
	}
	start := time.Now()
	for b.Loop() {
		id := newID()
		head := fmt.Sprintf("Via: SIP/2.0/TLS %s;branch=z9hG4bK%%s\nFrom: <sip:a@127.0.0.4>;tag=a%s\nTo: <sip:200@%s>%%s\nCall-ID: tls-%s\n", c.LocalAddr(), id, sbcAddr, id)
		send(fmt.Sprintf("INVITE sip:200@%s;transport=tls SIP/2.0\n"+head+"CSeq: 1 INVITE\nContact: <sip:a@%s;transport=tls>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
			sbcAddr, newID(), "", c.LocalAddr(), len(body)) + body)
		res := final(sip.INVITE)
		if res.StatusCode != 200 {
			b.Fatalf("INVITE: %d", res.StatusCode)
		}
		tag, _ := res.To().Params.Get("tag")
		target := res.Contact().Address.String()
		send(fmt.Sprintf("ACK %s SIP/2.0\n"+head+"CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", target, newID(), ";tag="+tag))
		send(fmt.Sprintf("BYE %s SIP/2.0\n"+head+"CSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", target, newID(), ";tag="+tag))
		if res := final(sip.BYE); res.StatusCode != 200 {
			b.Fatalf("BYE: %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
