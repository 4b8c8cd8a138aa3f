//go:build linux

package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sbc/sbc/sbctest/freeport"
	"sbc/sbc/sbctest/netlab"
)

// Running sipp, the real SIP peer of the end-to-end tests.

// sippOpts describes one sipp run. Every run is bounded by timeout (sipp's
// own -timeout, which fails the run when reached) and by a kill on cleanup.
type sippOpts struct {
	name      string // in logs: "uac", "uas", ...
	scenario  string // file name in testdata/sipp, or an absolute path
	ip        string // -i and -mi: local SIP and media address (bound)
	port      int    // -p
	mediaPort int    // -mp (sipp also binds -mp+2 for video)
	remote    string // host:port to call; empty for a UAS
	calls     int    // -m
	rate      int    // -r, calls per second; 0 = sipp's default
	pause     time.Duration
	transport string // -t; empty = u1 (UDP, one socket)
	timeout   time.Duration
	// recvTimeout bounds the wait for each expected message (default
	// 10 s): longer where a message waits on a daemon's restart.
	recvTimeout time.Duration
	extra       []string
	netns       *netlab.Namespace // where sipp runs; nil: this process's namespace
}

type sippRun struct {
	opts  sippOpts
	dir   string // its trace files
	cmd   *exec.Cmd
	out   *capBuffer
	done  chan struct{}
	code  int // exit code once done
	start time.Time
}

// The trace files each run writes into its own directory.
const (
	sippErrors   = "errors.log"
	sippMessages = "messages.log"
	sippStats    = "stats.csv"
)

// startSipp starts sipp in the background. On cleanup it is killed if still
// running, and when the test failed its output and traces are logged.
func startSipp(t *testing.T, o sippOpts) *sippRun {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 20 * time.Second
	}
	if o.recvTimeout == 0 {
		o.recvTimeout = 10 * time.Second
	}
	dir := t.TempDir()
	scenario := o.scenario
	if !filepath.IsAbs(scenario) {
		scenario = filepath.Join(sippDir(t), scenario)
	}
	args := []string{
		"-sf", scenario,
		"-i", o.ip, "-bind_local", "-p", strconv.Itoa(o.port),
		"-mi", o.ip, "-mp", strconv.Itoa(o.mediaPort),
		"-m", strconv.Itoa(o.calls),
		"-s", "15551234567",
		// No -cp: left alone, sipp tries control ports from 8888 up and
		// only warns when none is free; a given -cp is bound or fatal.
		"-nostdin",
		// Fail, never hang: a global deadline, and a per-message one.
		"-timeout", fmt.Sprintf("%dms", o.timeout.Milliseconds()), "-timeout_error",
		"-recv_timeout", strconv.Itoa(int(o.recvTimeout.Milliseconds())),
		"-trace_err", "-error_file", filepath.Join(dir, sippErrors),
		"-trace_msg", "-message_file", filepath.Join(dir, sippMessages),
		"-trace_stat", "-stf", filepath.Join(dir, sippStats), "-fd", "1",
		// A busy CI machine must not make sipp abort on its own watchdog.
		"-watchdog_minor_threshold", "2000", "-watchdog_major_threshold", "10000",
	}
	if o.rate > 0 {
		args = append(args, "-r", strconv.Itoa(o.rate))
	}
	if o.pause > 0 {
		args = append(args, "-d", strconv.Itoa(int(o.pause.Milliseconds())))
	}
	if o.transport != "" {
		args = append(args, "-t", o.transport)
	}
	args = append(args, o.extra...)
	if o.remote != "" {
		args = append(args, o.remote)
	}
	r := &sippRun{opts: o, dir: dir, out: &capBuffer{max: 64 << 10}, done: make(chan struct{}), code: -1}
	r.cmd = exec.Command("sipp", args...)
	if o.netns != nil {
		r.cmd = o.netns.Command("sipp", args...)
	}
	// sipp resolves play_pcap_audio files against its working directory.
	r.cmd.Dir = sippDir(t)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", o.name, err)
	}
	go func() {
		err := r.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			r.code = 0
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			r.dump(t)
		}
	})
	t.Logf("sipp %s: %s", o.name, strings.Join(r.cmd.Args, " "))
	return r
}

// wait waits for sipp to exit and returns its exit code: 0 when every call
// succeeded, 1 when some failed, 97/99/-1/-2 for its other endings.
func (r *sippRun) wait(t *testing.T) int {
	t.Helper()
	// sipp's own -timeout ends it; allow it a little beyond that.
	limit := r.opts.timeout + 5*time.Second - time.Since(r.start)
	select {
	case <-r.done:
		return r.code
	case <-time.After(limit):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("sipp %s did not exit within %v of its -timeout %v; killed", r.opts.name, 5*time.Second, r.opts.timeout)
		return -1
	}
}

// expectSuccess waits for sipp and fails the test unless all its calls
// succeeded.
func (r *sippRun) expectSuccess(t *testing.T) {
	t.Helper()
	if code := r.wait(t); code != 0 {
		t.Errorf("sipp %s (%s) exited %d; want 0 (all %d calls successful)", r.opts.name, r.opts.scenario, code, r.opts.calls)
	}
}

// stats returns the last row of sipp's statistics file, by column name
// (e.g. "SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)").
func (r *sippRun) stats(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, sippStats))
	if err != nil {
		t.Fatalf("sipp %s statistics: %v", r.opts.name, err)
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = ';'
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("sipp %s statistics: %d rows, %v:\n%s", r.opts.name, len(rows), err, data)
	}
	head, last := rows[0], rows[len(rows)-1]
	m := make(map[string]string, len(head))
	for i, k := range head {
		if i < len(last) {
			m[strings.TrimSpace(k)] = strings.TrimSpace(last[i])
		}
	}
	return m
}

// statInt reads a counter of stats; the test fails when it is missing.
func (r *sippRun) statInt(t *testing.T, stats map[string]string, key string) int {
	t.Helper()
	v, ok := stats[key]
	if !ok {
		t.Fatalf("sipp %s statistics have no %q column", r.opts.name, key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("sipp %s statistics: %s = %q: %v", r.opts.name, key, v, err)
	}
	return n
}

// messages returns sipp's message trace: every SIP message sent and received.
func (r *sippRun) messages(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, sippMessages))
	if err != nil {
		t.Fatalf("sipp %s message trace: %v", r.opts.name, err)
	}
	return string(data)
}

var mediaPortRE = regexp.MustCompile(`(?m)^m=audio (\d+) `)

// peerMediaPorts returns the ports of the m=audio lines in the messages
// sipp traced that are not its own: those the SBC offered or answered.
func (r *sippRun) peerMediaPorts(t *testing.T) []int {
	t.Helper()
	var ports []int
	for _, m := range mediaPortRE.FindAllStringSubmatch(r.messages(t), -1) {
		p, _ := strconv.Atoi(m[1])
		if p != r.opts.mediaPort {
			ports = append(ports, p)
		}
	}
	return ports
}

// dump logs what explains a failure: sipp's output, errors and messages.
func (r *sippRun) dump(t *testing.T) {
	t.Helper()
	t.Logf("---- sipp %s (%s) exit %d, output:\n%s", r.opts.name, r.opts.scenario, r.code, lastBytes(r.out.String(), 4000))
	for _, f := range []struct {
		name string
		max  int
	}{{sippErrors, 8000}, {sippMessages, 8000}} {
		data, err := os.ReadFile(filepath.Join(r.dir, f.name))
		if err != nil {
			continue
		}
		t.Logf("---- sipp %s %s:\n%s", r.opts.name, f.name, lastBytes(string(data), f.max))
	}
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]\n" + s[len(s)-n:]
}

// capBuffer is a goroutine-safe buffer that keeps the last max bytes.
type capBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// freeUDPPort returns a UDP port that was free on ip a moment ago.
func freeUDPPort(t *testing.T, ip string) int {
	t.Helper()
	p, err := freeport.UDP(netip.MustParseAddr(ip))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freeSIPPort returns a port free on ip for both UDP and TCP.
func freeSIPPort(t *testing.T, ip string) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("free TCP port on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatalf("no port free for both UDP and TCP on %s", ip)
	return 0
}

// freeMediaPort returns an even port p for sipp's media on ip such that
// p..p+3 are free and none is sipPort (chosen, not yet bound).
func freeMediaPort(t *testing.T, ip string, sipPort int) int {
	t.Helper()
	p, err := freeport.Media(netip.MustParseAddr(ip), sipPort)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sippDir is the absolute path of testdata/sipp.
func sippDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// expectSuccessWithin waits at most d for sipp (once its peer is done, it
// has nothing left to wait for) and expects all its calls to have succeeded.
func (r *sippRun) expectSuccessWithin(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Errorf("sipp %s (%s) still running %v after its peer finished; killed", r.opts.name, r.opts.scenario, d)
		return
	}
	if r.code != 0 {
		t.Errorf("sipp %s (%s) exited %d; want 0 (all %d calls successful)", r.opts.name, r.opts.scenario, r.code, r.opts.calls)
	}
}

// waitTrace waits until sipp's message trace contains s.
func waitTrace(t *testing.T, r *sippRun, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(filepath.Join(r.dir, sippMessages)); err == nil && strings.Contains(string(data), s) {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("sipp %s exited %d before its trace showed %q", r.opts.name, r.code, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("sipp %s: no %q in its trace within %v", r.opts.name, s, timeout)
}
