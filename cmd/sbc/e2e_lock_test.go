package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sbc/sbc/sbctest"
)

// TestE2EStateDirLocked: a second daemon given the calls.state_dir of a
// running one refuses to start (it would take the first one's calls over)
// and says which directory, after waiting a moment for the first to exit.
func TestE2EStateDirLocked(t *testing.T) {
	bin := buildSBC(t)
	dir := t.TempDir()
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) { c.StateDir = dir }, false)

	cfg := e.cfg
	cfg.SIPPort = freeSIPPort(t, sbcIP)
	cfg.PortMin += 2
	path := filepath.Join(t.TempDir(), "sbc.toml")
	if err := os.WriteFile(path, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "-config", path)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFail {
		t.Fatalf("second daemon on the same state_dir: %v; want exit %d\n%s", err, exitFail, stderr.String())
	}
	for _, want := range []string{"calls.state_dir", dir, "in use by another sbc process"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("second daemon's log lacks %q:\n%s", want, stderr.String())
		}
	}
	// The first one is unharmed, and once it has stopped the directory is
	// free again.
	e.sbc.stop(t)
	f, err := lockDir(dir, 0)
	if err != nil {
		t.Fatalf("state_dir still locked after the daemon stopped: %v", err)
	}
	f.Close()
}

// TestE2EListenFailureKeepsCalls: a daemon that took a call over and then
// cannot listen (its SIP port is taken) exits leaving the call's record
// for the next run, instead of ending it half-way.
func TestE2EListenFailureKeepsCalls(t *testing.T) {
	bin := buildSBC(t)
	dir := t.TempDir()
	cfg := testDaemonConfig(t)
	cfg.StateDir = dir
	cfg.PortMin = 20000 + 2*rand.IntN(4900)
	cfg.PortMax = cfg.PortMin + 199
	a, b := cfg.Caller.Addr.String(), cfg.Callee.Addr.String()
	rec := fmt.Sprintf(`{"id":"c0ffee","from_trunk":"a","to_trunk":"b","answered":%q,"offered":1,
"a":{"transport":"udp","call_id":"a-1","local_tag":"s1","remote_tag":"a1","local":"sip:200@%s","remote":"sip:a@%s","target":"sip:a@%s","local_seq":1,"remote_seq":1},
"b":{"transport":"udp","call_id":"b-1","local_tag":"s2","remote_tag":"b1","local":"sip:a@%s","remote":"sip:200@%s","target":"sip:200@%s","local_seq":1,"remote_seq":0},
"streams":[{"ports":[%d,%d]}]}`, time.Now().Format(time.RFC3339), sbcIP, callerIP, a, sbcIP, calleeIP, b, cfg.PortMin, cfg.PortMin+2)
	file := filepath.Join(dir, "c0ffee.json")
	if err := os.WriteFile(file, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort))))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := filepath.Join(t.TempDir(), "sbc.toml")
	if err := os.WriteFile(path, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "-config", path)
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFail {
		t.Fatalf("daemon with its SIP port taken: %v; want exit %d\n%s", err, exitFail, stderr.String())
	}
	for _, want := range []string{`"taken_over":1`, "exiting with the calls of the previous run left for the next one"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the call's record is gone: %v", err)
	}
}
