//go:build linux

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/firewall"
	"sbc/media"
	"sbc/sbc"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/logtail"
)

// The daemon and the carrier of an sms run, and what is read of the store
// once the daemon has stopped.

// smsDaemon is the sbc daemon as a child process. Its JSON log (stderr)
// tells where the API listens, when the queue is up ("started", logged
// after the API starts listening), and has a line per message that left
// the queue: "message sent" (its status sent or failed) or "message not
// sent".
type smsDaemon struct {
	cmd     *exec.Cmd
	sip     netip.AddrPort
	logCopy *os.File
	exited  chan struct{}
	waitErr error
	tail    logtail.Tail

	up     chan struct{} // closed at "started"
	upOnce sync.Once

	finished atomic.Int64 // messages that left the queue, sent or not
	sent     atomic.Int64 // of them, taken by the carrier (2xx)
	errors   atomic.Int64
	warnings atomic.Int64

	mu         sync.Mutex
	apiAddr    string // "api listening"
	apiCert    string // "api certificate made (self-signed)": its file
	firstError string
}

// smsDaemonConfig is the daemon's sbc.toml: one UDP listener, the carrier
// trunk alone, the route every outbound message takes (prefix "+", empty
// from), the API on a free loopback port, no media fast path or steering
// (no call is made), and the store in dataDir.
func smsDaemonConfig(sip, carrier netip.AddrPort, dataDir string) string {
	api := "127.0.0.1:0"
	return sbctest.DaemonConfig{
		LogLevel:  "info",
		UserAgent: "sbc-bench-sms",
		IP:        sip.Addr(),
		SIPPort:   int(sip.Port()),
		// Unused: no call is made. Out of the way of the other modes'.
		PortMin:      48000,
		PortMax:      48063,
		Steering:     media.SteeringOff,
		FastPath:     media.FastPathOff,
		DrainTimeout: 2 * time.Second,
		Caller:       sbctest.Trunk{Name: "unused"},
		Callee:       sbctest.Trunk{Name: "carrier", Addr: carrier},
		Control:      control.Config{DataDir: dataDir, API: control.APIConfig{Listen: &api}},
		Edit: func(c *sbc.Config) {
			c.Trunks = slices.DeleteFunc(c.Trunks, func(t sbc.Trunk) bool { return t.Name == "unused" })
			c.Routes = []sbc.Route{{Prefix: "+", To: "carrier"}}
		},
	}.TOML()
}

// smsAccount is the account messages are sent from: its SID and auth
// token (HTTP Basic), its SMS-enabled number, and the store holding it.
type smsAccount struct {
	sid, token, number string
	storePath          string
}

// newSMSAccount makes, in the store in dataDir (before the daemon opens
// it), an account sending at most rate messages a second with one
// SMS-enabled number.
func newSMSAccount(ctx context.Context, dataDir string, rate int) (smsAccount, error) {
	cfg := control.Config{DataDir: dataDir}
	cfg.SetDefaults()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return smsAccount{}, fmt.Errorf("sms account: %w", err)
	}
	st, err := store.Open(ctx, cfg.StorePath())
	if err != nil {
		return smsAccount{}, fmt.Errorf("sms account: %w", err)
	}
	defer st.Close()
	p := control.New(cfg, st, slog.New(slog.DiscardHandler))
	name, sms := "sbc-bench sms", true
	a, token, err := p.CreateAccount(ctx, "sbc-bench", control.AccountSpec{Name: &name, SMSPerSecond: &rate})
	if err != nil {
		return smsAccount{}, fmt.Errorf("sms account: %w", err)
	}
	acct := smsAccount{sid: a.SID, token: token, number: "+14155550100", storePath: cfg.StorePath()}
	if _, err := p.CreateNumber(ctx, "sbc-bench", a.SID, control.NumberSpec{PhoneNumber: &acct.number, SMS: &sms}); err != nil {
		return smsAccount{}, fmt.Errorf("sms number: %w", err)
	}
	return acct, nil
}

// startSMSDaemon starts bin with the config at path and waits for its
// queue to be up.
func startSMSDaemon(ctx context.Context, bin, path string, sip netip.AddrPort, logPath string) (*smsDaemon, error) {
	logCopy, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start sbc: %w", err)
	}
	d := &smsDaemon{sip: sip, logCopy: logCopy, exited: make(chan struct{}), up: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-config", path)
	// Should the harness die, the kernel kills the daemon too.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.cmd.Stdout = io.Discard
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		logCopy.Close()
		return nil, fmt.Errorf("start sbc: %w", err)
	}
	if err := d.cmd.Start(); err != nil {
		logCopy.Close()
		return nil, fmt.Errorf("start sbc %s: %w", bin, err)
	}
	go func() { // ends when the daemon exits and closes stderr
		logtail.Scan(stderr, d.line)
		d.waitErr = d.cmd.Wait()
		logCopy.Close()
		close(d.exited)
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-d.up:
		if d.api() == "" {
			d.kill()
			return nil, fmt.Errorf("sbc started without an \"api listening\" line%s", d.tail.String())
		}
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("sbc exited before starting (%v)%s", d.waitErr, d.tail.String())
	case <-timer.C:
		d.kill()
		return nil, fmt.Errorf("sbc not started within 10s%s", d.tail.String())
	case <-ctx.Done():
		d.kill()
		return nil, fmt.Errorf("start sbc: %w", context.Cause(ctx))
	}
}

// smsLogLine is the part of a daemon log line the run reads.
type smsLogLine struct {
	Level   string `json:"level"`
	Msg     string `json:"msg"`
	Address string `json:"address"`
	File    string `json:"file"`
	Status  string `json:"status"`
}

func (d *smsDaemon) line(s string) {
	fmt.Fprintln(d.logCopy, s)
	d.tail.Add(s)
	var l smsLogLine
	if json.Unmarshal([]byte(s), &l) != nil {
		return
	}
	switch l.Level {
	case "ERROR":
		if d.errors.Add(1) == 1 {
			d.mu.Lock()
			d.firstError = s
			d.mu.Unlock()
		}
	case "WARN":
		d.warnings.Add(1)
	}
	switch l.Msg {
	case "message sent":
		if l.Status == "sent" {
			d.sent.Add(1)
		}
		d.finished.Add(1)
	case "message not sent":
		d.finished.Add(1)
	case "api listening":
		d.mu.Lock()
		d.apiAddr = l.Address
		d.mu.Unlock()
	case "api certificate made (self-signed)", "api certificate (self-signed)":
		d.mu.Lock()
		d.apiCert = l.File
		d.mu.Unlock()
	case "started":
		d.upOnce.Do(func() { close(d.up) })
	}
}

func (d *smsDaemon) api() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apiAddr
}

func (d *smsDaemon) certFile() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apiCert
}

func (d *smsDaemon) firstErr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firstError
}

func (d *smsDaemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM (the queue stops once the messages in flight have
// their answers; their rows are written) and waits up to grace for the
// exit, then kills the daemon.
func (d *smsDaemon) stop(grace time.Duration) error {
	select {
	case <-d.exited:
		return fmt.Errorf("sbc exited by itself (%v)%s", d.waitErr, d.tail.String())
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal sbc: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-d.exited:
		if d.waitErr != nil {
			return fmt.Errorf("sbc after SIGTERM: %v%s", d.waitErr, d.tail.String())
		}
		return nil
	case <-timer.C:
		d.kill()
		return fmt.Errorf("sbc did not exit within %v of SIGTERM: killed%s", grace, d.tail.String())
	}
}

// kill ends the daemon at once, if it still runs, and removes the SIP
// guard a killed daemon leaves hooked on input.
func (d *smsDaemon) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.exited
	firewall.RemoveSIPGuard(d.sip.Port())
}

// smsCarrier is the carrier: sipp answering every MESSAGE 200, exiting
// after the run's count of them.
type smsCarrier struct {
	cmd      *exec.Cmd
	done     chan struct{}
	exitAt   time.Time
	exitCode int
	cpu      time.Duration // user+system over its life, once done
}

// sippBufferSize is the socket buffer the carrier asks for: sipp's
// default (64 KiB) drops a burst whenever its one thread is not
// scheduled, and each drop is a retransmission charged to the daemon.
const sippBufferSize = 4 << 20

func startCarrier(scenario string, local netip.AddrPort, mediaPort, messages int, timeout time.Duration, dir string) (*smsCarrier, error) {
	out, err := os.Create(filepath.Join(dir, "sipp.log"))
	if err != nil {
		return nil, fmt.Errorf("start sipp: %w", err)
	}
	defer out.Close() // the child has its own copy
	ip := local.Addr().String()
	c := &smsCarrier{done: make(chan struct{}), exitCode: -1}
	c.cmd = exec.Command("sipp",
		"-sf", scenario,
		"-i", ip, "-p", strconv.Itoa(int(local.Port())), "-bind_local",
		"-mi", ip, "-mp", strconv.Itoa(mediaPort),
		"-m", strconv.Itoa(messages),
		"-nostdin",
		"-timeout", fmt.Sprintf("%dms", timeout.Milliseconds()), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "sipp-errors.log"),
		// A busy machine must not make sipp abort on its own watchdog.
		"-watchdog_minor_threshold", "2000", "-watchdog_major_threshold", "10000",
		"-buff_size", strconv.Itoa(sippBufferSize),
	)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sipp: %w", err)
	}
	go func() {
		c.cmd.Wait()
		c.exitAt = time.Now()
		c.exitCode = c.cmd.ProcessState.ExitCode()
		c.cpu = c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
		close(c.done)
	}()
	return c, nil
}

func (c *smsCarrier) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill ends sipp at once, if it still runs.
func (c *smsCarrier) kill() {
	if !c.exited() {
		c.cmd.Process.Kill()
		<-c.done
	}
}

// smsRows counts account's outbound messages in the SQLite store at path
// by status, and returns the latest time one was sent (the carrier's 2xx).
// The daemon has stopped: the store is opened read-only.
func smsRows(ctx context.Context, path, account string) (map[string]int, time.Time, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"mode": {"ro"}}.Encode())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT status, COUNT(*), MAX(date_sent) FROM messages
		WHERE account_sid = ? AND direction = ? GROUP BY status`, account, store.DirectionOutboundAPI)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("count messages: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	var last int64
	for rows.Next() {
		var status string
		var n int
		var sent int64 // micros since the epoch; 0 until sent
		if err := rows.Scan(&status, &n, &sent); err != nil {
			return nil, time.Time{}, fmt.Errorf("count messages: %w", err)
		}
		counts[strings.ToLower(status)] = n
		last = max(last, sent)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("count messages: %w", err)
	}
	if last == 0 {
		return counts, time.Time{}, nil
	}
	return counts, time.UnixMicro(last), nil
}
