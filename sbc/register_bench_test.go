package sbc

import (
	"crypto/tls"
	"testing"
	"time"

	"sbc/sbc/sbctest/testpki"
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

