//go:build linux

package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// proc(5): pid (comm) state ppid ... utime(14) stime(15) ...; comm may
	// hold spaces and parentheses.
	fields := func(utime, stime string) string {
		f := []string{"S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", utime, stime, "0", "0", "20", "0", "9", "0", "1234"}
		return strings.Join(f, " ")
	}
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "4242 (sbc) " + fields("250", "130") + "\n", 3800 * time.Millisecond, false},
		{"odd name", "4242 (a b) (c)) " + fields("1", "2"), 30 * time.Millisecond, false},
		{"no parenthesis", "4242 sbc " + fields("1", "2"), 0, true},
		{"too short", "4242 (sbc) S 1 2 3", 0, true},
		{"not a number", "4242 (sbc) " + fields("x", "2"), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"status", "Name:\tsbc\nVmPeak:\t  99999 kB\nVmRSS:\t   34816 kB\nRssAnon:\t 20000 kB\n", 34816, false},
		{"last line without newline", "Name:\tsbc\nVmRSS:\t12 kB", 12, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, true},
		{"bad unit", "VmRSS:\t12 MB\n", 0, true},
		{"bad number", "VmRSS:\tx kB\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRSS([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseRSS = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestProcOfSelf(t *testing.T) {
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1000 {
		t.Errorf("procRSS(self) = %d KiB, %v; want a few MiB", rss, err)
	}
	// Burn some CPU so both readings move.
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("procCPU(self) = %v, %v; want > 0", cpu, err)
	}
	if self := selfCPU(); self < cpu-20*time.Millisecond {
		t.Errorf("getrusage says %v, /proc %v: they disagree", self, cpu)
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("procCPU of a pid that does not exist: no error")
	}
}

func TestParseCPUTimes(t *testing.T) {
	in := "cpu  100 5 50 800 10 3 2 30 0 0\ncpu0 50 2 25 400 5 1 1 15 0 0\n"
	got, err := parseCPUTimes([]byte(in))
	if err != nil || got != (cpuTimes{busy: 160, idle: 810, steal: 30}) {
		t.Fatalf("parseCPUTimes = %+v, %v; want busy 160 idle 810 steal 30", got, err)
	}
	later := cpuTimes{busy: 160 + 150, idle: 810 + 40, steal: 30 + 10}
	if b, i, s := got.share(later); b != 75 || i != 20 || s != 5 {
		t.Errorf("share = %v %v %v; want 75 20 5", b, i, s)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("parseCPUTimes(%q): no error", bad)
		}
	}
	if m := machineCPU(); m.busy+m.idle == 0 {
		t.Error("machineCPU: nothing read from /proc/stat")
	}
}
