//go:build linux

package main

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/nftables"
)

// TestE2ESIPGuard: on loopback the kernel fast path is off, and the
// daemon puts its SIP rate limit in nftables instead: a source that is no
// trunk flooding the SIP port loses all but its burst and the rate's
// share, counted in the "stopped" line, and the table goes with the
// daemon.
func TestE2ESIPGuard(t *testing.T) {
	requireRoot(t)
	e := newE2EEnv(t, buildSBC(t), nil, false)
	on := e.sbc.find(func(l logLine) bool {
		return l.msg() == "SIP rate limit in nftables: sources that are no trunk are limited per address"
	})
	if len(on) != 1 {
		t.Fatalf("want one line saying the SIP rate limit is in nftables; got %v", on)
	}
	table := on[0].str("table")
	flood, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.99")})
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	sip := net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.cfg.IP, uint16(e.cfg.SIPPort)))
	const sent = 3000
	for range sent {
		flood.WriteToUDP([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n"), sip)
	}
	st := e.sbc.stop(t)
	dropped, _ := st.num("sip_guard_dropped")
	t.Logf("%v of %d flood packets dropped by nftables", dropped, sent)
	if dropped < sent-1000 { // the burst (400) and the rate's share pass
		t.Errorf("sip_guard_dropped %v of %d; want all but the burst", dropped, sent)
	}
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if "inet "+tb.Name == table {
			t.Errorf("table %s left after the daemon stopped", table)
		}
	}
}
