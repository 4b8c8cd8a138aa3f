//go:build linux

package main

import (
	"io"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		args      string
		shouldErr string // part of the error; "" = valid
	}{
		{"", ""},
		{"-target direct -calls 500 -duration 10s", ""},
		{"-target sbc,direct -sweep -max-calls 800", ""},
		{"-target sbc,rtpengine,direct -calls 500", ""},
		{"-sweep -target sbc,rtpengine -plot sweep.png", ""},
		{"-target udp", "want sbc, rtpengine, direct, sbc-kernel or bare"},
		{"-target sbc,sbc", "sbc twice"},
		{"-plot sweep.png", "add -sweep"},
		{"-rtpengine-ip 127.0.0.10", "other than"},
		{"-rtpengine-port-min 80", "even port"},
		{"-calls 0", "-calls 0"},
		{"-duration 500ms", "at least 1s"},
		{"-rate 0", "-rate"},
		{"-sbc-port-min 20001", "even port"},
		{"-sbc-ip 127.0.0.20", "other than"},
		{"-sbc-ip 10.0.0.1", "loopback"},
		{"-sweep -sweep-start 100 -max-calls 50", "start <= max"},
		{"-senders 0", "at least 1"},
		{"-send-batch 65", "want 0 (a write per packet) to 64"},
		{"-netlab -target sbc,sbc-kernel,bare,rtpengine -pass-p99 50us -flood-pps 200000", ""},
		{"-target sbc-kernel", "needs -netlab"},
		{"-target bare", "needs -netlab"},
		{"-sbc-fast-path on", "want off, auto, xdp or tc"},
		{"-kernel-hook generic", "want xdp or tc"},
		{"-pass-p99 0s", "want > 0"},
		{"-flood-pps -1", "want 0 to 2000000"},
		{"extra", "unexpected argument"},
		{"-no-such-flag", "not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			_, err := parseFlags(strings.Fields(tc.args), io.Discard)
			switch {
			case tc.shouldErr == "" && err != nil:
				t.Errorf("error %v; want none", err)
			case tc.shouldErr != "" && (err == nil || !strings.Contains(err.Error(), tc.shouldErr)):
				t.Errorf("error %v; want one containing %q", err, tc.shouldErr)
			}
		})
	}
}

func TestBadFlagsExit2(t *testing.T) {
	if code := run(t.Context(), []string{"-calls", "-1"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("exit %d; want %d", code, exitUsage)
	}
}

func TestRTPengineNotInstalled(t *testing.T) {
	var stderr strings.Builder
	code := run(t.Context(), []string{"-target", "sbc,rtpengine", "-rtpengine-bin", "/nonexistent/rtpengine"}, io.Discard, &stderr)
	if code != exitFail || !strings.Contains(stderr.String(), "rtpengine is not installed (Debian: apt-get install rtpengine-daemon)") {
		t.Errorf("exit %d, stderr %q; want 1 and the package named", code, stderr.String())
	}
}
