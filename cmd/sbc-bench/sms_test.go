//go:build linux

package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestSMSFlags(t *testing.T) {
	tests := []struct {
		args      string
		shouldErr string // part of the error; "" = valid
	}{
		{"", ""},
		{"-messages 200 -clients 4 -sms-per-second 500 -timeout 30s -quiet -json out.json", ""},
		{"-messages 0", "-messages 0: want 1 to"},
		{"-messages 4000001", "want 1 to 4000000"},
		{"-clients 0", "-clients 0: want 1 to 1024"},
		{"-sms-per-second 10001", "want 1 to 10000"},
		{"-timeout 0s", "want > 0"},
		{"extra", "unexpected argument"},
		{"-no-such-flag", "not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			var stderr strings.Builder
			_, err := parseSMSFlags(strings.Fields(tc.args), &stderr)
			switch {
			case tc.shouldErr == "" && err != nil:
				t.Errorf("error %v; want none", err)
			case tc.shouldErr != "" && (err == nil || !strings.Contains(err.Error(), tc.shouldErr)):
				t.Errorf("error %v; want one containing %q", err, tc.shouldErr)
			}
		})
	}
	if code := run(t.Context(), []string{"sms", "-clients", "0"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("sms -clients 0: exit %d; want %d", code, exitUsage)
	}
}

// TestSMS runs the mode for 200 messages through the real daemon to a
// sipp carrier: every message accepted and sent, the report's numbers
// filled in, and nothing left behind (processes, goroutines, temporary
// directories).
func TestSMS(t *testing.T) {
	if testing.Short() {
		t.Skip("sms through the real daemon to sipp: skipped in -short mode")
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatal("sipp is not in PATH: run make deps (make test does)")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the run's directory and the daemon's build
	out := filepath.Join(t.TempDir(), "sms.json")
	var stdout, stderr strings.Builder
	code := run(t.Context(), []string{"sms", "-messages", "200", "-clients", "8", "-quiet", "-json", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != exitOK {
		t.Fatalf("exit %d; want %d", code, exitOK)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep smsReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"every message accepted", rep.Accepted == 200 && rep.Refused == 0},
		{"every message sent in the store", rep.AllSent && rep.Statuses["sent"] == 200},
		{"the carrier answered all and exited 0", rep.CarrierExit == 0 && rep.CarrierSeconds > 0},
		{"rates and latencies measured", rep.AcceptPerSec > 0 && rep.DeliveryPerSec > 0 && rep.LatencyP50Ms > 0 && rep.LatencyP99Ms >= rep.LatencyP50Ms},
		{"delivery timed from the store", rep.DeliverySeconds > 0},
		{"no daemon error", rep.DaemonErrors == 0},
	} {
		if !c.ok {
			t.Errorf("%s: no; report %s", c.what, b)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
}
