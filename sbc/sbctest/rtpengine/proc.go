//go:build linux

// Package rtpengine runs Sipwise's rtpengine media relay as a child process
// and drives it over its ng control protocol, as Kamailio's rtpengine module
// does: offer, answer, delete. It is meant for load tests on loopback: the
// daemon forwards in userspace only (no kernel module), reads no config
// file, and logs to its stderr, which the package reads.
package rtpengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sbc/sbc/sbctest/freeport"
	"sbc/sbc/sbctest/logtail"
)

// Config says how to start rtpengine.
type Config struct {
	Bin     string     // the daemon; "" is "rtpengine" in PATH
	IP      netip.Addr // its one media interface, and where the ng listener is
	NGPort  int        // UDP port of the ng listener; 0 picks a free one on IP
	PortMin int        // media port range, --port-min ..
	PortMax int        // .. --port-max; rtpengine takes 2 ports per stream end
	Threads int        // --num-threads; 0 leaves rtpengine's default
	Dir     string     // working directory; "" is the current one
	Netns   string     // network namespace to run in (ip netns exec); "": this one
	Log     io.Writer  // every log line also goes here, when set
	// OnLine, when set, gets every log line, from one goroutine.
	OnLine func(line string)
	// LogLevel is --log-level and ControlLogLevel --log-level-control
	// (the ng commands it gets): syslog levels 1-7; 0 leaves rtpengine's
	// default.
	LogLevel        int
	ControlLogLevel int
	// PIDFile, when set, is where rtpengine writes its pid (--pidfile).
	PIDFile string
	// OwnGroup starts rtpengine in a process group of its own, whose id is
	// its pid: the terminal's signals do not reach it, and the group's CPU
	// time can be read.
	OwnGroup bool
	// StartTimeout bounds the wait for the first pong; 0 is 10 s.
	StartTimeout time.Duration
}

// validate checks c without side effects.
func (c Config) validate() error {
	switch {
	case !c.IP.IsValid():
		return errors.New("rtpengine config: IP unset")
	case c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax < c.PortMin+3:
		return fmt.Errorf("rtpengine config: ports %d-%d, want a range of at least 4 ports within 1024-65535", c.PortMin, c.PortMax)
	case c.NGPort < 0 || c.NGPort > 65535:
		return fmt.Errorf("rtpengine config: ng port %d", c.NGPort)
	case c.Threads < 0:
		return fmt.Errorf("rtpengine config: %d threads", c.Threads)
	case c.LogLevel < 0 || c.LogLevel > 7 || c.ControlLogLevel < 0 || c.ControlLogLevel > 7:
		return fmt.Errorf("rtpengine config: log levels %d and %d, want 0 (the default) or a syslog level 1-7", c.LogLevel, c.ControlLogLevel)
	}
	return nil
}

// args is rtpengine's command line for c, listening for ng on ng.
func (c Config) args(ng netip.AddrPort) []string {
	a := []string{
		"--config-file=none", // not /etc/rtpengine/rtpengine.conf
		"--table=-1",         // userspace forwarding only
		"--foreground",
		"--log-stderr",
		"--interface=" + c.IP.String(),
		"--listen-ng=" + ng.String(),
		"--port-min=" + strconv.Itoa(c.PortMin),
		"--port-max=" + strconv.Itoa(c.PortMax),
		"--delete-delay=0", // a deleted call frees its ports at once
	}
	if c.Threads > 0 {
		a = append(a, "--num-threads="+strconv.Itoa(c.Threads))
	}
	if c.LogLevel > 0 {
		a = append(a, "--log-level="+strconv.Itoa(c.LogLevel))
	}
	if c.ControlLogLevel > 0 {
		a = append(a, "--log-level-control="+strconv.Itoa(c.ControlLogLevel))
	}
	if c.PIDFile != "" {
		a = append(a, "--pidfile="+c.PIDFile)
	}
	return a
}

// Proc is a running rtpengine and a Client of its ng listener. Its methods
// are safe for concurrent use. Stop it: until then the process runs (it is
// also killed should this process die, by PDEATHSIG).
type Proc struct {
	*Client
	cmd    *exec.Cmd
	ng     netip.AddrPort
	logw   io.Writer
	onLine func(string)
	exited chan struct{}
	err    error // of Wait, once exited is closed
	tail   logtail.Tail

	mu   sync.Mutex
	logs LogCounts
}

// LogCounts are the log lines rtpengine wrote, by level.
type LogCounts struct {
	Errors, Warnings int
	FirstError       string
}

// Start runs rtpengine with c and returns once it answers an ng ping. On
// any failure the process is killed before Start returns.
func Start(ctx context.Context, c Config) (*Proc, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	path, err := Find(c.Bin)
	if err != nil {
		return nil, err
	}
	port := c.NGPort
	if port == 0 {
		if port, err = freeport.UDP(c.IP); err != nil {
			return nil, err
		}
	}
	ng := netip.AddrPortFrom(c.IP, uint16(port))
	p := &Proc{ng: ng, logw: c.Log, onLine: c.OnLine, exited: make(chan struct{})}
	p.cmd = exec.Command(path, c.args(ng)...)
	if c.Netns != "" {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", c.Netns, path}, c.args(ng)...)...)
	}
	p.cmd.Dir = c.Dir
	p.cmd.Stdout = io.Discard
	// Should this process die, the kernel kills rtpengine too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: c.OwnGroup}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start rtpengine: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rtpengine %s: %w", path, err)
	}
	go p.read(stderr) // ends when rtpengine exits and closes stderr
	if p.Client, err = Dial(ng); err != nil {
		p.kill()
		return nil, err
	}
	if err := p.waitPong(ctx, c.StartTimeout); err != nil {
		p.kill()
		p.Client.Close()
		return nil, err
	}
	return p, nil
}

// Find returns the path of the daemon bin ("" is "rtpengine"), looked up
// in PATH unless it has a slash, or an error wrapping ErrNotInstalled.
func Find(bin string) (string, error) {
	if bin == "" {
		bin = "rtpengine"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	return path, nil
}

// waitPong pings until rtpengine answers. Its listener comes up a few
// milliseconds after exec, so each ping waits only briefly.
func (p *Proc) waitPong(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := p.Ping(pctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("start rtpengine: %w", context.Cause(ctx))
		}
		select {
		case <-p.exited:
			return fmt.Errorf("start rtpengine: exited before answering a ping (%v)%s", p.err, p.tail.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start rtpengine: no pong on %v within %v: %v%s", p.ng, timeout, err, p.tail.String())
		}
	}
}

// read consumes the log until rtpengine exits, then reaps it.
func (p *Proc) read(r io.Reader) {
	logtail.Scan(r, p.line)
	p.err = p.cmd.Wait()
	close(p.exited)
}

// line counts a log line by its level: rtpengine writes
// "[time] LEVEL: [subsystem] message" to stderr.
func (p *Proc) line(s string) {
	if p.logw != nil {
		fmt.Fprintln(p.logw, s)
	}
	if p.onLine != nil {
		p.onLine(s)
	}
	p.tail.Add(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, rest, _ := strings.Cut(s, "] ")
	level, _, _ := strings.Cut(rest, ":")
	switch level {
	case "ERR", "CRIT", "ALERT", "EMERG":
		p.logs.Errors++
		if p.logs.FirstError == "" {
			p.logs.FirstError = s[:min(len(s), 300)] // one line of a report
		}
	case "WARNING":
		p.logs.Warnings++
	}
}

// Logs returns what rtpengine has logged so far, counted by level.
func (p *Proc) Logs() LogCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs
}

// Pid is the daemon's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// NGAddr is where its ng listener is.
func (p *Proc) NGAddr() netip.AddrPort { return p.ng }

// Exited is closed when the process has ended, whatever the reason.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitCode is the process's exit status (-1 when killed by a signal), once
// it has exited.
func (p *Proc) ExitCode() (int, bool) {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), true
	default:
		return 0, false
	}
}

// Err is nil while the process runs. Once it has exited, Err says how,
// with its last log lines, wrapping ErrExited: before Stop, the process
// ended by itself.
func (p *Proc) Err() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%w by itself (%v)%s", ErrExited, p.err, p.tail.String())
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits for the exit; at ctx's end it kills the
// process. It returns once the process is gone. A process that had exited
// by itself, or that exits with an error status, is an error.
func (p *Proc) Stop(ctx context.Context) error {
	defer p.Client.Close()
	if err := p.Err(); err != nil {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.kill()
		return fmt.Errorf("stop rtpengine: %w", err)
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("stop rtpengine: no exit after SIGTERM (%v): killed%s", context.Cause(ctx), p.tail.String())
	}
	if p.err != nil {
		return fmt.Errorf("stop rtpengine: %w%s", p.err, p.tail.String())
	}
	return nil
}

// kill ends the process at once and waits until it is reaped.
func (p *Proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}
