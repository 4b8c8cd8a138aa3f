//go:build linux

package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// sweepRuns are the runs of a two-target sweep as -sweep makes them: in
// order, with a step run again (sbc at 400) whose second run counts.
func sweepRuns() []*result {
	run := func(target string, calls int, loss, p99 float64, cpu, mem float64) *result {
		r := &result{Target: target, Calls: calls, LossPct: loss, Relay: &relayUsage{CPUPerPacketUs: cpu, MemPerCallKiB: mem}}
		r.LatencyUs.P99 = p99
		return r
	}
	return []*result{
		run("sbc", 100, 0, 300, 10, 50), run("sbc", 200, 0, 600, 10, 50), run("sbc", 400, 0.5, 3000, 12, 50),
		run("sbc", 400, 0.05, 900, 11, 50), run("sbc", 800, 2, 9000, 14, 50),
		run("rtpengine", 100, 0, 200, 8, 40), run("rtpengine", 200, 0, 400, 8, 40), run("rtpengine", 400, 0.01, 800, 8, 40),
		run("rtpengine", 800, 0.02, 950, 9, 40),
	}
}

func TestSweepSeries(t *testing.T) {
	s := sweepSeries(sweepRuns())
	if len(s) != 2 || s[0].target != "sbc" || s[1].target != "rtpengine" {
		t.Fatalf("series %+v; want sbc then rtpengine", s)
	}
	var calls []int
	for _, r := range s[0].steps {
		calls = append(calls, r.Calls)
	}
	if len(calls) != 4 || calls[2] != 400 || s[0].steps[2].LossPct != 0.05 {
		t.Errorf("sbc steps %v, at 400 loss %v; want 100 200 400 800, the second run at 400", calls, s[0].steps[2].LossPct)
	}
}

func TestPlotWritesPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sweep.png")
	if err := writePlot(path, sweepRuns()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 400 {
		t.Errorf("image %v; want one large enough to read", b)
	}
	if err := writePlot(path, nil); err == nil {
		t.Error("a plot of no run: no error")
	}
}
