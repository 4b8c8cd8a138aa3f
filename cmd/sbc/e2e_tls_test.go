//go:build linux

package main

// SIP over TLS end to end: Kamailio plays a carrier whose edge talks to the
// SBC over mutual TLS, sipp (which speaks UDP only here) the phones on
// either side of it:
//
//	sipp (UDP) <-> Kamailio (UDP | TLS) <-> SBC (TLS | UDP) <-> sipp (the PBX)
//
// Kamailio's config is testdata/kamailio/tls-carrier.cfg. The carrier's
// sipps are on callerIP and calleeIP, the addresses the scenarios' leak
// checks name: the PBX must never see them, nor they the PBX.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sbc/sbc"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/testpki"
)

const (
	kamailioIP = "127.0.0.50" // the carrier's edge (Kamailio): trunk "carrier"
	pbxIP      = "127.0.0.51" // the customer's PBX (sipp): trunk "pbx"
	rogueIP    = "127.0.0.52" // trunk "rogue", whose certificate another CA signed
	elsewhere  = "127.0.0.53" // no trunk's source
	pickyIP    = "127.0.0.54" // trunk "picky", which refuses the SBC's certificate
	carrierCN  = "carrier.test"
	// The PBX's calls to these prefixes go to trunk "rogue" and "picky".
	roguePrefix = "999"
	pickyPrefix = "998"
)

func TestE2ETLSKamailio(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp and Kamailio: skipped in -short mode")
	}
	for _, prog := range []string{"sipp", "kamailio"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("end-to-end TLS test: %s is not in PATH (Debian: apt-get install sip-tester kamailio kamailio-tls-modules)", prog)
		}
	}
	bin := buildSBC(t)

	ca := testpki.NewCA(t, "e2e CA")
	sbcCert := ca.Issue(t, "sbc.test", sbcIP)
	kamCert := ca.Issue(t, carrierCN, kamailioIP)
	otherCA := testpki.NewCA(t, "another CA")
	rogue := startTLSTrunk(t, rogueIP, &tls.Config{Certificates: []tls.Certificate{otherCA.Issue(t, "rogue.test", rogueIP).TLS}})
	picky := startTLSTrunk(t, pickyIP, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "picky.test", pickyIP).TLS},
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: slowVerify(otherCA)})

	kamUDP := addrPort(kamailioIP, freeUDPPort(t, kamailioIP))
	kamTLS := addrPort(kamailioIP, freeSIPPort(t, kamailioIP))
	pbx := addrPort(pbxIP, freeUDPPort(t, pbxIP))
	callee := addrPort(calleeIP, freeUDPPort(t, calleeIP)) // the carrier's, behind Kamailio
	sbcTLS := addrPort(sbcIP, freeSIPPort(t, sbcIP))

	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Caller = sbctest.Trunk{Name: "carrier", Addr: kamTLS}
		c.Callee = sbctest.Trunk{Name: "pbx", Addr: pbx}
		c.Reverse = true
		c.Edit = func(cfg *sbc.Config) {
			cfg.SIP.Listen = append(cfg.SIP.Listen, sbc.Listener{Transport: "tls", Address: sbcTLS.String()})
			cfg.SIP.TLS.Cert, cfg.SIP.TLS.Key = sbcCert.CertFile, sbcCert.KeyFile
			carrier := &cfg.Trunks[0] // Caller; its sources are Kamailio's IP
			carrier.Transport = "tls"
			carrier.TLSCA = ca.CertFile
			carrier.TLSClientCA = ca.CertFile
			carrier.TLSClientNames = []string{carrierCN}
			carrier.TLSOnly = true
			for _, tr := range []struct {
				name, prefix string
				at           *tlsTrunk
			}{{"rogue", roguePrefix, rogue}, {"picky", pickyPrefix, picky}} {
				cfg.Trunks = append(cfg.Trunks, sbc.Trunk{Name: tr.name, Address: tr.at.addr.String(), Transport: "tls",
					Sources: []string{tr.at.addr.Addr().String()}, TLSCA: ca.CertFile})
				cfg.Routes = append(cfg.Routes, sbc.Route{From: "pbx", Prefix: tr.prefix, To: tr.name})
			}
		}
	}, false)
	sbcUDP := addrPort(sbcIP, e.cfg.SIPPort)
	kam := startKamailio(t, kamailioConf{udp: kamUDP, tls: kamTLS, sbc: sbcTLS, callee: callee, cert: kamCert, ca: ca.CertFile})

	// (a) The carrier calls the PBX: sipp -> Kamailio -> mutual TLS -> SBC
	// -> PBX. Trunk "carrier" is tls_only with a client CA: a request of
	// it that came any other way than over TLS with Kamailio's certificate
	// would have been refused (c, d).
	t.Run("carrier_to_pbx", func(t *testing.T) {
		uas := startSipp(t, sippOpts{name: "pbx-uas", scenario: "uas_basic.xml", ip: pbxIP, port: int(pbx.Port()),
			mediaPort: freeMediaPort(t, pbxIP, int(pbx.Port())), calls: 1, timeout: 15 * time.Second})
		port := freeUDPPort(t, callerIP)
		uac := startSipp(t, sippOpts{name: "carrier-uac", scenario: "uac_basic.xml", ip: callerIP, port: port,
			mediaPort: freeMediaPort(t, callerIP, port), remote: kamUDP.String(), calls: 1,
			pause: 200 * time.Millisecond, timeout: 15 * time.Second})
		uac.expectSuccess(t)
		uas.expectSuccessWithin(t, 5*time.Second)
		e.expectCall(t, "carrier", "pbx", 200)
	})

	// (b) The PBX calls the carrier: the SBC connects to Kamailio over TLS,
	// verifying its certificate (CA and IP SAN), and presents its own,
	// which Kamailio requires and verifies. The callee behind Kamailio sees
	// Kamailio's Via on top, not the SBC's: its scenario says so.
	t.Run("pbx_to_carrier", func(t *testing.T) {
		uas := startSipp(t, sippOpts{name: "carrier-uas", scenario: uasBehindProxy(t, kamailioIP), ip: calleeIP,
			port: int(callee.Port()), mediaPort: freeMediaPort(t, calleeIP, int(callee.Port())), calls: 1, timeout: 15 * time.Second})
		uac := startSipp(t, sippOpts{name: "pbx-uac", scenario: "uac_basic.xml", ip: pbxIP, port: int(pbx.Port()),
			mediaPort: freeMediaPort(t, pbxIP, int(pbx.Port())), remote: sbcUDP.String(), calls: 1,
			pause: 200 * time.Millisecond, timeout: 15 * time.Second})
		uac.expectSuccess(t)
		uas.expectSuccessWithin(t, 5*time.Second)
		e.expectCall(t, "pbx", "carrier", 200)
	})

	// (c) UDP from Kamailio's address straight to the SBC: 403, with a
	// Warning saying why, and no call.
	t.Run("carrier_over_udp_refused", func(t *testing.T) {
		port := freeUDPPort(t, kamailioIP)
		r := startSipp(t, sippOpts{name: "carrier-udp", scenario: "uac_forbidden.xml", ip: kamailioIP, port: port,
			mediaPort: freeMediaPort(t, kamailioIP, port), remote: sbcUDP.String(), calls: 1, timeout: 10 * time.Second})
		r.expectSuccess(t)
		e.expectRefused(t, "UDP", 1)
		if w := headerLine(r.messages(t), "Warning:"); !strings.Contains(w, "TLS") {
			t.Errorf("the 403 to UDP from the carrier has Warning %q; want one that mentions TLS", w)
		}
	})

	// (d) Who may speak for trunk "carrier" over TLS: only Kamailio's
	// certificate (CA and name) from Kamailio's address.
	t.Run("client_certificates", func(t *testing.T) {
		intruder := ca.Issue(t, "intruder.test", kamailioIP)
		refused := 0
		for _, c := range []struct {
			name string
			from string
			cert *tls.Certificate
			want int
		}{
			{"none", kamailioIP, nil, 403},
			{"another_name", kamailioIP, &intruder.TLS, 403},
			{"carrier_elsewhere", elsewhere, &kamCert.TLS, 403},
			{"carrier", kamailioIP, &kamCert.TLS, 200},
		} {
			status, warning := optionsOverTLS(t, c.from, sbcTLS, ca, c.cert)
			if status != c.want {
				t.Errorf("%s: OPTIONS over TLS from %s got %d (Warning %q); want %d", c.name, c.from, status, warning, c.want)
			}
			if c.want == 403 && c.from == kamailioIP {
				refused++
				e.expectRefused(t, "TLS", refused)
				if !strings.Contains(warning, "TLS") {
					t.Errorf("%s: 403 with Warning %q; want one that mentions TLS", c.name, warning)
				}
			}
		}
	})

	// (e) A TLS trunk whose certificate does not chain to its tls_ca: the
	// SBC aborts the handshake, sends it nothing, and fails the call.
	t.Run("trunk_certificate_refused", func(t *testing.T) {
		port := freeUDPPort(t, pbxIP)
		uac := startSipp(t, sippOpts{name: "pbx-uac-rogue", scenario: "uac_unavailable.xml", ip: pbxIP, port: port,
			mediaPort: freeMediaPort(t, pbxIP, port), remote: sbcUDP.String(), calls: 1, timeout: 15 * time.Second,
			extra: []string{"-s", roguePrefix + "5550100"}})
		uac.expectSuccess(t)
		// The message has changed with the daemon's TLS dialling; what it
		// must say has not: which trunk, and that its certificate is why.
		e.sbc.waitN(t, 1, 5*time.Second, "a warning that trunk rogue's certificate was refused", func(l logLine) bool {
			return l.str("level") == "WARN" && l.str("trunk") == "rogue" &&
				strings.Contains(l.msg()+" "+l.str("error"), "certificate")
		})
		e.expectCall(t, "pbx", "rogue", 503)
		rogue.expectFailed(t)
	})

	// (f) A TLS trunk that refuses the SBC's client certificate. Over TLS
	// 1.3 the SBC's side of the handshake completes before the trunk has
	// checked it: the trunk's alert comes on the first read. The call must
	// fail as fast as in (e), not wait out Timer B on a dead connection.
	t.Run("sbc_certificate_refused", func(t *testing.T) {
		port := freeUDPPort(t, pbxIP)
		uac := startSipp(t, sippOpts{name: "pbx-uac-picky", scenario: "uac_unavailable.xml", ip: pbxIP, port: port,
			mediaPort: freeMediaPort(t, pbxIP, port), remote: sbcUDP.String(), calls: 1, timeout: 10 * time.Second,
			recvTimeout: 3 * time.Second, extra: []string{"-s", pickyPrefix + "5550100"}})
		uac.expectSuccess(t)
		picky.expectFailed(t)
		e.expectCall(t, "pbx", "picky", 503)
	})

	if err := kam.exited(); err != nil {
		t.Errorf("kamailio exited during the test: %v", err)
	}
	e.stop(t, 4)
}

func addrPort(ip string, port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
}

// expectCall waits for the "call ended" of the one call from one trunk to
// another, after its "call started", and checks its status.
func (e *e2eEnv) expectCall(t *testing.T, from, to string, status int) {
	t.Helper()
	between := func(msg string) func(logLine) bool {
		return func(l logLine) bool { return l.msg() == msg && l.str("from_trunk") == from && l.str("to_trunk") == to }
	}
	what := fmt.Sprintf("call from trunk %s to trunk %s", from, to)
	e.sbc.waitN(t, 1, 5*time.Second, `"call started" of a `+what, between("call started"))
	end := e.sbc.waitN(t, 1, 5*time.Second, `"call ended" of a `+what, between("call ended"))
	if len(end) != 1 {
		t.Errorf("%d \"call ended\" lines of a %s; want 1: %v", len(end), what, end)
	}
	if s, _ := end[0].num("status"); int(s) != status {
		t.Errorf("%s ended with status %v; want %d: %v", what, end[0]["status"], status, end[0])
	}
}

// expectRefused waits for the n-th refusal of a request from Kamailio's
// address over transport, and checks that its reason is TLS.
func (e *e2eEnv) expectRefused(t *testing.T, transport string, n int) {
	t.Helper()
	lines := e.sbc.waitN(t, n, 5*time.Second, fmt.Sprintf("%d \"request from a trunk's address refused\" over %s", n, transport),
		func(l logLine) bool {
			return l.msg() == "request from a trunk's address refused" && strings.EqualFold(l.str("transport"), transport) &&
				strings.HasPrefix(l.str("source"), kamailioIP+":")
		})
	if r := lines[n-1].str("reason"); !strings.Contains(r, "TLS") {
		t.Errorf("refused with reason %q; want one that mentions TLS: %v", r, lines[n-1])
	}
}

// uasBehindProxy is uas_basic.xml for a callee behind a record-routing
// proxy at ip: the top Via of the INVITE it gets is the proxy's over UDP,
// and its 180 and 200 copy the INVITE's Record-Route, so that the SBC's
// ACK and BYE come through the proxy. What it checks of Contact and SDP
// (the SBC's) is unchanged.
func uasBehindProxy(t *testing.T, ip string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sippDir(t), "uas_basic.xml"))
	if err != nil {
		t.Fatal(err)
	}
	xml := string(b)
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{`SIP/2\.0/(UDP|TCP) 127\.0\.0\.1(:[0-9]+)?;`, `SIP/2\.0/UDP ` + strings.ReplaceAll(ip, ".", `\.`) + `(:[0-9]+)?;`, 1},
		{"[last_CSeq:]\n      Contact:", "[last_CSeq:]\n      [last_Record-Route:]\n      Contact:", 2},
	} {
		if n := strings.Count(xml, r.old); n != r.n {
			t.Fatalf("uas_basic.xml has %d times %q; want %d", n, r.old, r.n)
		}
		xml = strings.ReplaceAll(xml, r.old, r.new)
	}
	path := filepath.Join(t.TempDir(), "uas_behind_proxy.xml")
	if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// headerLine is the first line of a sipp message trace that starts with
// name, or "".
func headerLine(trace, name string) string {
	for _, l := range strings.Split(trace, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)) {
			return l
		}
	}
	return ""
}

// optionsOverTLS sends an OPTIONS to the SBC over a TLS connection from ip,
// presenting cert (nil: none) and verifying the SBC's certificate against
// ca, and returns the status of the response and its Warning.
func optionsOverTLS(t *testing.T, ip string, sbcTLS netip.AddrPort, ca *testpki.CA, cert *tls.Certificate) (int, string) {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: sbcTLS.Addr().String(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp4", sbcTLS.String(), conf)
	if err != nil {
		t.Fatalf("TLS to the SBC from %s: %v", ip, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	local := conn.LocalAddr().String()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	req := "OPTIONS sip:" + sbcTLS.String() + ";transport=tls SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS " + local + ";branch=z9hG4bK-" + id + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@" + ip + ">;tag=" + id + "\r\n" +
		"To: <sip:" + sbcTLS.String() + ">\r\n" +
		"Call-ID: " + id + "@" + ip + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Contact: <sip:probe@" + local + ";transport=tls>\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("send OPTIONS over TLS from %s: %v", ip, err)
	}
	br := bufio.NewReader(conn)
	var status int
	var warning string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("response to OPTIONS over TLS from %s: %v", ip, err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case status == 0 && line == "": // a keepalive CRLF before the response
		case status == 0:
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "SIP/2.0" {
				t.Fatalf("response to OPTIONS over TLS from %s: status line %q", ip, line)
			}
			if status, err = strconv.Atoi(f[1]); err != nil {
				t.Fatalf("response to OPTIONS over TLS from %s: status line %q", ip, line)
			}
		case line == "": // the end of the headers; no body is expected
			if status < 200 {
				status = 0 // a provisional response: the final one follows
				continue
			}
			return status, warning
		case strings.HasPrefix(strings.ToLower(line), "warning:"):
			warning = strings.TrimSpace(line[len("warning:"):])
		}
	}
}

// slowVerify verifies a client certificate against ca's, as a server
// that takes a moment to (Kamailio's alert came 6 ms after the SBC had
// sent its INVITE): over TLS 1.3 the client has finished its handshake
// and sent its first request by then.
func slowVerify(ca *testpki.CA) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		time.Sleep(100 * time.Millisecond)
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	}
}

// tlsTrunk is a TLS server that plays a trunk the SBC must not get
// through to: it records each connection's handshake error.
type tlsTrunk struct {
	addr    netip.AddrPort
	results chan error
}

func startTLSTrunk(t *testing.T, ip string, conf *tls.Config) *tlsTrunk {
	t.Helper()
	conf.MinVersion = tls.VersionTLS12
	ln, err := tls.Listen("tcp4", net.JoinHostPort(ip, "0"), conf)
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsTrunk{addr: ln.Addr().(*net.TCPAddr).AddrPort(), results: make(chan error, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			select {
			case r.results <- c.(*tls.Conn).Handshake():
			default:
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return r
}

// expectFailed checks that the SBC connected and that every handshake
// failed.
func (r *tlsTrunk) expectFailed(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.results:
		for n := len(r.results); ; n-- {
			if err == nil {
				t.Errorf("trunk at %v: a TLS handshake with the SBC succeeded", r.addr)
			} else {
				t.Logf("trunk at %v: handshake: %v", r.addr, err)
			}
			if n == 0 {
				return
			}
			err = <-r.results
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the SBC never connected to the trunk at %v", r.addr)
	}
}

// kamailioConf is what the test's Kamailio is told.
type kamailioConf struct {
	udp, tls    netip.AddrPort // its listeners
	sbc, callee netip.AddrPort // where it relays from UDP (over TLS), and from TLS (over UDP)
	cert        *testpki.Leaf  // its server and client certificate
	ca          string         // CA file the SBC's certificate must chain to
}

type kamailioRun struct {
	cmd  *exec.Cmd
	out  *capBuffer
	done chan struct{}
	err  error
}

// kamailioWrapper runs Kamailio ("$@") under sh, as cmd/sbc-bench's ladder
// does: Kamailio's workers outlive its main process when that is killed,
// and PDEATHSIG reaches only the process the test started. That is this
// shell: on SIGTERM (from the cleanup, or PDEATHSIG when the test process
// dies) it ends Kamailio, which ends its workers, then kills whatever is
// left of its process group, itself included; after 5 s it does so anyway.
const kamailioWrapper = `trap '(sleep 5; kill -KILL 0) & kill -TERM $k 2>/dev/null; wait $k; kill -KILL 0' TERM
"$@" &
k=$!
wait $k`

// startKamailio runs Kamailio with testdata/kamailio/tls-carrier.cfg and a
// tls.cfg of c, and waits until both its listeners are bound. It is
// stopped on cleanup; when the test failed, its output is logged.
func startKamailio(t *testing.T, c kamailioConf) *kamailioRun {
	t.Helper()
	template, err := os.ReadFile(filepath.Join("..", "..", "testdata", "kamailio", "tls-carrier.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	profile := fmt.Sprintf("method = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n"+
		"certificate = %s\nprivate_key = %s\nca_list = %s\n", c.cert.CertFile, c.cert.KeyFile, c.ca)
	tlsCfg := "# Written by TestE2ETLSKamailio.\n[server:default]\n" + profile + "\n[client:default]\n" + profile
	if err := os.WriteFile(filepath.Join(dir, "tls.cfg"), []byte(tlsCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(template), "\n")
	cfg := first + "\n# Defines written by TestE2ETLSKamailio.\n" +
		fmt.Sprintf("#!define UDP_LISTEN udp:%s\n#!define TLS_LISTEN tls:%s\n#!define TCP_SOURCE %s\n", c.udp, c.tls, c.tls.Addr()) +
		fmt.Sprintf("#!define SBC \"sip:%s;transport=tls\"\n#!define CALLEE \"sip:%s\"\n", c.sbc, c.callee) +
		rest
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	k := &kamailioRun{out: &capBuffer{max: 64 << 10}, done: make(chan struct{})}
	k.cmd = exec.Command("sh", "-c", kamailioWrapper, "kamailio-wrapper", "kamailio",
		"-DD", "-E", "-f", cfgPath, "-m", "64", "-M", "8",
		"-P", filepath.Join(run, "kamailio.pid"), "-Y", run, "-w", run)
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	k.cmd.WaitDelay = 2 * time.Second // workers that keep the output pipe open
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	go func() { k.err = k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		_ = k.cmd.Process.Signal(syscall.SIGTERM) // the wrapper's trap
		select {
		case <-k.done:
		case <-time.After(8 * time.Second):
			_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
			<-k.done
		}
		if t.Failed() {
			t.Logf("---- kamailio output:\n%s", lastBytes(k.out.String(), 30000))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !bound("/proc/net/udp", c.udp) || !bound("/proc/net/tcp", c.tls) {
		select {
		case <-k.done:
			t.Fatalf("kamailio exited (%v) before binding %v and %v:\n%s", k.err, c.udp, c.tls, k.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kamailio did not bind %v and %v within 10s:\n%s", c.udp, c.tls, k.out.String())
		}
	}
	return k
}

// exited returns why Kamailio is no longer running, or nil while it is.
func (k *kamailioRun) exited() error {
	select {
	case <-k.done:
		return fmt.Errorf("%v:\n%s", k.err, lastBytes(k.out.String(), 4000))
	default:
		return nil
	}
}

// bound tells whether a socket in file (/proc/net/udp or /proc/net/tcp,
// see proc(5)) is bound to ap; a TCP one must be listening (state 0A).
// Local addresses read "IIIIIIII:PPPP": the IPv4 address in host byte order
// (little-endian here), the port big-endian.
func bound(file string, ap netip.AddrPort) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	ip := ap.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want && (strings.HasSuffix(file, "udp") || f[3] == "0A") {
			return true
		}
	}
	return false
}
