//go:build linux

package main

// End-to-end tests: the real daemon between real SIP peers (sipp) on
// loopback. The caller sipp plays trunk "a" from 127.0.0.10, the callee sipp
// trunk "b" on 127.0.0.20, the SBC listens on 127.0.0.1; on Linux all of
// 127.0.0.0/8 is local. The scenarios are in testdata/sipp, each commented;
// the sipp side asserts what it sees on the wire (topology hiding, SDP), the
// Go side asserts sipp's verdicts, the daemon's log and, for media, a
// packet capture on lo.
//
//	go test -run TestE2E -v ./cmd/sbc             all of them
//	go test -run TestE2E/media -v ./cmd/sbc       one
//
// They need sipp (Debian: sip-tester) in PATH, and root (CAP_NET_RAW) for
// the media test: sipp plays RTP through a raw socket and the test captures
// lo. -short skips them.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sbc/sbc/sbctest"
)

const (
	sbcIP      = "127.0.0.1"  // the SBC: SIP listeners, Via/Contact, media
	callerIP   = "127.0.0.10" // trunk "a"
	calleeIP   = "127.0.0.20" // trunk "b"
	strangerIP = "127.0.0.99" // no trunk
)

func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("end-to-end tests: sipp is not in PATH (Debian: apt-get install sip-tester)")
	}
	bin := buildSBC(t)
	fastT1 := func(c *sbctest.DaemonConfig) { c.T1 = 50 * time.Millisecond }
	tests := []struct {
		name     string
		run      func(*testing.T, *e2eEnv)
		cfg      func(*sbctest.DaemonConfig) // changes to the default test config
		asNobody bool                        // run the daemon unprivileged
	}{
		{"basic_call", testBasicCall, nil, false},
		{"basic_call_tcp_caller", testBasicCallTCP, nil, false},
		{"media", testMediaSteered, nil, false},
		{"media_unprivileged", testMediaUnprivileged, nil, true},
		{"early_media", testEarlyMedia, nil, false},
		{"cancel", testCancel, nil, false},
		{"busy", testBusy, nil, false},
		{"callee_failures", testCalleeFailures, nil, false},
		{"caller_hold", testCallerHold, nil, false},
		{"callee_hold", testCalleeHold, nil, false},
		{"callee_bye", testCalleeBye, nil, false},
		{"unknown_source", testUnknownSource, nil, false},
		{"options", testOptions, nil, false},
		{"unknown_dialog", testUnknownDialog, nil, false},
		{"max_forwards", testMaxForwards, nil, false},
		{"drain", testDrain, nil, false},
		{"load_100_calls", testLoad, nil, false},
		{"media_timeout", testMediaTimeout, func(c *sbctest.DaemonConfig) { c.MediaTimeout = 2 * time.Second }, false},
		{"max_duration", testMaxDuration, func(c *sbctest.DaemonConfig) { c.MaxDuration = 2 * time.Second }, false},
		{"ring_timeout", testRingTimeout, func(c *sbctest.DaemonConfig) { c.RingTimeout = 2 * time.Second }, false},
		{"no_response", testNoResponse, fastT1, false},
		{"no_ack", testNoAck, fastT1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newE2EEnv(t, bin, tc.cfg, tc.asNobody))
		})
	}
	// The harness itself: a SIP port taken between choosing and binding it
	// is told apart from a daemon that fails, so newE2EEnv can retry.
	t.Run("sip_port_taken", func(t *testing.T) {
		held, err := net.ListenPacket("udp4", net.JoinHostPort(sbcIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		cfg := testDaemonConfig(t)
		cfg.SIPPort = held.LocalAddr().(*net.UDPAddr).Port
		if _, err := startSBC(t, bin, cfg, false); !errors.Is(err, errSIPPortTaken) {
			t.Fatalf("startSBC on a held SIP port: err = %v, want errSIPPortTaken", err)
		}
	})
}

// testDaemonConfig is the default daemon config of these tests, on fresh
// ports.
func testDaemonConfig(t *testing.T) sbctest.DaemonConfig {
	t.Helper()
	trunk := func(name, ip string) sbctest.Trunk {
		return sbctest.Trunk{Name: name, Addr: netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(freeUDPPort(t, ip)))}
	}
	cfg := sbctest.DaemonConfig{
		LogLevel:     "debug",
		UserAgent:    "sbc-e2e",
		IP:           netip.MustParseAddr(sbcIP),
		SIPPort:      freeSIPPort(t, sbcIP),
		TCP:          true,
		Caller:       trunk("a", callerIP),
		Callee:       trunk("b", calleeIP),
		Reverse:      true,
		RingTimeout:  10 * time.Second,
		DrainTimeout: 3 * time.Second,
		MediaTimeout: 30 * time.Second,
		MaxDuration:  60 * time.Second,
		T1:           500 * time.Millisecond,
	}
	return cfg
}

// e2eEnv is one running daemon with its configuration, for one test.
type e2eEnv struct {
	cfg sbctest.DaemonConfig
	sbc *sbcDaemon
}

func newE2EEnv(t *testing.T, bin string, change func(*sbctest.DaemonConfig), asNobody bool) *e2eEnv {
	t.Helper()
	cfg := testDaemonConfig(t)
	if change != nil {
		change(&cfg)
	}
	// 100 pairs below the ephemeral range; random, so that a port a
	// previous test's sockets still hold is unlikely to be reused.
	cfg.PortMin = 20000 + 2*rand.IntN(4900)
	cfg.PortMax = cfg.PortMin + 199
	for try := 1; ; try++ {
		d, err := startSBC(t, bin, cfg, asNobody)
		if err == nil {
			return &e2eEnv{cfg: cfg, sbc: d}
		}
		if try == 3 {
			t.Fatalf("start sbc: %v, %d times", err, try)
		}
		t.Logf("start sbc: %v; again on another port", err)
		cfg.SIPPort = freeSIPPort(t, sbcIP)
	}
}

// uas starts the callee sipp (trunk "b") with scenario.
func (e *e2eEnv) uas(t *testing.T, o sippOpts) *sippRun {
	t.Helper()
	o.name = "uas"
	o.ip, o.port = calleeIP, int(e.cfg.Callee.Addr.Port())
	o.mediaPort = freeMediaPort(t, calleeIP, o.port)
	if o.calls == 0 {
		o.calls = 1
	}
	if o.timeout == 0 {
		o.timeout = 25 * time.Second
	}
	return startSipp(t, o)
}

// uac starts a caller sipp (trunk "a" unless o.ip says otherwise) towards
// the SBC's listener.
func (e *e2eEnv) uac(t *testing.T, o sippOpts) *sippRun {
	t.Helper()
	if o.name == "" {
		o.name = "uac"
	}
	if o.ip == "" {
		o.ip = callerIP
		if o.port == 0 {
			o.port = int(e.cfg.Caller.Addr.Port())
		}
	}
	if o.port == 0 {
		o.port = freeUDPPort(t, o.ip)
	}
	o.mediaPort = freeMediaPort(t, o.ip, o.port)
	o.remote = fmt.Sprintf("%s:%d", sbcIP, e.cfg.SIPPort)
	if o.calls == 0 {
		o.calls = 1
	}
	if o.timeout == 0 {
		o.timeout = 20 * time.Second
	}
	return startSipp(t, o)
}

// callPair runs a caller and a callee scenario for one call and expects
// both to succeed. The callee is given a few seconds after the caller is
// done: its last step is a short timewait.
func (e *e2eEnv) callPair(t *testing.T, uasScenario, uacScenario string, uasExtra ...string) (uas, uac *sippRun) {
	t.Helper()
	uas = e.uas(t, sippOpts{scenario: uasScenario, extra: uasExtra})
	uac = e.uac(t, sippOpts{scenario: uacScenario})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	return uas, uac
}

// checkEnded asserts the common fields of a "call ended" line of a call
// from trunk a to trunk b.
func checkEnded(t *testing.T, l logLine, status int, endedBy string) {
	t.Helper()
	if got, ok := l.num("status"); !ok || int(got) != status {
		t.Errorf("call ended with status %v; want %d: %v", l["status"], status, l)
	}
	if got := l.str("ended_by"); got != endedBy {
		t.Errorf("call ended_by %q; want %q: %v", got, endedBy, l)
	}
	if l.str("from_trunk") != "a" || l.str("to_trunk") != "b" {
		t.Errorf("call from_trunk %q to_trunk %q; want a, b: %v", l.str("from_trunk"), l.str("to_trunk"), l)
	}
	if l["call_id"] == nil {
		t.Errorf("call ended has no call_id: %v", l)
	}
	// sipp's Call-ID is "<n>-<pid>@<its -i address>".
	a, b := l.str("a_call_id"), l.str("b_call_id")
	if !strings.HasSuffix(a, "@"+callerIP) {
		t.Errorf("a_call_id %q is not the caller's Call-ID", a)
	}
	if b == "" || b == a || strings.Contains(b, callerIP) {
		t.Errorf("b_call_id %q must be the SBC's own Call-ID (a_call_id %q)", b, a)
	}
	for _, k := range []string{"duration_s", "a_to_b_rtp_packets", "b_to_a_rtp_packets", "a_to_b_rtcp_packets", "b_to_a_rtcp_packets", "dropped_packets"} {
		if _, ok := l.num(k); !ok {
			t.Errorf("call ended has no numeric %s: %v", k, l)
		}
	}
}

// checkSBCMedia asserts that the SDP each peer got from the SBC offered
// one media port, in the configured range; it returns that port.
func (e *e2eEnv) checkSBCMedia(t *testing.T, r *sippRun) int {
	t.Helper()
	ports := r.peerMediaPorts(t)
	if len(ports) == 0 {
		t.Errorf("sipp %s got no SDP from the SBC", r.opts.name)
		return 0
	}
	for _, p := range ports {
		if p < e.cfg.PortMin || p > e.cfg.PortMax || p%2 != 0 {
			t.Errorf("sipp %s got m=audio %d; want an even port in the SBC's range %d-%d", r.opts.name, p, e.cfg.PortMin, e.cfg.PortMax)
		}
		if p != ports[0] {
			t.Errorf("sipp %s got m=audio ports %v; want the SBC to keep one port for the call", r.opts.name, ports)
		}
	}
	return ports[0]
}

// stop stops the daemon cleanly (see sbcDaemon.stop) and checks that it
// logged exactly calls "call ended" lines in all.
func (e *e2eEnv) stop(t *testing.T, calls int) {
	t.Helper()
	e.sbc.stop(t)
	if ended := e.sbc.find(isCallEnded); len(ended) != calls {
		t.Errorf("sbc logged %d \"call ended\" lines; want %d", len(ended), calls)
		for _, l := range ended {
			t.Logf("  %v", l)
		}
	}
}

// 1. Basic call: INVITE/100/180/200/ACK/BYE, topology hidden both ways
// (asserted by the scenarios), SBC media ports in SDP.
func testBasicCall(t *testing.T, e *e2eEnv) {
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_basic.xml", pause: 500 * time.Millisecond})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)

	end := e.sbc.callsEnded(t, 1)[0]
	checkEnded(t, end, 200, "caller")
	if d, _ := end.num("duration_s"); d < 0.4 || d > 5 {
		t.Errorf("duration_s %v; want about the 0.5 s the caller waited", d)
	}
	pa, pb := e.checkSBCMedia(t, uac), e.checkSBCMedia(t, uas)
	if pa == pb {
		t.Errorf("the SBC offered port %d on both legs; want one port pair per leg", pa)
	}
	e.stop(t, 1)
}

// 1b. The same call with the caller on the TCP listener; the B leg stays
// UDP (trunk b's transport).
func testBasicCallTCP(t *testing.T, e *e2eEnv) {
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_basic.xml", pause: 200 * time.Millisecond, transport: "t1"})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 200, "caller")
	e.stop(t, 1)
}

// 2. Media through the SBC. The caller plays 50 RTP packets at the SBC, the
// callee echoes each back (-rtp_echo). Proven three ways: the capture on lo
// shows every hop goes peer <-> SBC port and nothing goes directly between
// the peers; the echoes reach the caller's media port (so the far side got
// them); the SBC's own counters agree with the capture.
// 2a. Run as root, the daemon steers its media ports to a few sockets.
func testMediaSteered(t *testing.T, e *e2eEnv) {
	requireRoot(t)
	if len(e.sbc.find(func(l logLine) bool { return strings.HasPrefix(l.msg(), "media relay: port range steered") })) != 1 {
		t.Fatal(`no "port range steered" line from the daemon run as root`)
	}
	testMedia(t, e)
}

// 2b. The same unprivileged (user nobody, no capabilities): the daemon
// cannot steer the media ports, says why, and relays with a socket per port.
func testMediaUnprivileged(t *testing.T, e *e2eEnv) {
	requireRoot(t)
	if len(e.sbc.find(func(l logLine) bool { return strings.Contains(l.msg(), "steering unavailable") })) != 1 {
		t.Fatal(`no "steering unavailable" line from the unprivileged daemon`)
	}
	testMedia(t, e)
}

func testMedia(t *testing.T, e *e2eEnv) {
	capt := startCapture(t)
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml", extra: []string{"-rtp_echo"}})
	uac := e.uac(t, sippOpts{scenario: "uac_media.xml"})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := e.sbc.callsEnded(t, 1)[0]
	checkEnded(t, end, 200, "caller")
	time.Sleep(50 * time.Millisecond) // the last packets reach the capture
	flows, err := capt.stop()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}

	sbcAddr := netip.MustParseAddr(sbcIP)
	callerMedia := netip.AddrPortFrom(netip.MustParseAddr(callerIP), uint16(uac.opts.mediaPort))
	calleeMedia := netip.AddrPortFrom(netip.MustParseAddr(calleeIP), uint16(uas.opts.mediaPort))
	sbcRTP := func(ap netip.AddrPort) bool {
		p := int(ap.Port())
		return ap.Addr() == sbcAddr && p >= e.cfg.PortMin && p <= e.cfg.PortMax && p%2 == 0
	}
	var aIn, bOut, bIn, aOut int // caller->SBC, SBC->callee, callee->SBC, SBC->caller
	aPorts, bPorts := map[uint16]bool{}, map[uint16]bool{}
	for f, n := range flows {
		// Only the peers' own media sockets count: other tests on this
		// machine may use the same loopback addresses.
		if (isMedia(f.src, callerMedia) && isMedia(f.dst, calleeMedia)) || (isMedia(f.src, calleeMedia) && isMedia(f.dst, callerMedia)) {
			t.Errorf("%d packets went directly between the peers, around the SBC: %v", n, f)
		}
		switch {
		case f.src == callerMedia && sbcRTP(f.dst):
			aIn += n
			aPorts[f.dst.Port()] = true
		case sbcRTP(f.src) && f.dst == calleeMedia:
			bOut += n
			bPorts[f.src.Port()] = true
		case f.src == calleeMedia && sbcRTP(f.dst):
			bIn += n
			bPorts[f.dst.Port()] = true
		case sbcRTP(f.src) && f.dst == callerMedia:
			aOut += n
			aPorts[f.src.Port()] = true
		}
	}
	t.Logf("RTP seen on lo: caller->SBC %d, SBC->callee %d, callee->SBC %d (echo), SBC->caller %d", aIn, bOut, bIn, aOut)
	least := mediaPackets * 9 / 10 // loopback loses nothing; leave room for a late start
	switch {
	case aIn != mediaPackets:
		t.Errorf("caller sent %d RTP packets to the SBC; want all %d of the pcap", aIn, mediaPackets)
	case bOut < least:
		t.Errorf("SBC forwarded %d of %d RTP packets to the callee; want >= %d", bOut, aIn, least)
	case bIn < bOut*9/10:
		t.Errorf("callee echoed %d of %d RTP packets to the SBC", bIn, bOut)
	case aOut < bIn*9/10:
		t.Errorf("SBC forwarded %d of %d echoed RTP packets back to the caller", aOut, bIn)
	}
	if len(aPorts) != 1 || len(bPorts) != 1 {
		t.Errorf("SBC RTP ports: A leg %v, B leg %v; want one each", aPorts, bPorts)
	}
	for p := range aPorts {
		if bPorts[p] {
			t.Errorf("SBC used RTP port %d on both legs", p)
		}
	}
	if t.Failed() {
		t.Logf("UDP flows on lo:\n%s", formatFlows(flows))
	}

	// The SBC counts what it received on one leg and sent on the other.
	ab, _ := end.num("a_to_b_rtp_packets")
	ba, _ := end.num("b_to_a_rtp_packets")
	if int(ab) < bOut || int(ab) > aIn || ab == 0 {
		t.Errorf("a_to_b_rtp_packets %v; want between forwarded %d and received %d", ab, bOut, aIn)
	}
	if int(ba) < aOut || int(ba) > bIn || ba == 0 {
		t.Errorf("b_to_a_rtp_packets %v; want between forwarded %d and received %d", ba, aOut, bIn)
	}
	if d, _ := end.num("dropped_packets"); d != 0 {
		t.Errorf("dropped_packets %v; want 0 on loopback", d)
	}
	e.stop(t, 1)
}

// 3. CANCEL before the answer: 200 for the CANCEL, 487 for the INVITE.
func testCancel(t *testing.T, e *e2eEnv) {
	e.callPair(t, "uas_cancel.xml", "uac_cancel.xml")
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 487, "cancel")
	e.stop(t, 1)
}

// 4. The callee is busy: its 486 reaches the caller.
func testBusy(t *testing.T, e *e2eEnv) {
	e.callPair(t, "uas_busy.xml", "uac_busy.xml")
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 486, "rejected")
	e.stop(t, 1)
}

// 183 with SDP: the early answer is anchored like the final one (the
// caller's scenario checks its c=), and the callee's audio before the
// answer reaches the caller through the SBC.
func testEarlyMedia(t *testing.T, e *e2eEnv) {
	e.callPair(t, "uas_early_media.xml", "uac_early_media.xml")
	end := e.sbc.callsEnded(t, 1)[0]
	checkEnded(t, end, 200, "caller")
	if n, _ := end.num("b_to_a_rtp_packets"); n < 45 || n > 50 {
		t.Errorf("b_to_a_rtp_packets = %v; want the callee's 50 early-media packets (45 at least)", n)
	}
	e.stop(t, 1)
}

// Other final failures of the callee reach the caller, ACKed on both legs
// (the scenarios expect the ACK). Redirects and auth challenges cannot be
// followed by a caller behind a topology-hiding B2BUA: they become 480/403.
// One daemon takes the calls in turn; the scenarios are uas_busy/uac_busy
// with the status changed.
func testCalleeFailures(t *testing.T, e *e2eEnv) {
	uasXML, err := os.ReadFile(filepath.Join(sippDir(t), "uas_busy.xml"))
	if err != nil {
		t.Fatal(err)
	}
	uacXML, err := os.ReadFile(filepath.Join(sippDir(t), "uac_busy.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		callee string // status line the callee sends
		caller int    // status the caller must get
	}{
		{"603 Decline", 603},
		{"404 Not Found", 404},
		{"503 Service Unavailable", 503},
		{"302 Moved Temporarily", 480},
		{"407 Proxy Authentication Required", 403},
	}
	dir := t.TempDir()
	for i, c := range cases {
		uas := filepath.Join(dir, fmt.Sprintf("uas_%d.xml", i))
		uac := filepath.Join(dir, fmt.Sprintf("uac_%d.xml", i))
		os.WriteFile(uas, []byte(strings.Replace(string(uasXML), "486 Busy Here", c.callee, 1)), 0o644)
		os.WriteFile(uac, []byte(strings.Replace(string(uacXML), `response="486"`, fmt.Sprintf("response=\"%d\"", c.caller), 1)), 0o644)
		e.callPair(t, uas, uac)
		end := e.sbc.callsEnded(t, i+1)[i]
		checkEnded(t, end, c.caller, "rejected")
	}
	e.stop(t, len(cases))
}

// 5. Hold and unhold by re-INVITE from the caller: directions pass through,
// media stays at the SBC's ports.
func testCallerHold(t *testing.T, e *e2eEnv) {
	uas, uac := e.callPair(t, "uas_hold.xml", "uac_hold.xml")
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 200, "caller")
	e.checkSBCMedia(t, uac)
	e.checkSBCMedia(t, uas)
	e.stop(t, 1)
}

// 5b. Hold and unhold by re-INVITE from the callee.
func testCalleeHold(t *testing.T, e *e2eEnv) {
	uas, uac := e.callPair(t, "uas_callee_hold.xml", "uac_callee_hold.xml")
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 200, "caller")
	e.checkSBCMedia(t, uac)
	e.checkSBCMedia(t, uas)
	e.stop(t, 1)
}

// 6. The callee hangs up.
func testCalleeBye(t *testing.T, e *e2eEnv) {
	e.callPair(t, "uas_callee_bye.xml", "uac_callee_bye.xml")
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 200, "callee")
	e.stop(t, 1)
}

// 7. A source that is no trunk gets 403, and no call state at all: no
// "call ended", nothing sent to the callee trunk.
func testUnknownSource(t *testing.T, e *e2eEnv) {
	e.answeredAlone(t, sippOpts{scenario: "uac_forbidden.xml", ip: strangerIP})
}

// 8. OPTIONS from a trunk to the SBC: 200, answered by the SBC itself.
func testOptions(t *testing.T, e *e2eEnv) {
	e.answeredAlone(t, sippOpts{scenario: "uac_options.xml"})
}

// An in-dialog BYE for a dialog the SBC does not know: 481, nothing
// forwarded.
func testUnknownDialog(t *testing.T, e *e2eEnv) {
	e.answeredAlone(t, sippOpts{scenario: "uac_unknown_dialog.xml"})
}

// answeredAlone runs a caller scenario the SBC must answer itself: no call
// state ("call ended" never logged), nothing sent to the callee trunk.
func (e *e2eEnv) answeredAlone(t *testing.T, o sippOpts) {
	t.Helper()
	callee := listenCallee(t, e)
	e.uac(t, o).expectSuccess(t)
	e.stop(t, 0)
	callee.expectNothing(t)
}

// An INVITE with Max-Forwards: 0: 483, and nothing sent to the callee.
func testMaxForwards(t *testing.T, e *e2eEnv) {
	callee := listenCallee(t, e)
	uac := e.uac(t, sippOpts{scenario: "uac_max_forwards.xml"})
	uac.expectSuccess(t)
	e.sbc.stop(t)
	for _, l := range e.sbc.find(isCallEnded) {
		if s, _ := l.num("status"); s != 483 {
			t.Errorf("INVITE with Max-Forwards 0 was answered 483 to the caller but logged %v", l)
		}
	}
	callee.expectNothing(t)
}

// SIGTERM with a call up: new INVITEs get 503 while the SBC drains, and at
// drain_timeout the remaining call gets BYE on both legs.
func testDrain(t *testing.T, e *e2eEnv) {
	// Both sides expect a BYE from the SBC after the ACK.
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_callee_bye.xml"})
	waitTrace(t, uas, "\nACK ", 10*time.Second)
	sent := time.Now()
	e.sbc.signal(t, syscall.SIGTERM)

	late := e.uac(t, sippOpts{name: "uac-late", scenario: "uac_unavailable.xml", port: freeUDPPort(t, callerIP)})
	late.expectSuccess(t)

	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	e.sbc.stopped(t)
	if took := time.Since(sent); took < e.cfg.DrainTimeout-500*time.Millisecond {
		t.Errorf("the call was ended %v after SIGTERM; want it kept for drain_timeout %v", took, e.cfg.DrainTimeout)
	}
	var kept []logLine
	for _, l := range e.sbc.find(isCallEnded) {
		if s, _ := l.num("status"); s == 200 {
			kept = append(kept, l)
		}
	}
	if len(kept) != 1 {
		t.Fatalf("%d answered calls ended; want 1", len(kept))
	}
	checkEnded(t, kept[0], 200, "shutdown")
}

// 100 calls at 20 per second, all answered and hung up: none may fail,
// time out or be retransmitted more than a few times (on loopback, a
// retransmission means a message the SBC lost or answered after 500 ms).
func testLoad(t *testing.T, e *e2eEnv) {
	const calls = 100
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml", calls: calls, timeout: 40 * time.Second})
	uac := e.uac(t, sippOpts{scenario: "uac_basic.xml", calls: calls, rate: 20, pause: time.Second, timeout: 30 * time.Second})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 10*time.Second)
	for _, r := range []*sippRun{uac, uas} {
		st := r.stats(t)
		ok, failed, retrans := r.statInt(t, st, "SuccessfulCall(C)"), r.statInt(t, st, "FailedCall(C)"), r.statInt(t, st, "Retransmissions(C)")
		t.Logf("sipp %s: %d successful, %d failed calls, %d retransmissions", r.opts.name, ok, failed, retrans)
		if ok != calls || failed != 0 {
			t.Errorf("sipp %s: %d successful and %d failed calls; want %d and 0", r.opts.name, ok, failed, calls)
		}
		if retrans > calls/20 {
			t.Errorf("sipp %s retransmitted %d times in %d calls; want at most %d", r.opts.name, retrans, calls, calls/20)
		}
	}
	ended := e.sbc.callsEnded(t, calls)
	ids := map[string]bool{}
	for _, l := range ended {
		if s, _ := l.num("status"); s != 200 || l.str("ended_by") != "caller" {
			t.Errorf("call ended %v; want status 200 ended_by caller", l)
		}
		ids[l.str("a_call_id")] = true
	}
	if len(ids) != calls {
		t.Errorf("%d distinct a_call_id in %d \"call ended\" lines; want %d", len(ids), len(ended), calls)
	}
	e.stop(t, calls)
}

// isMedia reports whether ap is the RTP or RTCP port of the peer whose RTP
// address is rtp.
func isMedia(ap, rtp netip.AddrPort) bool {
	return ap.Addr() == rtp.Addr() && (ap.Port() == rtp.Port() || ap.Port() == rtp.Port()+1)
}
