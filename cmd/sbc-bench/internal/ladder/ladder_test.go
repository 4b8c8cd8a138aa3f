//go:build linux

package ladder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// needPeers skips a test that runs the real systems when they are not
// installed (`make deps` installs them on Debian).
func needPeers(t *testing.T, names ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("ladder through real systems: skipped in -short mode")
	}
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not in PATH (make deps installs it)", n)
		}
	}
}

// TestLadderSBCAndKamailio climbs a short ladder (20 and 40 calls/s, 3 s
// steps, 0.5 s calls) through the sbc and through Kamailio + rtpengine in
// one run: every call succeeds, media is anchored (the probe's offer, and
// the per-call log lines of the sbc and of rtpengine), CPU and setup time
// are measured, and no process is left behind.
func TestLadderSBCAndKamailio(t *testing.T) {
	needPeers(t, "sipp", "kamailio", "rtpengine")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	cfg := Config{
		Systems: []string{SystemSBC, SystemKamailio},
		Start:   20, Step: 20, Max: 40,
		StepDuration: 3 * time.Second, CallDuration: 500 * time.Millisecond,
		WorkDir: dir,
	}
	var progress syncBuffer
	rep, err := Run(t.Context(), cfg, &progress)
	var table bytes.Buffer
	WriteTable(&table, rep)
	t.Logf("progress:\n%s\n%s", progress.String(), table.String())
	if err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(t, dir)

	if len(rep.Systems) != 2 {
		t.Fatalf("%d systems in the report; want 2", len(rep.Systems))
	}
	for i, wantOffer := range []string{"127.0.0.42:", "127.0.0.44:"} {
		s := rep.Systems[i]
		if !strings.HasPrefix(s.Offer, wantOffer) {
			t.Errorf("%s: the UAS got the offer's media at %q; want the relay's %s", s.System, s.Offer, wantOffer)
		}
		if s.MaxPassing != 40 || !s.ReachedMax || s.Error != "" {
			t.Errorf("%s: highest passing %d (top %v), error %q; want 40, the top", s.System, s.MaxPassing, s.ReachedMax, s.Error)
		}
		if len(s.Steps) != 2 {
			t.Fatalf("%s: %d steps; want 2 (20 and 40 calls/s)", s.System, len(s.Steps))
		}
		for _, st := range s.Steps {
			want := st.Rate * 3
			if st.Calls != want || st.Succeeded != want || st.Failed != 0 || st.UASFailed != 0 || !st.Pass {
				t.Errorf("%s %d/s: %d of %d calls succeeded, %d failed, %d at the uas; want all %d", s.System, st.Rate, st.Succeeded, st.Calls, st.Failed, st.UASFailed, want)
			}
			// The sbc logs each call's end, rtpengine each offer it anchors.
			if st.Counted != int64(want) {
				t.Errorf("%s %d/s: %d %s; want %d", s.System, st.Rate, st.Counted, s.Counted, want)
			}
			if st.CPUPerCallMs <= 0 || st.CPUSeconds <= 0 {
				t.Errorf("%s %d/s: cpu %.3f s, %.3f ms/call; want > 0", s.System, st.Rate, st.CPUSeconds, st.CPUPerCallMs)
			}
			if st.Setup.Samples != want || st.Setup.Mean <= 0 || st.Setup.Max < st.Setup.P99 || st.Setup.P99 < st.Setup.P50 {
				t.Errorf("%s %d/s: setup %+v; want %d samples, mean > 0, p50 <= p99 <= max", s.System, st.Rate, st.Setup, want)
			}
			if st.AnsweredRate < 0.8*float64(st.Rate) || st.AnsweredRate > 1.2*float64(st.Rate) {
				t.Errorf("%s %d/s: answered %.1f calls/s", s.System, st.Rate, st.AnsweredRate)
			}
		}
	}
}

// TestLadderCancel: Ctrl-C in the middle of a step ends the run at once
// with every process gone: sipp, Kamailio and its workers, rtpengine.
func TestLadderCancel(t *testing.T) {
	needPeers(t, "sipp", "kamailio", "rtpengine")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	progress := &syncBuffer{onWrite: func(s string) {
		if strings.Contains(s, "up on") { // the probe passed; the first step starts
			time.AfterFunc(2*time.Second, cancel)
		}
	}}
	start := time.Now()
	rep, err := Run(ctx, Config{Systems: []string{SystemKamailio}, Start: 20, Max: 20, StepDuration: 20 * time.Second, WorkDir: dir}, progress)
	t.Logf("progress:\n%s", progress.String())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Run took %v to end after its cancel", d)
	}
	if len(rep.Systems) != 1 || rep.Systems[0].Error == "" {
		t.Errorf("report %+v; want kamailio with its error", rep.Systems)
	}
	checkNothingLeft(t, dir)
}

// checkNothingLeft fails t if a live process's command line names dir:
// every process the ladder starts has its work directory there.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if st, perr := parseStat(stat); err == nil && perr == nil && st.state == 'Z' {
			continue
		}
		t.Errorf("process %s still running: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
}

// syncBuffer is a progress writer for tests.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onWrite func(string)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onWrite != nil {
		b.onWrite(string(p))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
