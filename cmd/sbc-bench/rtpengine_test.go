//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The rtpengine target, against the real daemon: a small run with no
// loss, its pid measured, its counters read, and no rtpengine process left
// behind, whichever way the run ends.

func needRTPengine(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rtpengine"); err != nil {
		t.Skip("rtpengine is not in PATH (Debian: apt-get install rtpengine-daemon; make test installs it)")
	}
}

// testRTPengine is the target on a loopback address of its own, with
// ports clear of the 20000-40000 other tests here use.
func testRTPengine() *rtpengineTarget {
	return newRTPengineTarget("", netip.MustParseAddr("127.0.0.3"), 42000, nil)
}

// ourRTPengines lists the rtpengine processes this process started that
// still exist, zombies included.
func ourRTPengines() []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat") // the pattern is valid
	var pids []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := bytes.Fields(b[end+1:])
		if len(f) < 2 || string(b[open+1:end]) != "rtpengine" || string(f[1]) != strconv.Itoa(os.Getpid()) {
			continue
		}
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
		pids = append(pids, pid)
	}
	return pids
}

func TestLoadThroughRTPengine(t *testing.T) {
	if testing.Short() {
		t.Skip("load test through rtpengine: skipped in -short mode")
	}
	needRTPengine(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const calls, d = 10, 2 * time.Second
	res, err := runOnce(t.Context(), testConfig(calls, d), testRTPengine())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	newTable(&out).row(res)
	notes(&out, []*result{res})
	t.Logf("\n%s", out.String())

	checkCounts(t, res, calls, d)
	if res.Lost != 0 {
		t.Errorf("lost %d packets (%.3f %%); want none", res.Lost, res.LossPct)
	}
	if r := res.Relay; r == nil || r.CPUPerPacketUs <= 0 || r.RSSBeforeKiB <= 0 || r.RSSCallsKiB <= 0 {
		t.Errorf("relay usage %+v; want rtpengine's CPU and RSS read from /proc", r)
	}
	c := res.Counters
	if c == nil || !c.Counted {
		t.Fatalf("counters %+v; want rtpengine's, read with ng statistics", c)
	}
	// rtpengine counts what it received; the harness what arrived of it.
	if c.Forwarded < res.Received || c.Forwarded > res.Sent || c.Dropped != 0 {
		t.Errorf("rtpengine forwarded %d, dropped %d; harness sent %d, received %d", c.Forwarded, c.Dropped, res.Sent, res.Received)
	}
	if c.CallsEnded != calls || c.EndedBy["delete"] != calls {
		t.Errorf("rtpengine ended %d calls (%v); want %d, all by delete", c.CallsEnded, c.EndedBy, calls)
	}
	if !c.PortsChecked || c.LeakedPairs != 0 || c.FreePairs != c.TotalPairs || c.TotalPairs < 2*calls {
		t.Errorf("ports at exit: %d of %d pairs free (checked %v); want all of at least %d", c.FreePairs, c.TotalPairs, c.PortsChecked, 2*calls)
	}
	if c.ExitCode != 0 || c.Errors != 0 {
		t.Errorf("rtpengine exit %d, %d errors logged (first: %s)", c.ExitCode, c.Errors, c.FirstError)
	}
	if pids := ourRTPengines(); len(pids) > 0 {
		t.Errorf("rtpengine processes left: %v", pids)
	}
}

// TestRTPengineStoppedOnFailure: a run that ends early, because it was
// cancelled (Ctrl-C) or because rtpengine died, leaves no rtpengine behind.
func TestRTPengineStoppedOnFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rtpengine: skipped in -short mode")
	}
	needRTPengine(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name      string
		interrupt func(cancel context.CancelFunc, pid int)
		want      error
	}{
		{"cancelled", func(cancel context.CancelFunc, _ int) { cancel() }, context.Canceled},
		{"rtpengine killed", func(_ context.CancelFunc, pid int) { syscall.Kill(pid, syscall.SIGKILL) }, errTargetDied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			target := testRTPengine()
			// Interrupt the run a second into its media phase.
			interrupted := make(chan struct{})
			go func() {
				defer close(interrupted)
				time.Sleep(time.Second)
				for _, pid := range ourRTPengines() {
					tc.interrupt(cancel, pid)
				}
			}()
			start := time.Now()
			_, err := runOnce(ctx, testConfig(5, 5*time.Second), target)
			<-interrupted
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v; want %v", err, tc.want)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("ended after %v; want soon after the interruption, not at the end of the 5s media phase", took)
			}
			if pids := ourRTPengines(); len(pids) > 0 {
				t.Errorf("rtpengine processes left: %v", pids)
			}
		})
	}
}
