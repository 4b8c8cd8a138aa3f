//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sbc/firewall"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/netlab"
)

// Running the daemon under test and reading its JSON log.

// buildSBC builds ./cmd/sbc into t's temporary directory (with -race when the
// tests run with it, so that the daemon's data races fail them too).
func buildSBC(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sbc")
	args := []string{"build", "-o", bin}
	if e2eRace {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/sbc: %v\n%s", err, out)
	}
	return bin
}

// logLine is one JSON log line of the daemon.
type logLine map[string]any

func (l logLine) msg() string { s, _ := l["msg"].(string); return s }

func (l logLine) str(k string) string {
	s, _ := l[k].(string)
	return s
}

// num returns a numeric attribute; ok is false when it is missing or not a
// number.
func (l logLine) num(k string) (float64, bool) {
	f, ok := l[k].(float64)
	return f, ok
}

func (l logLine) String() string {
	b, _ := json.Marshal(map[string]any(l))
	return string(b)
}

type sbcDaemon struct {
	cfg sbctest.DaemonConfig
	cmd *exec.Cmd

	mu      sync.Mutex
	raw     []string  // every stderr line
	lines   []logLine // those that are JSON
	changed chan struct{}

	done   chan struct{}
	code   int
	waited error
}

// startSBC writes cfg, starts the daemon and waits until both listeners are
// up; asNobody runs it as user nobody, without capabilities. On cleanup it
// is killed if still running; when the test failed its whole log is logged.
// errSIPPortTaken says the SIP port, free when chosen, was taken before the
// daemon bound it: the caller picks another and tries again.
func startSBC(t *testing.T, bin string, cfg sbctest.DaemonConfig, asNobody bool) (*sbcDaemon, error) {
	t.Helper()
	return startSBCIn(t, bin, cfg, asNobody, nil)
}

// startSBCIn is startSBC with the daemon in a network namespace (nil: this
// process's).
func startSBCIn(t *testing.T, bin string, cfg sbctest.DaemonConfig, asNobody bool, netns *netlab.Namespace) (*sbcDaemon, error) {
	t.Helper()
	dir := t.TempDir()
	if cfg.Control.DataDir == "" {
		cfg.Control.DataDir = dataDir(t, asNobody)
	}
	path := filepath.Join(dir, "sbc.toml")
	if err := os.WriteFile(path, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &sbcDaemon{cfg: cfg, changed: make(chan struct{}), done: make(chan struct{}), code: -1}
	d.cmd = exec.Command(bin, "run", "-config", path)
	switch {
	case asNobody:
		requireRoot(t)
		d.cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", nobodyCopy(t, bin), "run", "-config", nobodyCopy(t, path))
	case netns != nil:
		d.cmd = netns.Command(bin, "run", "-config", path)
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start sbc: %v", err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.add(sc.Text())
		}
	}()
	go func() {
		<-readDone // all of stderr read before Wait closes the pipe
		d.waited = d.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case d.waited == nil:
			d.code = 0
		case errors.As(d.waited, &ee):
			d.code = ee.ExitCode()
		}
		close(d.done)
		d.notify()
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if netns == nil { // a lab's namespace goes with its tables
			// A killed daemon leaves its nftables table hooked on input.
			if err := firewall.RemoveSIPGuard(uint16(cfg.SIPPort)); err != nil {
				t.Logf("remove the SIP guard table of port %d: %v", cfg.SIPPort, err)
			}
		}
		if t.Failed() {
			d.mu.Lock()
			t.Logf("---- sbc log (%d lines, exit %d):\n%s", len(d.raw), d.code, lastBytes(strings.Join(d.raw, "\n"), 60000))
			d.mu.Unlock()
		}
	})
	isListening := func(l logLine) bool { return l.msg() == "listening" }
	portTaken := func(l logLine) bool {
		return l.msg() == "listen" && strings.Contains(l.str("error"), "address already in use")
	}
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		changed := d.changed
		d.mu.Unlock()
		if len(d.find(isListening)) >= 2 {
			return d, nil
		}
		if len(d.find(portTaken)) > 0 {
			<-d.done
			return nil, errSIPPortTaken
		}
		select {
		case <-changed:
		case <-d.done:
			if len(d.find(isListening)) < 2 && len(d.find(portTaken)) == 0 {
				t.Fatalf("sbc exited (%v) before both listeners were up", d.waited)
			}
		case <-deadline:
			t.Fatalf("sbc: listeners not up within 10s")
		}
	}
}

var errSIPPortTaken = errors.New("the SIP port was taken before the daemon bound it")

// requireRoot fails t unless it runs as root: like the capture of the media
// test, what it checks cannot be done otherwise, and must not be skipped.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (steering the media ports, or setpriv to user nobody): run it as root")
	}
}

// nobodyCopy copies file into a fresh directory that user nobody can read,
// keeping its mode: the test's own temporary directories are its alone.
// dataDir is a fresh control.data_dir for a daemon, owned by nobody for a
// daemon that runs as nobody.
func dataDir(t *testing.T, asNobody bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbc-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if asNobody {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func nobodyCopy(t *testing.T, file string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbc-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(dst, b, fi.Mode().Perm()|0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func (d *sbcDaemon) add(s string) {
	var l logLine
	isJSON := json.Unmarshal([]byte(s), &l) == nil
	d.mu.Lock()
	d.raw = append(d.raw, s)
	if isJSON {
		d.lines = append(d.lines, l)
	}
	d.mu.Unlock()
	d.notify()
}

func (d *sbcDaemon) notify() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// find returns the log lines so far that match.
func (d *sbcDaemon) find(match func(logLine) bool) []logLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []logLine
	for _, l := range d.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitN waits until n log lines match and returns them; the test fails at
// the deadline or when the daemon exits first.
func (d *sbcDaemon) waitN(t *testing.T, n int, timeout time.Duration, what string, match func(logLine) bool) []logLine {
	t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		changed := d.changed
		d.mu.Unlock()
		if got := d.find(match); len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-d.done:
			if got := d.find(match); len(got) >= n {
				return got
			}
			t.Fatalf("sbc exited (%v) before %s: have %d of %d log lines", d.waited, what, len(d.find(match)), n)
		case <-deadline:
			t.Fatalf("no %s within %v: have %d of %d log lines", what, timeout, len(d.find(match)), n)
		}
	}
}

func isCallEnded(l logLine) bool { return l.msg() == "call ended" }

// callsEnded waits for n "call ended" lines.
func (d *sbcDaemon) callsEnded(t *testing.T, n int) []logLine {
	t.Helper()
	return d.waitN(t, n, 10*time.Second, fmt.Sprintf("%d \"call ended\"", n), isCallEnded)
}

// signal sends sig to the daemon.
func (d *sbcDaemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal sbc: %v", err)
	}
}

// stop sends SIGTERM and checks a clean exit: status 0, a "stopped" line
// with no active call and every media port pair back in the pool, and no
// error logged. It returns the "stopped" line.
func (d *sbcDaemon) stop(t *testing.T) logLine {
	t.Helper()
	d.signal(t, syscall.SIGTERM)
	return d.stopped(t)
}

// stopped waits for the exit that a SIGTERM already sent starts.
func (d *sbcDaemon) stopped(t *testing.T) logLine {
	t.Helper()
	limit := d.cfg.DrainTimeout + 10*time.Second
	select {
	case <-d.done:
	case <-time.After(limit):
		t.Fatalf("sbc did not exit within %v of SIGTERM", limit)
	}
	if d.code != 0 {
		t.Errorf("sbc exited %d (%v); want 0", d.code, d.waited)
	}
	st := d.find(func(l logLine) bool { return l.msg() == "stopped" })
	if len(st) != 1 {
		t.Fatalf("sbc logged %d \"stopped\" lines; want 1", len(st))
	}
	s := st[0]
	free, ok1 := s.num("free_port_pairs")
	total, ok2 := s.num("total_port_pairs")
	if !ok1 || !ok2 || free != total || total == 0 {
		t.Errorf("media ports leaked: %v; want free_port_pairs == total_port_pairs > 0", s)
	}
	if active, ok := s.num("active_calls"); !ok || active != 0 {
		t.Errorf("stopped with active calls: %v; want active_calls 0", s)
	}
	if errs := d.find(func(l logLine) bool { return l.str("level") == "ERROR" }); len(errs) > 0 {
		t.Errorf("sbc logged %d errors, first: %v", len(errs), errs[0])
	}
	return s
}
