package sbc

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sbc/sbc/sbctest/testpki"

	"github.com/emiago/sipgo/sip"
)

// SIP over TLS under load: handshakes, and calls from the TLS-only trunk
// "o" (127.0.0.4) to a UDP callee. sipp cannot do TLS here, so the load
// client is this file's. Client, SBC and callee share the machine's cores.

// BenchmarkTLSHandshake measures TLS handshakes per second on the SIP TLS
// listener (ECDSA P-256 certificate, TLS 1.3, X25519MLKEM768, Go's
// default key exchange: neither side sets curves), client and server on
// one machine: full handshakes, and resumed ones (session tickets).
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

// BenchmarkTLSCalls measures calls per second set up and torn down over
// one TLS connection (a TLS-only trunk) to a UDP callee: INVITE, 200,
// ACK, BYE, 200 on each side, media anchored. One call at a time: this is
// the latency of a call; BenchmarkTLSCallLoad is the load.
func BenchmarkTLSCalls(b *testing.B) {
	ca := testpki.NewCA(b, "bench CA")
	s := tlsCallServer(b, ca)
	c, err := dialTLS(b, "127.0.0.4", s.addrOf("tls"), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	caller := newTLSCaller(c, s.addrOf("tls"))
	start := time.Now()
	for b.Loop() {
		if err := caller.call(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// loadConns is how many calls the load client keeps in flight.
const loadConns = 16

// BenchmarkTLSCallLoad measures calls per second over TLS with loadConns
// calls in flight, each INVITE, 200, ACK, BYE, 200 with media anchored:
//   - conns=N/persistent: N connections opened up front, each carrying
//     one call after another (a trunk's long-lived connections);
//   - conn-per-call/full and /resumed: N workers, each call on a new
//     connection closed after the BYE's 200 (phones or a trunk
//     reconnecting), without session resumption and with it (one client
//     session cache the workers share, warmed: to the server a ticket is
//     a ticket, whichever client holds it).
//
// Each run (each b.N) has a server of its own, its own calls and ticket
// keys. sipgo still keeps each call's INVITE transactions, and over TLS
// the connection, 32 s after the 200 (RFC 6026 Timers L and M), server
// closed or not: a sub-benchmark right after another starts with that
// one's calls live (some 17 KB each, 50-100 MB) and runs slower. Compare
// them run alone (-bench 'TLSCallLoad/conn-per-call/resumed'). Any
// answer but 200, or none within callTimeout, fails the benchmark.
func BenchmarkTLSCallLoad(b *testing.B) {
	ca := testpki.NewCA(b, "bench CA")
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}

	b.Run(fmt.Sprintf("conns=%d/persistent", loadConns), func(b *testing.B) {
		addr := tlsCallServer(b, ca).addrOf("tls")
		callers := make([]*tlsCaller, loadConns)
		for i := range callers {
			c, err := dialTLS(b, "127.0.0.4", addr, cfg)
			if err != nil {
				b.Fatal(err)
			}
			callers[i] = newTLSCaller(c, addr)
		}
		runLoad(b, loadConns, func(w int) error { return callers[w].call() })
	})

	for _, mode := range []struct {
		name   string
		resume bool
	}{{"full", false}, {"resumed", true}} {
		b.Run("conn-per-call/"+mode.name, func(b *testing.B) {
			addr := tlsCallServer(b, ca).addrOf("tls")
			cfg := cfg.Clone()
			if mode.resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				warm(b, addr, cfg)
			}
			var resumed atomic.Int64
			runLoad(b, loadConns, func(int) error {
				c, err := dialFrom("127.0.0.4", addr, cfg)
				if err != nil {
					return err
				}
				defer c.Close()
				if c.ConnectionState().DidResume {
					resumed.Add(1)
				}
				// The ticket comes before the 100 Trying: the cache has
				// one for the next connection by the time this call ends.
				return newTLSCaller(c, addr).call()
			})
			if n := resumed.Load(); mode.resume && n < int64(b.N)*9/10 {
				b.Fatalf("%d of %d handshakes resumed", n, b.N)
			}
		})
	}
}

// runLoad makes b.N calls, call(w) on each of workers goroutines until
// they are made, and reports calls/s; the first error fails b once every
// worker has stopped.
func runLoad(b *testing.B, workers int, call func(w int) error) {
	var (
		next  atomic.Int64
		first atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for first.Load() == nil && next.Add(1) <= int64(b.N) {
				if err := call(w); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := first.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
}

// tlsCallServer starts tlsServer with a UDP callee, trunk "b" at
// 127.0.0.2, that "o" reaches with numbers starting with 2. One goroutine
// answers every INVITE and BYE there with 200; it ends with the test.
func tlsCallServer(b *testing.B, ca *testpki.CA) *Server {
	callee := newPeer(b, "127.0.0.2")
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 8192)
		for {
			n, from, err := callee.conn.ReadFrom(buf)
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
				// The tag follows from the Call-ID: a retransmitted INVITE
				// gets the same dialog, not a second one.
				h := fnv.New64a()
				h.Write([]byte(callID(req)))
				callee.reply(from.String(), req, 200, "b"+strconv.FormatUint(h.Sum64(), 36))
			case sip.BYE:
				callee.reply(from.String(), req, 200, "")
			}
		}
	}()
	// After the server's cleanup: the SBC answers a caller's BYE before
	// it sends its own to the callee, so BYEs are still coming when the
	// last call's 200 is in.
	b.Cleanup(func() {
		callee.conn.Close()
		<-done
	})
	s, _ := tlsServer(b, ca, fmt.Sprintf("[[trunk]]\nname = \"b\"\naddress = %q\nsources = [\"127.0.0.2\"]\n[[route]]\nfrom = \"o\"\nprefix = \"2\"\nto = \"b\"\n", callee.addr),
		func(c *Config) {
			// The test config's media range (41000-41099) holds 25 calls
			// (two RTP/RTCP pairs each), and the SBC answers a BYE before
			// it frees the call's ports: loadConns calls in flight and
			// those ending overrun it. This one holds 500, below the
			// ephemeral ports (none reserved).
			c.Media.PortMin, c.Media.PortMax = 31000, 31999
			// tlsServer's 300 ms is for its tests of the timeout; a
			// loaded machine must not fail a handshake here.
			c.SIP.TLS.HandshakeTimeout = 10 * time.Second
		})
	return s
}

// callTimeout bounds a whole call, INVITE to the BYE's 200.
const callTimeout = 5 * time.Second

// tlsCaller makes calls from the TLS-only trunk "o" over one connection,
// one at a time; it is the connection's only reader.
type tlsCaller struct {
	c    *sipTLSConn
	sbc  string // the SBC's TLS listener, the calls' Request-URI host
	body string // the SDP offer
}

func newTLSCaller(c *sipTLSConn, sbc string) *tlsCaller {
	return &tlsCaller{c: c, sbc: sbc, body: testSDP("127.0.0.4", 4000)}
}

// dialFrom opens a TLS connection from src that the caller closes
// (dialTLS's stay open until the test ends: thousands would pile up).
func dialFrom(src, dst string, cfg *tls.Config) (*sipTLSConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: callTimeout}
	c, err := tls.DialWithDialer(&d, "tcp", dst, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	return &sipTLSConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// call makes one call: INVITE, 200, ACK, BYE, 200.
func (t *tlsCaller) call() error {
	t.c.SetDeadline(time.Now().Add(callTimeout))
	id := newID()
	local := t.c.LocalAddr()
	head := fmt.Sprintf("Via: SIP/2.0/TLS %s;branch=z9hG4bK%%s\nFrom: <sip:a@127.0.0.4>;tag=a%s\nTo: <sip:200@%s>%%s\nCall-ID: tls-%s\n", local, id, t.sbc, id)
	invite := fmt.Sprintf("INVITE sip:200@%s;transport=tls SIP/2.0\n"+head+"CSeq: 1 INVITE\nContact: <sip:a@%s;transport=tls>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		t.sbc, newID(), "", local, len(t.body)) + t.body
	res, err := t.request(invite, sip.INVITE, "tls-"+id)
	if err != nil {
		return err
	}
	if res.Contact() == nil {
		return errors.New("INVITE: a 200 without Contact")
	}
	tag, _ := res.To().Params.Get("tag")
	target := res.Contact().Address.String()
	if err := t.send(fmt.Sprintf("ACK %s SIP/2.0\n"+head+"CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", target, newID(), ";tag="+tag)); err != nil {
		return fmt.Errorf("send ACK: %w", err)
	}
	_, err = t.request(fmt.Sprintf("BYE %s SIP/2.0\n"+head+"CSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", target, newID(), ";tag="+tag), sip.BYE, "tls-"+id)
	return err
}

// request sends msg and returns its 200; any other final answer, or none,
// is an error.
func (t *tlsCaller) request(msg string, method sip.RequestMethod, cid string) (*sip.Response, error) {
	if err := t.send(msg); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	for {
		m, err := readMessage(t.c.r)
		if err != nil {
			return nil, fmt.Errorf("read the answer to %s: %w", method, err)
		}
		// A stale 2xx retransmission of an earlier call is not this one's.
		res, ok := m.(*sip.Response)
		if !ok || res.StatusCode < 200 || res.CSeq() == nil || res.CSeq().MethodName != method || callID(res) != cid {
			continue
		}
		if res.StatusCode != 200 {
			warning := ""
			if w := res.GetHeader("Warning"); w != nil {
				warning = " (" + w.Value() + ")"
			}
			return nil, fmt.Errorf("%s: %d %s%s", method, res.StatusCode, res.Reason, warning)
		}
		return res, nil
	}
}

// send writes msg: headers with \n, a body with CRLF already.
func (t *tlsCaller) send(msg string) error {
	head, body, _ := strings.Cut(msg, "\n\n")
	_, err := t.c.Write([]byte(strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body))
	return err
}
