//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestNetlab runs the harness as make bench does with -netlab: built, run
// as root across the lab, the daemon with its kernel fast path and the
// bare forwarder as targets, a flood at closed media ports on top. Every
// packet must arrive, the daemon's must be relayed by the kernel (but the
// first of each stream), and the flood must be sent.
func TestNetlab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("-netlab needs root (network namespaces, veths, BPF), as make test runs")
	}
	dir := t.TempDir()
	bench, sbc := filepath.Join(dir, "sbc-bench"), filepath.Join(dir, "sbc")
	for bin, pkg := range map[string]string{bench: "sbc/cmd/sbc-bench", sbc: "sbc/cmd/sbc"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(dir, "out.json")
	cmd := exec.Command(bench, "-netlab", "-target", "sbc-kernel,bare", "-sbc-bin", sbc, "-calls", "20",
		"-duration", "2s", "-flood-pps", "20000", "-json", out, "-quiet")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sbc-bench -netlab: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []result `json:"runs"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2: %s", len(rep.Runs), b)
	}
	for _, r := range rep.Runs {
		if r.Sent != 4000 || r.Lost != 0 || r.Misrouted != 0 {
			t.Errorf("%s: sent %d, lost %d, misrouted %d; want 4000 sent, none lost or misrouted", r.Target, r.Sent, r.Lost, r.Misrouted)
		}
		if r.Flood == nil || r.Flood.Sent < 30000 {
			t.Errorf("%s: flood %+v; want about 40,000 packets sent", r.Target, r.Flood)
		}
		if r.Machine.CPUSeconds <= 0 {
			t.Errorf("%s: machine CPU not measured", r.Target)
		}
	}
	k := rep.Runs[0]
	if c := k.Counters; k.Target != "sbc-kernel" || c == nil || c.Forwarded != 4000 || c.Kernel < 3800 {
		t.Errorf("sbc-kernel counters %+v; want all 4000 forwarded, nearly all by the kernel", k.Counters)
	}
}
