//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"sbc/sbc/sbctest"
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

// TestE2EBanScanner: sipp calling from a source that is no trunk (as a
// toll-fraud scanner does) gets 403s until sip.ban_threshold of them, then
// the source is banned: in nftables here (loopback: no fast path), so its
// packets are dropped unanswered, while a trunk's call goes through. The
// ban is lifted after sip.ban_time.
func TestE2EBanScanner(t *testing.T) {
	requireRoot(t)
	const scanner = "127.0.0.99"
	e := newE2EEnv(t, buildSBC(t), func(c *sbctest.DaemonConfig) {
		c.BanThreshold, c.BanTime = 10, 4*time.Second
	}, false)
	scan := e.uac(t, sippOpts{name: "scanner", ip: scanner, scenario: "uac_basic.xml", calls: 30, rate: 50,
		timeout: 15 * time.Second, extra: []string{"-recv_timeout", "2000"}})
	bans := e.sbc.waitN(t, 1, 10*time.Second, "source banned", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "source banned")
	})
	if got := bans[0].str("source"); got != scanner+"/32" {
		t.Errorf("banned %q, want %s/32", got, scanner)
	}
	if n, _ := bans[0].num("failures"); n != 10 {
		t.Errorf("banned after %v failures, want 10", n)
	}
	scan.wait(t)
	stats := scan.stats(t)
	if got := scan.statInt(t, stats, "SuccessfulCall(C)"); got != 0 {
		t.Errorf("the scanner completed %d calls", got)
	}
	// The requests before the one that brought the ban were answered, no
	// other.
	if answered := len(received403.FindAllString(scan.messages(t), -1)); answered != 9 {
		t.Errorf("the scanner got %d 403s; want the 9 before the ban", answered)
	}
	// Banned: no answer, in the kernel (the nftables set holds it).
	if res := optionsFrom(t, scanner, e.cfg); res != "" {
		t.Errorf("the banned scanner got an answer: %q", res)
	}
	if !nftBanned(t, e.sbc, netip.MustParseAddr(scanner)) {
		t.Error("the scanner is not in the nftables ban set")
	}
	// A trunk's call goes through meanwhile.
	e.callPair(t, "uas_basic.xml", "uac_basic.xml")

	e.sbc.waitN(t, 1, 8*time.Second, "ban lifted", func(l logLine) bool { return l.msg() == "ban lifted" })
	if res := optionsFrom(t, scanner, e.cfg); !strings.HasPrefix(res, "SIP/2.0 403") {
		t.Errorf("after the ban, the scanner got %q; want a 403 again", res)
	}
	st := e.sbc.stop(t)
	if n, _ := st.num("sip_bans"); n != 1 {
		t.Errorf("stopped line: sip_bans %v, want 1", n)
	}
}

// received403 is a 403 sipp received, in its messages file.
var received403 = regexp.MustCompile(`received \[\d+\] bytes :\n\nSIP/2.0 403 `)

// optionsFrom sends an OPTIONS from ip to the daemon and returns the first
// line of the answer, "" when none comes within a second.
func optionsFrom(t *testing.T, ip string, cfg sbctest.DaemonConfig) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la := c.LocalAddr().String()
	msg := fmt.Sprintf("OPTIONS sip:x@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d\r\nFrom: <sip:s@%s>;tag=1\r\nTo: <sip:x@%s>\r\n"+
		"Call-ID: ban%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", sbcIP, la, rand.Int(), ip, sbcIP, rand.Int())
	if _, err := c.WriteToUDP([]byte(msg), net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort)))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line
}

// nftBanned tells whether ip is in the daemon's nftables ban set.
func nftBanned(t *testing.T, d *sbcDaemon, ip netip.Addr) bool {
	t.Helper()
	on := d.find(func(l logLine) bool { return strings.HasPrefix(l.msg(), "SIP rate limit in nftables") })
	if len(on) != 1 {
		t.Fatalf("no nftables guard line")
	}
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: strings.TrimPrefix(on[0].str("table"), "inet ")}
	set, err := conn.GetSetByName(table, "banned4")
	if err != nil {
		t.Fatalf("ban set: %v", err)
	}
	elems, err := conn.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok && a == ip {
			return true
		}
	}
	return false
}
