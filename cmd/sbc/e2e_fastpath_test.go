//go:build linux

package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/netlab"
)

// TestE2EFastPathPinholes runs the daemon in the SBC namespace of a netlab,
// with the kernel fast path attached (XDP) to both its veths, a caller sipp
// in the carrier's namespace and a callee sipp in the customer's. Media
// ports of no call are closed in the kernel: a datagram to one is dropped
// silently (no ICMP port unreachable comes back) and counted; a call's
// ports open for the call (its RTP crosses both ways) and close after it.
func TestE2EFastPathPinholes(t *testing.T) {
	lab, cfg, d := startLabSBC(t)
	sbcAddr := cfg.IP
	carrier, customer := lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4

	// Before any call: a media port is closed, silently.
	probe := func(port int) {
		t.Helper()
		if err := silentDrop(lab.Carrier, netip.AddrPortFrom(sbcAddr, uint16(port))); err != nil {
			t.Errorf("media port %d: %v", port, err)
		}
	}
	probe(cfg.PortMin)
	probe(cfg.PortMin + 2)

	// A call with RTP both ways: the caller plays 50 packets, the callee
	// echoes them. They cross only if the call's pinholes opened.
	moved := func(scenario string) string { return labScenario(t, scenario, sbcAddr, carrier, customer) }
	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_basic.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 25 * time.Second, extra: []string{"-rtp_echo"}, netns: lab.Customer})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_media.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 20 * time.Second, remote: netip.AddrPortFrom(sbcAddr, 5060).String(), netns: lab.Carrier})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := d.callsEnded(t, 1)[0]
	ab, _ := end.num("a_to_b_rtp_packets")
	ba, _ := end.num("b_to_a_rtp_packets")
	if ab < mediaPackets*9/10 || ba < ab*9/10 {
		t.Errorf("RTP relayed %v caller->callee and %v back; want about %d each way (pinholes open during the call)", ab, ba, mediaPackets)
	}
	// Once both peers had latched, the kernel relayed the rest itself: the
	// first packets (up to 100 ms of them) took the userspace path. The
	// echoes prove the kernel's packets reached the callee whole (its
	// stack checks their checksums) and the callee's came back.
	kab, _ := end.num("a_to_b_kernel_packets")
	kba, _ := end.num("b_to_a_kernel_packets")
	t.Logf("RTP relayed by the kernel: %v of %v caller->callee, %v of %v back", kab, ab, kba, ba)
	if kab < mediaPackets/2 || kba < mediaPackets/2 {
		t.Errorf("the kernel relayed %v caller->callee and %v back; want most of the %d each way", kab, kba, mediaPackets)
	}

	// After the call its ports are closed again.
	var callPorts []int
	for _, r := range []*sippRun{uac, uas} {
		callPorts = append(callPorts, r.peerMediaPorts(t)...)
	}
	if len(callPorts) == 0 {
		t.Fatal("no SBC media port in the SDP the peers got")
	}
	for _, p := range callPorts {
		probe(p)
	}

	st := d.stop(t)
	drops, _ := st.num("fastpath_closed_port_drops")
	if want := 2 + len(callPorts); int(drops) < want {
		t.Errorf("fastpath_closed_port_drops %v; want at least the %d probes", drops, want)
	}
}

// startLabSBC starts the daemon in a netlab's SBC namespace with the fast
// path on both veths (XDP), trunk "carrier" at the carrier's 198.51.100.2:5060
// and trunk "customer" at the customer's 203.0.113.2:5080.
func startLabSBC(t *testing.T) (*netlab.Lab, sbctest.DaemonConfig, *sbcDaemon) {
	t.Helper()
	requireRoot(t)
	lab := netlab.New(t)
	cfg := labConfig(lab)
	return lab, cfg, startLabDaemon(t, lab, cfg)
}

// labConfig is the config of startLabSBC.
func labConfig(lab *netlab.Lab) sbctest.DaemonConfig {
	return sbctest.DaemonConfig{
		LogLevel: "debug", UserAgent: "sbc-e2e-fastpath",
		IP: lab.CarrierLink.SBC.IPv4, SIPPort: 5060, TCP: true, // the customer reaches it through its default route
		Caller:  sbctest.Trunk{Name: "carrier", Addr: netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 5060)},
		Callee:  sbctest.Trunk{Name: "customer", Addr: netip.AddrPortFrom(lab.CustomerLink.Leaf.IPv4, 5080)},
		PortMin: 30000, PortMax: 30199,
		FastPath: "xdp", Interfaces: []string{lab.CarrierLink.SBC.Name, lab.CustomerLink.SBC.Name},
		RingTimeout: 10 * time.Second, DrainTimeout: 3 * time.Second, MediaTimeout: 30 * time.Second,
		MaxDuration: 60 * time.Second, T1: 500 * time.Millisecond,
	}
}

// startLabDaemon starts the daemon of startLabSBC with cfg.
func startLabDaemon(t *testing.T, lab *netlab.Lab, cfg sbctest.DaemonConfig) *sbcDaemon {
	t.Helper()
	d, err := startSBCIn(t, buildSBC(t), cfg, false, lab.SBC)
	if err != nil {
		t.Fatal(err)
	}
	on := d.find(func(l logLine) bool { return strings.HasPrefix(l.msg(), "kernel fast path on") })
	if len(on) != 1 || on[0].str("interfaces") != "to-carrier (xdp), to-customer (xdp)" {
		t.Fatalf("want one \"kernel fast path on\" line naming both veths in XDP mode; got %v", on)
	}
	return d
}

// TestE2EFastPathSIPFlood floods the SIP port from a source that is no
// trunk while the carrier's sipp places a call: the flood dies in the
// kernel past the source's rate (sip.rate_limit, 200/s after a burst of
// 400), and the call completes.
// Bans are off here: TestE2EFastPathBan has them.
func TestE2EFastPathSIPFlood(t *testing.T) {
	requireRoot(t)
	lab := netlab.New(t)
	cfg := labConfig(lab)
	cfg.BanThreshold = -1
	d := startLabDaemon(t, lab, cfg)
	carrier, customer := lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4
	attacker := addAttacker(t, lab)
	flood, err := lab.Carrier.ListenUDP(netip.AddrPortFrom(attacker, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()

	const sent = 20000
	stop := make(chan struct{})
	flooded := make(chan error, 1)
	go func() {
		msg := []byte("OPTIONS sip:flood@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.66:5060;branch=z9hG4bKflood\r\n" +
			"From: <sip:a@198.51.100.66>;tag=1\r\nTo: <sip:b@198.51.100.1>\r\nCall-ID: flood\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort)))
		for i := range sent {
			if _, err := flood.WriteToUDP(msg, dst); err != nil {
				flooded <- err
				return
			}
			if i%500 == 499 { // about 20,000 packets/s: the flood outlasts the call set-up
				select {
				case <-stop:
				case <-time.After(25 * time.Millisecond):
				}
			}
		}
		flooded <- nil
	}()

	moved := func(scenario string) string { return labScenario(t, scenario, cfg.IP, carrier, customer) }
	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_basic.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 25 * time.Second, netns: lab.Customer})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_basic.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 20 * time.Second, pause: 200 * time.Millisecond,
		remote: netip.AddrPortFrom(cfg.IP, 5060).String(), netns: lab.Carrier})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	close(stop)
	if err := <-flooded; err != nil {
		t.Fatalf("flood: %v", err)
	}
	if end := d.callsEnded(t, 1)[0]; end.str("ended_by") != "caller" || end.str("from_trunk") != "carrier" {
		t.Errorf("call ended %v; want the carrier's call, ended by the caller", end)
	} else if status, _ := end.num("status"); status != 200 {
		t.Errorf("call ended with status %v; want 200", status)
	}

	st := d.stop(t)
	limited, _ := st.num("fastpath_rate_limited")
	t.Logf("flood: %v of %d packets dropped in the kernel by the rate limit", limited, sent)
	// The burst and the rate over about a second pass; the rest must not.
	if limited < sent-2000 {
		t.Errorf("fastpath_rate_limited %v of %d flood packets; want all but the burst and the rate's share", limited, sent)
	}
}

// addAttacker gives the carrier's namespace a second address, a source
// that is no trunk.
func addAttacker(t *testing.T, lab *netlab.Lab) netip.Addr {
	t.Helper()
	attacker := netip.MustParseAddr("198.51.100.66")
	if out, err := lab.Carrier.Command("ip", "addr", "add", attacker.String()+"/24", "dev", lab.CarrierLink.Leaf.Name).CombinedOutput(); err != nil {
		t.Fatalf("add the attacker's address: %v\n%s", err, out)
	}
	return attacker
}

// TestE2EFastPathBan: sipp calling from a source that is no trunk is
// banned after sip.ban_threshold failures, and the ban goes into the
// kernel: what it sends next to the SIP port is dropped there (counted as
// banned), while the carrier's call completes.
func TestE2EFastPathBan(t *testing.T) {
	requireRoot(t)
	lab := netlab.New(t)
	cfg := labConfig(lab)
	cfg.BanThreshold = 5
	d := startLabDaemon(t, lab, cfg)
	carrier, customer := lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4
	attacker := addAttacker(t, lab)
	moved := func(scenario string) string { return labScenario(t, scenario, cfg.IP, carrier, customer) }
	sbcAddr := netip.AddrPortFrom(cfg.IP, 5060).String()
	scan := startSipp(t, sippOpts{name: "scanner", scenario: moved("uac_basic.xml"), ip: attacker.String(), port: 5070,
		mediaPort: 6100, calls: 20, rate: 50, timeout: 15 * time.Second, remote: sbcAddr, netns: lab.Carrier,
		extra: []string{"-recv_timeout", "1000"}})
	bans := d.waitN(t, 1, 10*time.Second, "source banned", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "source banned")
	})
	if got := bans[0].str("source"); got != attacker.String()+"/32" || bans[0]["kernel_error"] != nil {
		t.Errorf("ban %v; want %v/32 in the kernel", bans[0], attacker)
	}
	scan.wait(t)

	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_basic.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 25 * time.Second, netns: lab.Customer})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_basic.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 20 * time.Second, remote: sbcAddr, netns: lab.Carrier})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)

	st := d.stop(t)
	banned, _ := st.num("fastpath_banned")
	bansN, _ := st.num("sip_bans")
	t.Logf("%v of the scanner's packets dropped in the kernel as banned", banned)
	// 20 INVITEs at 50/s: the 5 before the ban reached the daemon; the
	// other 15 (and their retransmissions) died in the kernel.
	if banned < 15 || bansN != 1 {
		t.Errorf("fastpath_banned %v, sip_bans %v; want at least the 15 INVITEs after the ban, and one ban", banned, bansN)
	}
}

// labScenario is a copy of a loopback scenario of testdata/sipp with its
// addresses, plain and in regular expressions, moved to the lab's: the
// topology-hiding checks hold there too.
func labScenario(t *testing.T, scenario string, sbc, caller, callee netip.Addr) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sippDir(t), scenario))
	if err != nil {
		t.Fatal(err)
	}
	re := func(a netip.Addr) string { return strings.ReplaceAll(a.String(), ".", `\.`) }
	text := strings.NewReplacer( // longest first: 127.0.0.1 is a prefix of the others
		`127\.0\.0\.10`, re(caller), `127\.0\.0\.20`, re(callee), `127\.0\.0\.1`, re(sbc),
		callerIP, caller.String(), calleeIP, callee.String(), sbcIP, sbc.String(),
	).Replace(string(b))
	path := filepath.Join(t.TempDir(), scenario)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// silentDrop sends a datagram from ns to dst on a connected socket and
// reports an error unless it vanishes: an ICMP port unreachable coming back
// (ECONNREFUSED) means the kernel's stack saw it, no filter in front.
func silentDrop(ns *netlab.Namespace, dst netip.AddrPort) error {
	var conn *net.UDPConn
	err := ns.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	for range 3 {
		if _, err := conn.Write([]byte("probe")); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return errors.New("ICMP port unreachable came back: the datagram reached the stack")
			}
			return err
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 64)
		if _, err := conn.Read(buf); err == nil {
			return errors.New("got an answer")
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			return errors.New("ICMP port unreachable came back: the datagram reached the stack")
		}
	}
	return nil
}

// TestE2EFastPathIPv6: a call over IPv6 across the netlab, sipp on both
// sides: signalling and media on IPv6 (c=IN IP6), and once both peers
// have latched the kernel relays the RTP itself; the callee's echoes prove
// the forwarded packets arrived whole.
func TestE2EFastPathIPv6(t *testing.T) {
	requireRoot(t)
	lab := netlab.New(t)
	sbcAddr := lab.CarrierLink.SBC.IPv6
	carrier, customer := lab.CarrierLink.Leaf.IPv6, lab.CustomerLink.Leaf.IPv6
	cfg := labConfig(lab)
	cfg.IP = sbcAddr
	cfg.Caller.Addr = netip.AddrPortFrom(carrier, 5060)
	cfg.Callee.Addr = netip.AddrPortFrom(customer, 5080)
	d := startLabDaemon(t, lab, cfg)

	moved := func(scenario string) string {
		t.Helper()
		path := labScenario(t, scenario, sbcAddr, carrier, customer)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// In SIP (Via, Contact) an IPv6 address is bracketed; in SDP not.
		host := sbcAddr.String()
		text := strings.NewReplacer("IN IP4 ", "IN IP6 ",
			"(UDP|TCP) "+host, `(UDP|TCP) \[`+host+`\]`, "@)?"+host, `@)?\[`+host+`\]`).Replace(string(b))
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_basic.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 25 * time.Second, extra: []string{"-rtp_echo"}, netns: lab.Customer})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_media.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 20 * time.Second, remote: netip.AddrPortFrom(sbcAddr, 5060).String(), netns: lab.Carrier})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := d.callsEnded(t, 1)[0]
	ab, _ := end.num("a_to_b_rtp_packets")
	ba, _ := end.num("b_to_a_rtp_packets")
	kab, _ := end.num("a_to_b_kernel_packets")
	kba, _ := end.num("b_to_a_kernel_packets")
	t.Logf("RTP over IPv6 relayed by the kernel: %v of %v caller->callee, %v of %v back", kab, ab, kba, ba)
	if ab < mediaPackets*9/10 || ba < ab*9/10 {
		t.Errorf("RTP relayed %v caller->callee and %v back; want about %d each way", ab, ba, mediaPackets)
	}
	if kab < mediaPackets/2 || kba < mediaPackets/2 {
		t.Errorf("the kernel relayed %v caller->callee and %v back; want most of the %d each way", kab, kba, mediaPackets)
	}
	d.stop(t)
}

// TestE2EFastPathEarlyMedia: the pinholes open at a 183 with SDP, so the
// callee's audio before the answer crosses the kernel's filter.
func TestE2EFastPathEarlyMedia(t *testing.T) {
	lab, cfg, d := startLabSBC(t)
	carrier, customer := lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4
	moved := func(scenario string) string { return labScenario(t, scenario, cfg.IP, carrier, customer) }
	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_early_media.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 25 * time.Second, netns: lab.Customer})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_early_media.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 20 * time.Second, remote: netip.AddrPortFrom(cfg.IP, 5060).String(), netns: lab.Carrier})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := d.callsEnded(t, 1)[0]
	if n, _ := end.num("b_to_a_rtp_packets"); n < 45 || n > 50 {
		t.Errorf("b_to_a_rtp_packets = %v; want the callee's 50 early-media packets (45 at least)", n)
	}
	d.stop(t)
}
