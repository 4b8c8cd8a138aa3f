//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"sbc/control"
	"sbc/firewall"
	"sbc/sbc"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/freeport"
	"sbc/sbc/sbctest/logtail"
)

// sbcTarget runs the sbc daemon as a child process with a config written for
// the run, and reads its JSON log: "listening" when it is up, "call ended"
// for its own packet counters, "stopped" for the ports it got back.
type sbcTarget struct {
	bin     string // daemon binary; built into a temporary dir when empty
	race    bool   // build with -race
	ip      netip.Addr
	portMin int       // first media port
	logCopy io.Writer // every daemon log line also goes here, when set
	drain   time.Duration
	// steering is the daemon's media.steering: "auto", "on" or "off";
	// workers its media.workers (0: one per CPU).
	steering string
	workers  int
	// label is the target's name ("sbc", "sbc-kernel"); fastPath its
	// media.fast_path and interfaces its media.interfaces; netns the
	// network namespace it runs in ("": this one), where it listens on
	// sipPort (0: a free one).
	label      string
	fastPath   string
	interfaces []string
	netns      string
	sipPort    int

	built   string // temporary dir of a binary we built, removed by cleanup
	cmd     *exec.Cmd
	sip     netip.AddrPort
	exited  chan struct{}
	waitErr error
	tail    logtail.Tail // for error messages

	mu      sync.Mutex
	up      chan struct{} // closed at the first "listening" line
	upOnce  sync.Once
	rep     relayReport
	stopped bool // the "stopped" line was read
}

// sbcMediaSlack is how many port pairs beyond 2 per call the range has,
// so that pairs another process holds do not fail the run.
const sbcMediaSlack = 32

func newSBCTarget(bin string, race bool, portMin int, logCopy io.Writer) *sbcTarget {
	return &sbcTarget{bin: bin, race: race, ip: netip.MustParseAddr("127.0.0.1"), portMin: portMin,
		logCopy: logCopy, drain: 5 * time.Second, steering: "auto", label: "sbc", fastPath: "off"}
}

func (t *sbcTarget) name() string { return t.label }

// build compiles the daemon once per process, unless a binary was given.
func (t *sbcTarget) build(ctx context.Context) error {
	if t.bin != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "sbc-bench-bin-")
	if err != nil {
		return fmt.Errorf("build sbc: %w", err)
	}
	bin := filepath.Join(dir, "sbc")
	args := []string{"build", "-o", bin}
	if t.race {
		args = append(args, "-race")
	}
	// The import path works from anywhere inside the module.
	out, err := exec.CommandContext(ctx, "go", append(args, "sbc/cmd/sbc")...).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("build sbc (run from inside the sbc module, or pass -sbc-bin): go build: %w\n%s", err, out)
	}
	t.bin, t.built = bin, dir
	return nil
}

// cleanup removes a binary build made.
func (t *sbcTarget) cleanup() {
	if t.built != "" {
		os.RemoveAll(t.built)
		t.built, t.bin = "", ""
	}
}

// portRange sizes the media range for calls: two pairs per call (one per
// leg), plus slack.
func (t *sbcTarget) portRange(calls int) (lo, hi int, err error) {
	pairs := 2*calls + sbcMediaSlack
	lo = t.portMin
	hi = lo + 2*pairs - 1
	if hi > 65535 {
		return 0, 0, fmt.Errorf("%d calls need %d media ports from %d, past 65535: lower -sbc-port-min or -calls", calls, 2*pairs, lo)
	}
	return lo, hi, nil
}

func (t *sbcTarget) config(e env, sipPort, portMin, portMax int) string {
	caller := sbctest.Trunk{Name: "a", Addr: e.uacAddr}
	if e.srtp != "" {
		// The caller's leg SRTP, the callee's plain: the relay bridges.
		caller.Media = sbc.MediaPolicy{SRTP: sbc.SRTPMandatory, Suites: []string{e.srtp}}
	}
	return sbctest.DaemonConfig{
		LogLevel:  "info",
		UserAgent: "sbc-bench-target",
		IP:        t.ip,
		SIPPort:   sipPort,
		PortMin:   portMin,
		PortMax:   portMax,
		// Far beyond any run: a stream is never silent that long in a bench.
		MediaTimeout: time.Hour,
		Steering:     t.steering,
		Workers:      t.workers,
		FastPath:     t.fastPath,
		Interfaces:   t.interfaces,
		RingTimeout:  60 * time.Second,
		DrainTimeout: t.drain,
		Caller:       caller,
		Callee:       sbctest.Trunk{Name: "b", Addr: e.uasAddr},
		// The control plane's store in the run's directory.
		Control: control.Config{DataDir: filepath.Join(e.workDir, "control")},
	}.TOML()
}

func (t *sbcTarget) start(ctx context.Context, e env) error {
	if err := t.build(ctx); err != nil {
		return err
	}
	lo, hi, err := t.portRange(e.calls)
	if err != nil {
		return err
	}
	port := t.sipPort
	if port == 0 {
		if port, err = freeport.UDPOutside(t.ip, lo, hi); err != nil {
			return err
		}
	}
	path := filepath.Join(e.workDir, "sbc.toml")
	if err := os.WriteFile(path, []byte(t.config(e, port, lo, hi)), 0o644); err != nil {
		return fmt.Errorf("write sbc config: %w", err)
	}
	t.sip = netip.AddrPortFrom(t.ip, uint16(port))
	t.rep, t.stopped, t.tail = relayReport{Counted: true, Source: `"call ended" log lines`, ExitCode: -1, EndedBy: map[string]int{}}, false, logtail.Tail{}
	t.up, t.upOnce, t.exited, t.waitErr = make(chan struct{}), sync.Once{}, make(chan struct{}), nil

	t.cmd = inNetns(t.netns, t.bin, "run", "-config", path)
	// Should the harness die, the kernel kills the daemon too.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.cmd.Stdout = io.Discard
	stderr, err := t.cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("start sbc: %w", err)
	}
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start sbc %s: %w", t.bin, err)
	}
	go t.read(stderr) // ends when the daemon exits and closes stderr

	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-t.up:
		return nil
	case <-t.exited:
		return fmt.Errorf("sbc exited before listening (%v)%s", t.waitErr, t.tail.String())
	case <-timer.C:
		return fmt.Errorf("sbc not listening within 10s%s", t.tail.String())
	case <-ctx.Done():
		return fmt.Errorf("start sbc: %w", context.Cause(ctx))
	}
}

// read consumes the daemon's log until it exits, then reaps it.
func (t *sbcTarget) read(r io.Reader) {
	logtail.Scan(r, t.line)
	t.waitErr = t.cmd.Wait()
	t.mu.Lock()
	t.rep.ExitCode = t.cmd.ProcessState.ExitCode()
	t.mu.Unlock()
	close(t.exited)
}

// logLine is the part of a daemon JSON log line the harness reads.
type logLine struct {
	Level   string  `json:"level"`
	Msg     string  `json:"msg"`
	Error   string  `json:"error"`
	EndedBy string  `json:"ended_by"`
	AtoB    *uint64 `json:"a_to_b_rtp_packets"`
	BtoA    *uint64 `json:"b_to_a_rtp_packets"`
	Dropped *uint64 `json:"dropped_packets"`
	AtoBK   *uint64 `json:"a_to_b_kernel_packets"`
	SRTP    *uint64 `json:"srtp_auth_failures"`
	BtoAK   *uint64 `json:"b_to_a_kernel_packets"`
	Free    *int    `json:"free_port_pairs"`
	Total   *int    `json:"total_port_pairs"`
}

func (t *sbcTarget) line(s string) {
	if t.logCopy != nil {
		fmt.Fprintln(t.logCopy, s)
	}
	t.tail.Add(s)
	var l logLine
	if json.Unmarshal([]byte(s), &l) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch l.Level {
	case "ERROR":
		t.rep.Errors++
		if t.rep.FirstError == "" {
			t.rep.FirstError = s
		}
	case "WARN":
		t.rep.Warnings++
	}
	switch l.Msg {
	case "listening":
		t.upOnce.Do(func() { close(t.up) })
	case "call ended":
		t.rep.CallsEnded++
		t.rep.EndedBy[l.EndedBy]++
		t.rep.Forwarded += deref(l.AtoB) + deref(l.BtoA)
		t.rep.Dropped += deref(l.Dropped)
		t.rep.Kernel += deref(l.AtoBK) + deref(l.BtoAK)
		t.rep.SRTPAuthFailures += deref(l.SRTP)
	case "stopped":
		if l.Free != nil && l.Total != nil {
			t.stopped = true
			t.rep.PortsChecked = true
			t.rep.FreePairs, t.rep.TotalPairs = *l.Free, *l.Total
			t.rep.LeakedPairs = *l.Total - *l.Free
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (t *sbcTarget) sipAddr() netip.AddrPort { return t.sip }

func (t *sbcTarget) pid() int {
	if t.cmd == nil || t.cmd.Process == nil {
		return 0
	}
	return t.cmd.Process.Pid
}

func (t *sbcTarget) died() <-chan struct{} { return t.exited }

// stop sends SIGTERM and waits for the exit and its "stopped" line; at
// ctx's end it kills the daemon. A daemon that exited before stop was
// called is an error.
func (t *sbcTarget) stop(ctx context.Context) (relayReport, error) {
	if t.cmd == nil || t.cmd.Process == nil {
		return relayReport{}, nil
	}
	var early error
	select {
	case <-t.exited:
		early = fmt.Errorf("sbc exited by itself (%v)", t.waitErr)
	default:
		if err := t.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			early = fmt.Errorf("signal sbc: %w", err)
		}
	}
	var killed bool
	select {
	case <-t.exited:
	case <-ctx.Done():
		t.cmd.Process.Kill()
		killed = true
		<-t.exited         // a killed process is always reaped
		if t.netns == "" { // a lab's namespace goes with its tables
			firewall.RemoveSIPGuard(t.sip.Port()) // a killed daemon's is left hooked on input
		}
	}
	t.mu.Lock()
	rep, stopped := t.rep, t.stopped
	t.mu.Unlock()
	t.cmd = nil
	switch {
	case early != nil:
		return rep, fmt.Errorf("%w%s", early, t.tail.String())
	case killed:
		return rep, fmt.Errorf("sbc did not exit after SIGTERM in time: killed%s", t.tail.String())
	case rep.ExitCode != 0:
		return rep, fmt.Errorf("sbc exited with status %d after SIGTERM%s", rep.ExitCode, t.tail.String())
	case !stopped:
		return rep, fmt.Errorf("sbc exited without its \"stopped\" line%s", t.tail.String())
	}
	return rep, nil
}
