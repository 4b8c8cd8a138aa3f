//go:build linux

// Package ladder measures call-setup capacity: a sipp UAC places calls at
// rising rates (a ladder of steps) through a system under test to a sipp
// UAS, and each step passes when no call failed and at most 1 % of the
// calls needed a retransmission. The systems are the sbc daemon (media
// anchored on its own ports) and Kamailio as a stateful proxy anchoring
// media in rtpengine, the usual open-source way to build the same thing;
// Kamailio alone (no media) is a reference. For each it reports the highest
// passing rate, the call-setup time (INVITE to 200 at the UAC) and the CPU
// the system spent per call.
package ladder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"sbc/sbc/sbctest/freeport"
)

// Run runs the ladder through each of cfg.Systems in turn, writing a line
// per step to progress (nil for none). Every process it starts is ended
// before it returns, also when ctx ends. The report holds what was
// measured even when an error is returned.
func Run(ctx context.Context, cfg Config, progress io.Writer) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return Report{}, fmt.Errorf("sipp: %w (Debian: apt-get install sip-tester)", err)
	}
	if cfg.Testdata == "" {
		var err error
		if cfg.Testdata, err = findTestdata(); err != nil {
			return Report{}, err
		}
	}
	dir, err := os.MkdirTemp(cfg.WorkDir, "sbc-bench-ladder-")
	if err != nil {
		return Report{}, fmt.Errorf("work dir: %w", err)
	}
	if cfg.Keep {
		fmt.Fprintf(progress, "ladder: configs, logs and sipp statistics in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := newReport(cfg)
	var errs []error
	for _, name := range cfg.Systems {
		if name == SystemSBC && cfg.SBCBin == "" {
			fmt.Fprintln(progress, "ladder: building sbc")
			if cfg.SBCBin, err = buildSBC(ctx, filepath.Join(dir, "bin")); err != nil {
				return rep, err
			}
		}
	}
	for _, name := range cfg.Systems {
		sr, err := runSystem(ctx, cfg, name, filepath.Join(dir, name), progress)
		rep.Systems = append(rep.Systems, sr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return rep, errors.Join(errs...)
}

// runSystem starts one system, checks with a single call that it works and
// where it anchors media, climbs the ladder until a rate fails (after its
// retries), and stops the system.
func runSystem(ctx context.Context, cfg Config, name, dir string, progress io.Writer) (sr SystemReport, err error) {
	sr = SystemReport{System: name}
	defer func() {
		if err != nil {
			sr.Error = err.Error()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sr, fmt.Errorf("work dir: %w", err)
	}
	sys, err := newSystem(name)
	if err != nil {
		return sr, err
	}
	e, uac, uas, err := newEnv(cfg, dir)
	if err != nil {
		return sr, err
	}
	sr.MediaPorts = fmt.Sprintf("%d-%d", e.portMin, e.portMax)
	_, _, sr.MediaCalls = cfg.mediaRange()
	defer func() {
		stopErr := sys.stop()
		switch {
		case stopErr == nil:
		case len(sr.Steps) > 0 && !sr.Steps[len(sr.Steps)-1].Pass:
			// An overloaded system still holds calls the last step gave
			// up on (an sbc drains them, BYEs to a UAS that is gone): a
			// slow stop then is the overload's, not a fault.
			sr.StopNote = firstLine(stopErr.Error())
		default:
			err = errors.Join(err, fmt.Errorf("stop: %w", stopErr))
		}
	}()
	fmt.Fprintf(progress, "%s: starting\n", name)
	if err := sys.start(ctx, e); err != nil {
		return sr, err
	}
	_, sr.Counted = sys.counted()

	run := stepRun{sys: sys, uac: uac, uas: uas, callDuration: cfg.CallDuration}
	if sr.Offer, err = probe(ctx, run, e, filepath.Join(dir, "probe")); err != nil {
		return sr, err
	}
	fmt.Fprintf(progress, "%s: up on %v; the callee got the offer's media at %s\n", name, sys.sipAddr(), sr.Offer)

	rates := cfg.Rates()
	for _, rate := range rates {
		run.rate, run.calls = rate, int(float64(rate)*cfg.StepDuration.Seconds()+0.5)
		passed := false
		for attempt := 1; attempt <= 1+cfg.Retry && !passed; attempt++ {
			// Let the last step's calls end; after a failed step, let what
			// it left behind time out.
			wait := time.Second
			if attempt > 1 {
				wait = 5 * time.Second
			}
			if err := pause(ctx, wait); err != nil {
				return sr, err
			}
			st, err := runStep(ctx, run, filepath.Join(dir, fmt.Sprintf("step-%05d-%d", rate, attempt)))
			if err != nil {
				return sr, fmt.Errorf("step %d calls/s: %w", rate, err)
			}
			st.Attempt = attempt
			sr.Steps = append(sr.Steps, st)
			fmt.Fprintf(progress, "%s: %s\n", name, st.summary())
			passed = st.Pass
		}
		if !passed {
			break
		}
	}
	sr.MaxPassing = highestPassing(sr.Steps)
	sr.ReachedMax = sr.MaxPassing == rates[len(rates)-1]
	return sr, nil
}

// newEnv picks the run's ports for one system: the UAC's and UAS's SIP and
// (unused) media ports, free now.
func newEnv(cfg Config, dir string) (env, sippCall, sippCall, error) {
	lo, hi, _ := cfg.mediaRange()
	e := env{ip: cfg.SystemIP, rtpengine: cfg.RTPEngineIP, portMin: lo, portMax: hi, dir: dir,
		testdata: cfg.Testdata, sbcBin: cfg.SBCBin, children: cfg.KamailioChildren, keep: cfg.Keep}
	side := func(ip netip.Addr, scenario, stats string) (sippCall, error) {
		port, err := freeport.UDP(ip)
		if err != nil {
			return sippCall{}, err
		}
		mp, err := freeport.Media(ip, port)
		if err != nil {
			return sippCall{}, err
		}
		return sippCall{scenario: filepath.Join(cfg.Testdata, "sipp", scenario), local: netip.AddrPortFrom(ip, uint16(port)),
			mediaPort: mp, stats: stats}, nil
	}
	uac, err := side(cfg.UACIP, uacScenario, uacStats)
	if err != nil {
		return env{}, sippCall{}, sippCall{}, err
	}
	uas, err := side(cfg.UASIP, uasScenario, uasStats)
	if err != nil {
		return env{}, sippCall{}, sippCall{}, err
	}
	e.uac, e.uas = uac.local, uas.local
	return e, uac, uas, nil
}

// offerRE finds the media address of the first INVITE in a sipp message
// trace.
var offerRE = regexp.MustCompile(`(?s)INVITE sip:.*?\nc=IN IP4 ([0-9.]+)\s.*?\nm=audio (\d+) `)

// probe places one call with the UAS tracing what it gets, and returns the
// media address of the offer it got: the system's own (sbc), rtpengine's
// (kamailio), or the UAC's (kamailio-nomedia). Anything else is an error,
// and so is a system whose per-call log line did not show.
func probe(ctx context.Context, run stepRun, e env, dir string) (string, error) {
	run.rate, run.calls, run.callDuration, run.trace = 1, 1, 0, true
	st, err := runStep(ctx, run, dir)
	if err != nil {
		return "", fmt.Errorf("probe call: %w", err)
	}
	if !st.Pass {
		return "", fmt.Errorf("probe call failed: %s (sipp files in %s)", st.summary(), dir)
	}
	msgs, err := os.ReadFile(filepath.Join(dir, uasMessages))
	if err != nil {
		return "", fmt.Errorf("probe call: %w", err)
	}
	m := offerRE.FindSubmatch(msgs)
	if m == nil {
		return "", fmt.Errorf("probe call: no INVITE with c= and m=audio in what the UAS got (%s)", filepath.Join(dir, uasMessages))
	}
	ip, _ := netip.ParseAddr(string(m[1]))
	port, _ := strconv.Atoi(string(m[2]))
	offer := netip.AddrPortFrom(ip, uint16(port)).String()
	if want := run.sys.mediaIP(); want.IsValid() {
		if ip != want || port < e.portMin || port > e.portMax {
			return offer, fmt.Errorf("media not anchored: the UAS got an offer for %s; want %v, port %d-%d", offer, want, e.portMin, e.portMax)
		}
	} else if ip != e.uac.Addr() {
		return offer, fmt.Errorf("the UAS got an offer for %s; want the UAC's own %v (media not anchored)", offer, e.uac.Addr())
	}
	if _, what := run.sys.counted(); what != "" && st.Counted != 1 {
		return offer, fmt.Errorf("probe call: %d %s; want 1", st.Counted, what)
	}
	return offer, nil
}

// highestPassing is the highest rate that passed with every lower rate
// passing too (in one of its attempts); 0 when the first did not.
func highestPassing(steps []Step) int {
	passed := map[int]bool{}
	var rates []int
	for _, s := range steps {
		if _, seen := passed[s.Rate]; !seen {
			rates = append(rates, s.Rate)
			passed[s.Rate] = false
		}
		if s.Pass {
			passed[s.Rate] = true
		}
	}
	best := 0
	slices.Sort(rates)
	for _, r := range rates {
		if !passed[r] {
			break
		}
		best = r
	}
	return best
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// machine describes where the ladder ran.
func machine() Machine {
	k, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return Machine{CPUs: runtime.NumCPU(), Kernel: strings.TrimSpace(string(k)), Go: runtime.Version()}
}
