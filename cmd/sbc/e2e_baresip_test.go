//go:build linux

package main

// A customer's softphone end to end: baresip, as user alice, registers
// with the SBC's registrar over TLS, takes a carrier's call to its
// account's number over the connection it registered on, and calls out
// through the carrier once it has answered the SBC's 407:
//
//	sipp (trunk b, UDP) <-> SBC (UDP | TLS) <-> baresip (alice, TLS)
//
// baresip's config and accounts files are templates in testdata/baresip;
// the test drives baresip through its ctrl_tcp module: netstring-framed
// JSON commands, responses and events on one TCP connection.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/testpki"
)

const (
	baresipIP    = "127.0.0.60" // alice's softphone (baresip)
	baresipRogue = "127.0.0.61" // a baresip with a wrong password
)

func TestE2EBaresipTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with baresip and sipp: skipped in -short mode")
	}
	for _, prog := range []string{"sipp", "baresip"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is not in PATH (Debian: apt-get install sip-tester baresip)", prog)
		}
	}
	bin := buildSBC(t)
	ca := testpki.NewCA(t, "e2e baresip CA")
	sbcCert := ca.Issue(t, "sbc.test", sbcIP)

	const password = "Str0ng-Passw0rd!"
	num := "+14155550500"
	dir := dataDir(t, false)
	st, acct := deviceAccount(t, dir, "alice", password, num)

	sbcTLS := addrPort(sbcIP, freeSIPPort(t, sbcIP))
	authFailures := 5 // sip.registrar.auth_failures
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Control.DataDir = dir
		c.LogLevel = "info"
		c.Edit = func(cfg *sbc.Config) {
			cfg.SIP.Listen = append(cfg.SIP.Listen, sbc.Listener{Transport: "tls", Address: sbcTLS.String()})
			cfg.SIP.TLS.Cert, cfg.SIP.TLS.Key = sbcCert.CertFile, sbcCert.KeyFile
			// baresip 1.0 (libre 1.1) knows MD5 only, and gives up on a
			// 401/407 with any challenge of another algorithm, first or
			// not ("Register: Function not implemented"): MD5 alone.
			cfg.SIP.Registrar.Digest = []string{"MD5"}
			cfg.SIP.Registrar.AuthFailures = &authFailures
			// Devices' calls: any number starting "+" to the carrier b.
			cfg.Routes = append(cfg.Routes, sbc.Route{Prefix: "+", To: c.Callee.Name})
		}
	}, false)

	// baresip 1.0 loads sip_cafile but does not verify the SBC's
	// certificate (with another CA's it registers all the same): the test
	// checks what the TLS listener presents.
	conn, err := tls.Dial("tcp4", sbcTLS.String(), &tls.Config{RootCAs: ca.Pool(), ServerName: sbcIP, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the SBC's listener, verified against the test CA for %s: %v", sbcIP, err)
	}
	conn.Close()

	// (a) alice's baresip registers over TLS. The source the SBC keeps is
	// the connection baresip opened (from 127.0.0.1: libre does not bind
	// it to sip_listen's address).
	phone := startBaresip(t, baresipOpts{name: "alice", ip: baresipIP, password: password, sbc: sbcTLS, ca: ca.CertFile})
	reg := e.sbc.waitN(t, 1, 10*time.Second, `"registered" of alice`, func(l logLine) bool {
		return l.msg() == "registered" && l.str("username") == "alice"
	})[0]
	if reg.str("account_sid") != acct || reg.str("transport") != "tls" || reg.str("source") != phone.flow(t, sbcTLS) {
		t.Fatalf("registered line %v; want alice's account, transport tls, source baresip's connection %s", reg, phone.flow(t, sbcTLS))
	}
	if !strings.Contains(reg.str("user_agent"), "baresip") {
		t.Errorf("registered line %v; want baresip's User-Agent", reg)
	}
	if regs, err := st.Registrations(context.Background(), store.RegistrationFilter{AccountSID: acct}, time.Now()); err != nil ||
		len(regs) != 1 || regs[0].Source != reg.str("source") {
		t.Fatalf("stored registrations %+v %v; want alice's one", regs, err)
	}
	t.Logf("baresip authenticated with digest %s", phone.digestAlgorithm(t, "Authorization"))

	// (b) The carrier calls alice's number: the SBC sends the INVITE down
	// the TLS connection baresip registered on, and baresip answers.
	t.Run("call_to_baresip", func(t *testing.T) {
		since := phone.mark()
		carrier := e.uac(t, sippOpts{name: "carrier", ip: calleeIP, port: int(e.cfg.Callee.Addr.Port()), scenario: "uac_outcome.xml",
			extra: []string{"-s", num}})
		carrier.expectSuccess(t)
		e.expectDeviceCall(t, e.cfg.Callee.Name, "user:alice", acct)
		// Answered at once (answermode=auto): no CALL_INCOMING.
		if est := phone.waitEvent(t, since, "CALL_ESTABLISHED", time.Second); est.str("direction") != "incoming" {
			t.Errorf("baresip's CALL_ESTABLISHED %v; want an incoming call", est)
		}
		phone.waitEvent(t, since, "CALL_CLOSED", 5*time.Second)
		// baresip's trace heads each message "TLS <from> -> <to>": the
		// INVITE came from the SBC's listener to the registered flow.
		onFlow := regexp.MustCompile(`(?m)^TLS ` + regexp.QuoteMeta(sbcTLS.String()) + ` -> ` + regexp.QuoteMeta(reg.str("source")) +
			`\r?\nINVITE sip:alice\S*;transport=tls SIP/2\.0`)
		if !onFlow.MatchString(phone.out.String()) {
			t.Errorf("baresip's SIP trace has no INVITE on the connection it registered from (%s)", reg.str("source"))
		}
		if l := linesWith(carrier.messages(t), baresipIP); len(l) > 0 {
			t.Errorf("baresip's address reached the carrier: %q", l)
		}
		if l := linesWith(phone.out.String(), calleeIP); len(l) > 0 {
			t.Errorf("the carrier's address reached baresip: %q", l)
		}
	})

	// (c) alice calls a PSTN number: the SBC challenges the INVITE (407),
	// baresip answers the challenge, and the call goes to the carrier.
	t.Run("call_from_baresip", func(t *testing.T) {
		uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
		since := phone.mark()
		phone.command(t, "dial", "+14155550100")
		phone.waitEvent(t, since, "CALL_ESTABLISHED", 10*time.Second)
		phone.command(t, "hangup", "")
		phone.waitEvent(t, since, "CALL_CLOSED", 5*time.Second)
		uas.expectSuccessWithin(t, 5*time.Second)
		e.expectDeviceCall(t, "user:alice", e.cfg.Callee.Name, acct)
		if !strings.Contains(phone.out.String(), "SIP/2.0 407 ") {
			t.Error("baresip's SIP trace has no 407 for its INVITE")
		}
		t.Logf("baresip's INVITE authenticated with digest %s", phone.digestAlgorithm(t, "Proxy-Authorization"))
		if l := linesWith(uas.messages(t), baresipIP); len(l) > 0 {
			t.Errorf("baresip's address reached the carrier: %q", l)
		}
	})

	// (d) A baresip with a wrong password is refused, and alice's
	// registration stays as it was. baresip 1.0 answers each new
	// challenge at once with the same wrong password: the user's lockout
	// (auth_failures) ends that with a 403. It runs last: the lockout
	// holds for alice's own REGISTERs too.
	t.Run("wrong_password", func(t *testing.T) {
		rogue := startBaresip(t, baresipOpts{name: "rogue", ip: baresipRogue, password: "wr0ng-Passw0rd!", sbc: sbcTLS, ca: ca.CertFile})
		failed := func(l logLine) bool { return l.msg() == "authentication failed" && l.str("username") == "alice" }
		l := e.sbc.waitN(t, 1, 10*time.Second, `"authentication failed" of alice`, failed)[0]
		flow := rogue.flow(t, sbcTLS)
		if l.str("reason") != "wrong password" || l.str("source") != flow {
			t.Errorf("failure line %v; want reason \"wrong password\" from the rogue's connection %s", l, flow)
		}
		rogue.waitOutput(t, "SIP/2.0 403 ", 5*time.Second)
		if n := len(e.sbc.find(failed)); n > authFailures {
			t.Errorf("%d failed authentications of alice; want at most auth_failures %d before the 403", n, authFailures)
		}
		regs, err := st.Registrations(context.Background(), store.RegistrationFilter{AccountSID: acct}, time.Now())
		if err != nil || len(regs) != 1 || regs[0].Source != reg.str("source") {
			t.Errorf("stored registrations %+v %v; want alice's one", regs, err)
		}
	})
	e.stop(t, 2)
}

// deviceAccount makes, in a control store in dir, an account with user
// username (password) and number num, whose calls go to that user. The
// daemon, started on dir later, serves them.
func deviceAccount(t *testing.T, dir, username, password, num string) (*store.Store, string) {
	t.Helper()
	p, st := storePlane(t, dir)
	ctx := context.Background()
	name, cps, maxCalls := "Acme", 20, 50
	acct, _, err := p.CreateAccount(ctx, "cli", control.AccountSpec{Name: &name, CPS: &cps, MaxConcurrent: &maxCalls})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateUser(ctx, "cli", acct.SID, username, password, ""); err != nil {
		t.Fatal(err)
	}
	target := "user:" + username
	if _, err := p.CreateNumber(ctx, "cli", acct.SID, control.NumberSpec{PhoneNumber: &num, VoiceTarget: &target}); err != nil {
		t.Fatal(err)
	}
	return st, acct.SID
}

// expectDeviceCall waits for the one call from one peer to another (a
// trunk, or "user:NAME" for a device) and checks that it was the
// account's and answered.
func (e *e2eEnv) expectDeviceCall(t *testing.T, from, to, account string) {
	t.Helper()
	started := e.sbc.waitN(t, 1, 5*time.Second, fmt.Sprintf(`"call started" from %s to %s`, from, to), func(l logLine) bool {
		return l.msg() == "call started" && l.str("from_trunk") == from && l.str("to_trunk") == to
	})
	if len(started) != 1 || started[0].str("account_sid") != account {
		t.Errorf("call started %v; want one, of account %s", started, account)
	}
	ended := e.sbc.waitN(t, 1, 5*time.Second, fmt.Sprintf(`"call ended" from %s to %s`, from, to), func(l logLine) bool {
		return isCallEnded(l) && l.str("call_id") == started[0].str("call_id")
	})[0]
	if n, _ := ended.num("status"); n != 200 {
		t.Errorf("call from %s to %s: %v; want answered (200)", from, to, ended)
	}
}

// baresipOpts describes one baresip: alice's account at the SBC.
type baresipOpts struct {
	name     string
	ip       string // its SIP and ctrl_tcp address
	password string
	sbc      netip.AddrPort // the SBC's TLS listener: registrar and outbound proxy
	ca       string         // sip_cafile: the CA of the SBC's certificate
}

// baresipRun is a running baresip and the ctrl_tcp connection to it.
type baresipRun struct {
	opts baresipOpts
	cmd  *exec.Cmd
	out  *capBuffer // its output: log and SIP trace (-s)
	done chan struct{}
	ctrl net.Conn

	mu      sync.Mutex
	msgs    []baresipMsg // events and responses, in order
	changed chan struct{}
	token   int
}

// baresipMsg is one ctrl_tcp message: an event ("event": true, "type",
// "class", "param", ...) or a command's response ("response": true, "ok",
// "data", "token").
type baresipMsg map[string]any

func (m baresipMsg) str(k string) string {
	s, _ := m[k].(string)
	return s
}

// startBaresip writes baresip's config directory from the templates,
// starts it and connects to its ctrl_tcp. baresip dies with the test: it
// is stopped on cleanup, and killed (PDEATHSIG) should the test process
// die first. When the test failed, its output is logged.
func startBaresip(t *testing.T, o baresipOpts) *baresipRun {
	t.Helper()
	dir := t.TempDir()
	ctrlAddr := addrPort(o.ip, freeTCPPort(t, o.ip))
	fields := map[string]any{"IP": o.ip, "CAFile": o.ca, "CtrlPort": ctrlAddr.Port(), "SBC": o.sbc.String(), "Password": o.password}
	for _, name := range []string{"config", "accounts"} {
		tmpl, err := template.ParseFiles(filepath.Join("..", "..", "testdata", "baresip", name))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		err = tmpl.Execute(f, fields)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("write baresip %s: %v", name, err)
		}
	}
	b := &baresipRun{opts: o, out: &capBuffer{max: 256 << 10}, done: make(chan struct{}), changed: make(chan struct{})}
	// -4: IPv4 only; -s: trace SIP messages to the output.
	b.cmd = exec.Command("baresip", "-4", "-s", "-f", dir)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start baresip %s: %v", o.name, err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		if b.ctrl != nil {
			b.ctrl.Close()
		}
		// On SIGTERM baresip unregisters, then exits.
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
		if t.Failed() {
			t.Logf("---- baresip %s output:\n%s", o.name, lastBytes(b.out.String(), 30000))
		}
	})
	t.Logf("baresip %s: %s (config in %s)", o.name, strings.Join(b.cmd.Args, " "), dir)

	// ctrl_tcp listens once baresip has read its config.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", ctrlAddr.String(), time.Second)
		if err == nil {
			b.ctrl = c
			break
		}
		select {
		case <-b.done:
			t.Fatalf("baresip %s exited (%v) before its ctrl_tcp listened:\n%s", o.name, b.cmd.ProcessState, b.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip %s: ctrl_tcp on %v: %v", o.name, ctrlAddr, err)
		}
	}
	go b.read()
	return b
}

// read reads ctrl_tcp's netstrings ("<length>:<JSON>,") until the
// connection closes.
func (b *baresipRun) read() {
	r := bufio.NewReader(b.ctrl)
	for {
		head, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(head, ":")))
		if err != nil || n < 0 || n > 1<<20 {
			return
		}
		body := make([]byte, n+1) // and the ","
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m baresipMsg
		if json.Unmarshal(body[:n], &m) != nil {
			continue
		}
		b.mu.Lock()
		b.msgs = append(b.msgs, m)
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// mark is where the messages received from now on start, for waitEvent.
func (b *baresipRun) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

// waitMsg waits for the first message from index since on that matches.
func (b *baresipRun) waitMsg(t *testing.T, since int, timeout time.Duration, what string, match func(baresipMsg) bool) baresipMsg {
	t.Helper()
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		msgs, changed := b.msgs, b.changed
		b.mu.Unlock()
		for _, m := range msgs[min(since, len(msgs)):] {
			if match(m) {
				return m
			}
		}
		select {
		case <-changed:
		case <-b.done:
			t.Fatalf("baresip %s exited before %s", b.opts.name, what)
		case <-deadline:
			var types []string
			for _, m := range msgs[min(since, len(msgs)):] {
				types = append(types, m.str("type")+m.str("data"))
			}
			t.Fatalf("baresip %s: no %s within %v; it said %q", b.opts.name, what, timeout, types)
		}
	}
}

// waitEvent waits for baresip's first event of type typ (REGISTER_OK,
// CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED, ...) from index since on.
func (b *baresipRun) waitEvent(t *testing.T, since int, typ string, timeout time.Duration) baresipMsg {
	t.Helper()
	return b.waitMsg(t, since, timeout, "event "+typ, func(m baresipMsg) bool { return m["event"] == true && m.str("type") == typ })
}

// command runs one of baresip's long commands ("dial", "hangup", ...) and
// fails the test unless baresip says it succeeded.
func (b *baresipRun) command(t *testing.T, command, params string) {
	t.Helper()
	b.mu.Lock()
	b.token++
	tok := "t" + strconv.Itoa(b.token)
	since := len(b.msgs)
	b.mu.Unlock()
	req := map[string]string{"command": command, "token": tok}
	if params != "" {
		req["params"] = params
	}
	js, _ := json.Marshal(req)
	if _, err := fmt.Fprintf(b.ctrl, "%d:%s,", len(js), js); err != nil {
		t.Fatalf("baresip %s: send %s: %v", b.opts.name, js, err)
	}
	resp := b.waitMsg(t, since, 5*time.Second, "response to "+string(js), func(m baresipMsg) bool {
		return m["response"] == true && m.str("token") == tok
	})
	if resp["ok"] != true {
		t.Fatalf("baresip %s: %s: %v", b.opts.name, js, resp)
	}
}

// waitOutput waits until baresip's output (its log and SIP trace)
// contains s.
func (b *baresipRun) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("baresip %s: no %q in its output within %v", b.opts.name, s, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var traceFlowRE = regexp.MustCompile(`(?m)^TLS (\S+) -> (\S+)$`)

// flow is the local address of baresip's first TLS connection to dst, as
// its SIP trace shows it ("TLS <local> -> <remote>" above each message).
func (b *baresipRun) flow(t *testing.T, dst netip.AddrPort) string {
	t.Helper()
	for _, m := range traceFlowRE.FindAllStringSubmatch(b.out.String(), -1) {
		if m[2] == dst.String() {
			return m[1]
		}
	}
	t.Fatalf("baresip %s: no message to %v in its SIP trace", b.opts.name, dst)
	return ""
}

var digestAlgRE = regexp.MustCompile(`algorithm=("?)([A-Za-z0-9-]+)`)

// digestAlgorithm is the algorithm of the last header (Authorization or
// Proxy-Authorization) in baresip's SIP trace, MD5 where it names none
// (RFC 2617 section 3.2.2, which libre 1.1 follows); the test fails if
// there is no such header.
func (b *baresipRun) digestAlgorithm(t *testing.T, header string) string {
	t.Helper()
	var last string
	for _, l := range strings.Split(b.out.String(), "\n") {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(header)+":") {
			last = l
		}
	}
	if !strings.Contains(last, "Digest ") {
		t.Errorf("baresip %s: no %s in its SIP trace", b.opts.name, header)
		return ""
	}
	if m := digestAlgRE.FindStringSubmatch(last); m != nil {
		return m[2]
	}
	return "MD5"
}

// linesWith returns the lines of text that contain s, trimmed.
func linesWith(text, s string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// freeTCPPort returns a TCP port that was free on ip a moment ago.
func freeTCPPort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free TCP port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
