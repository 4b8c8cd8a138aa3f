//go:build linux

package rtpengine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests run the real daemon on 127.0.0.3, a loopback address of its
// own, with ports from 41000 (others' tests use 20000-40000).
var testIP = netip.MustParseAddr("127.0.0.3")

func testConfig(t *testing.T) Config {
	return Config{IP: testIP, PortMin: 41000, PortMax: 41099, Threads: 2, Dir: t.TempDir()}
}

func needRTPengine(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs rtpengine: skipped in -short mode")
	}
	if _, err := exec.LookPath("rtpengine"); err != nil {
		t.Skip("rtpengine is not in PATH (Debian: apt-get install rtpengine-daemon; make test installs it)")
	}
}

// gone waits until process pid no longer exists.
func gone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
	}
	t.Errorf("process %d still exists", pid)
}

func sdpAt(c *net.UDPConn) []byte {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return fmt.Appendf(nil, "v=0\r\no=t 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n", a.Addr(), a.Port())
}

// mediaPort is the m=audio port of an SDP body.
func mediaPort(t *testing.T, sdp []byte) int {
	t.Helper()
	_, rest, ok := strings.Cut(string(sdp), "m=audio ")
	port, err := strconv.Atoi(strings.Fields(rest)[0])
	if !ok || err != nil {
		t.Fatalf("no m=audio port in %q", sdp)
	}
	return port
}

// TestCall runs one call through the real daemon: offer, answer, packets
// both ways, delete, and the counters and ports it reports.
func TestCall(t *testing.T) {
	needRTPengine(t)
	noLeaks(t)
	p, err := Start(t.Context(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	defer gone(t, pid)
	defer p.Stop(t.Context())

	var ends [2]*net.UDPConn
	for i, ip := range []string{"127.0.0.11", "127.0.0.21"} {
		if ends[i], err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}); err != nil {
			t.Fatal(err)
		}
		defer ends[i].Close()
	}
	dlg := Dialog{CallID: "TestCall", FromTag: "a"}
	offer, err := p.Offer(t.Context(), dlg, sdpAt(ends[0]))
	if err != nil {
		t.Fatal(err)
	}
	dlg.ToTag = "b"
	answer, err := p.Answer(t.Context(), dlg, sdpAt(ends[1]))
	if err != nil {
		t.Fatal(err)
	}
	// Each end sends to the port the other's SDP names, and gets the
	// other's packets from it.
	to := []int{mediaPort(t, answer), mediaPort(t, offer)}
	const n = 5
	buf := make([]byte, 100)
	for range n {
		for i, c := range ends {
			if _, err := c.WriteToUDP([]byte("packet"), &net.UDPAddr{IP: testIP.AsSlice(), Port: to[i]}); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range ends {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:k]) != "packet" || int(from.Port()) != to[i] {
				t.Fatalf("end %d: %q from %v, %v; want the other end's packet from port %d", i, buf[:k], from, err, to[i])
			}
		}
	}

	st, err := p.Statistics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != 2*n || st.Errors != 0 || st.Sessions != 1 || len(st.Ports) != 1 || st.Ports[0].Used != 4 || st.Ports[0].Total != 100 {
		t.Errorf("statistics with the call up: %+v; want %d packets, one session, 4 of 100 ports used", st, 2*n)
	}
	if err := p.Delete(t.Context(), dlg); err != nil {
		t.Fatal(err)
	}
	var ngErr *Error
	if err := p.Delete(t.Context(), dlg); !errors.As(err, &ngErr) {
		t.Errorf("second delete: %v; want rtpengine's error (flag fatal)", err)
	}
	if st, err = p.Statistics(t.Context()); err != nil || st.Sessions != 0 || st.Ended["delete"] != 1 || st.Ports[0].Used != 0 {
		t.Errorf("statistics after delete: %+v, %v; want no session, 1 ended by delete, no port used", st, err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, ok := p.ExitCode(); !ok || code != 0 {
		t.Errorf("exit code %d (exited %v); want 0", code, ok)
	}
	if l := p.Logs(); l.Errors != 0 {
		t.Errorf("%d errors logged, first: %s", l.Errors, l.FirstError)
	}
}

// TestLadderOptions: the options the ladder sets. With the control
// subsystem at info and the rest at notice, OnLine sees each ng offer;
// rtpengine writes its pid file, and runs in a process group of its own.
func TestLadderOptions(t *testing.T) {
	needRTPengine(t)
	noLeaks(t)
	cfg := testConfig(t)
	cfg.LogLevel, cfg.ControlLogLevel, cfg.OwnGroup = 5, 6, true
	cfg.PIDFile = filepath.Join(cfg.Dir, "rtpengine.pid")
	var offers atomic.Int64
	cfg.OnLine = func(line string) {
		if strings.Contains(line, "Received command 'offer'") {
			offers.Add(1)
		}
	}
	p, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gone(t, p.Pid())
	defer p.Stop(t.Context())
	if pgid, err := syscall.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("process group %d, %v; want its own, %d", pgid, err, p.Pid())
	}
	if pid := readPid(t, cfg.PIDFile); pid != p.Pid() {
		t.Errorf("pid file says %d; want %d", pid, p.Pid())
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.11")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := p.Offer(t.Context(), Dialog{CallID: "TestLadderOptions", FromTag: "a"}, sdpAt(c)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := offers.Load(); n != 1 {
		t.Errorf("OnLine saw %d offers; want 1", n)
	}
}

// script writes an executable shell script that records its pid in pidfile
// and runs body.
func script(t *testing.T, body string) (bin, pidfile string) {
	dir := t.TempDir()
	bin, pidfile = filepath.Join(dir, "fake-rtpengine"), filepath.Join(dir, "pid")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho $$ > "+pidfile+"\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, pidfile
}

func readPid(t *testing.T, pidfile string) int {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		t.Fatalf("pid file: %v %v", err, perr)
	}
	return pid
}

// TestStartFails: every way Start can fail says what failed, and leaves no
// process behind.
func TestStartFails(t *testing.T) {
	noLeaks(t)
	cfg := func(mod func(*Config)) Config {
		c := testConfig(t)
		c.StartTimeout = 500 * time.Millisecond
		mod(&c)
		return c
	}
	exits, exitsPid := script(t, "echo 'ERR: [core] bad option' >&2; exit 1")
	hangs, hangsPid := script(t, "exec sleep 60")
	tests := []struct {
		name      string
		cfg       Config
		pidfile   string
		shouldErr string
		is        error
	}{
		{"not installed", cfg(func(c *Config) { c.Bin = "/nonexistent/rtpengine" }), "", "apt-get install rtpengine-daemon", ErrNotInstalled},
		{"no IP", cfg(func(c *Config) { c.IP = netip.Addr{} }), "", "IP unset", nil},
		{"port range", cfg(func(c *Config) { c.PortMax = c.PortMin + 1 }), "", "at least 4 ports", nil},
		{"log level", cfg(func(c *Config) { c.ControlLogLevel = 8 }), "", "log levels 0 and 8", nil},
		{"exits at once", cfg(func(c *Config) { c.Bin = exits }), exitsPid, "exited before answering a ping (exit status 1); its last log lines:\n  ERR: [core] bad option", nil},
		{"never answers", cfg(func(c *Config) { c.Bin = hangs }), hangsPid, "no pong on 127.0.0.3:", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(t.Context(), tc.cfg)
			if p != nil || err == nil || !strings.Contains(err.Error(), tc.shouldErr) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Start = %v, %v; want an error containing %q", p, err, tc.shouldErr)
			}
			if tc.pidfile != "" {
				gone(t, readPid(t, tc.pidfile))
			}
		})
	}
}

// TestMain lets the test binary stand in for a daemon that answers pings
// but ignores SIGTERM, when TestStopKills runs it as its rtpengine.
func TestMain(m *testing.M) {
	if os.Getenv("RTPENGINE_TEST_STUBBORN") == "1" {
		stubborn()
		return
	}
	os.Exit(m.Run())
}

// stubborn answers every ng request on its --listen-ng address with a pong,
// and ignores SIGTERM.
func stubborn() {
	signal.Ignore(syscall.SIGTERM)
	for _, a := range os.Args {
		if addr, ok := strings.CutPrefix(a, "--listen-ng="); ok {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			if err != nil {
				os.Exit(1)
			}
			buf := make([]byte, 65535)
			for {
				n, from, _ := c.ReadFromUDPAddrPort(buf)
				cookie, _, _ := strings.Cut(string(buf[:n]), " ")
				c.WriteToUDPAddrPort([]byte(cookie+" d6:result4:ponge"), from)
			}
		}
	}
	os.Exit(1)
}

// TestStopKills: a daemon that does not exit on SIGTERM is killed at the
// end of Stop's context.
func TestStopKills(t *testing.T) {
	t.Setenv("RTPENGINE_TEST_STUBBORN", "1") // for the child: see TestMain
	cfg := testConfig(t)
	cfg.Bin = os.Args[0]
	p, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err == nil || !strings.Contains(err.Error(), "no exit after SIGTERM") {
		t.Errorf("Stop: %v; want it killed after SIGTERM", err)
	}
	gone(t, p.Pid())
}

// TestDiesWithParent: should the process that started it be killed,
// rtpengine goes too (PDEATHSIG). The test runs itself as that parent.
func TestDiesWithParent(t *testing.T) {
	needRTPengine(t)
	if os.Getenv("RTPENGINE_TEST_PARENT") == "1" {
		p, err := Start(t.Context(), testConfig(t))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(p.Pid())
		time.Sleep(time.Minute) // until killed
		return
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestDiesWithParent$")
	parent.Env = append(os.Environ(), "RTPENGINE_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("parent said %q, %v", line, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("rtpengine %d not running under the parent: %v", pid, err)
	}
	parent.Process.Kill()
	gone(t, pid)
}
