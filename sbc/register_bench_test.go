package sbc

import (
	"testing"
	"time"
)

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
