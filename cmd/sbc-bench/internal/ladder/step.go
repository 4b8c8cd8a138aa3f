//go:build linux

package ladder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// MaxRetransPct is the pass mark's retransmission limit: at most 1 % of a
// step's calls (issue 3).
const MaxRetransPct = 1.0

// Step is one rate of the ladder as sipp and /proc saw it.
type Step struct {
	Rate    int `json:"rate"`    // calls/s asked of sipp
	Attempt int `json:"attempt"` // 1, or 2+ for a retry of a failed step
	Calls   int `json:"calls"`   // placed: rate × step duration
	// Succeeded calls completed at the UAC (INVITE, 200, ACK, BYE, 200);
	// Failed = Calls - Succeeded: failed, or unfinished when sipp ended.
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	UASFailed int `json:"uas_failed"` // calls the UAS saw fail
	// Retransmissions are the messages the UAC and the UAS sent again
	// (INVITE, BYE, 200 to INVITE), in % of Calls.
	Retransmissions int     `json:"retransmissions"`
	RetransPct      float64 `json:"retrans_pct"`
	// AnsweredRate is 200s per second between the first and the last: the
	// rate sipp achieved.
	AnsweredRate float64 `json:"answered_rate"`
	Setup        Latency `json:"setup_ms"`
	// CPU of the system's processes (all threads, all Kamailio workers and
	// rtpengine) from the UAC's start to its end.
	CPUSeconds   float64 `json:"cpu_s"`
	CPUPerCallMs float64 `json:"cpu_per_call_ms"`
	CPUPct       float64 `json:"cpu_pct"` // of one core
	Seconds      float64 `json:"seconds"` // the UAC's run
	// Counted is what the system itself logged per call during the step
	// (SystemReport.Counted says what).
	Counted int64 `json:"counted"`
	Pass    bool  `json:"pass"`
}

// passes is the pass mark: every call succeeded, at both ends, and at
// most MaxRetransPct retransmissions.
func (s Step) passes() bool {
	return s.Calls > 0 && s.Failed == 0 && s.UASFailed == 0 && s.RetransPct <= MaxRetransPct
}

// stepRun is what one step needs.
type stepRun struct {
	sys          system
	uac, uas     sippCall // their calls and dir are set per step
	rate, calls  int
	callDuration time.Duration
	trace        bool // keep the UAS's messages (the probe call)
}

// runStep places s.calls calls at s.rate through the system and measures
// them. An error is the harness's failure (sipp could not run, the system
// died), not the system's: that is a Step that does not pass.
func runStep(ctx context.Context, s stepRun, dir string) (Step, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Step{}, fmt.Errorf("step dir: %w", err)
	}
	// sipp's own deadline: placing the calls, the last one's duration, and
	// two receive timeouts (a late 200, then a late BYE's 200).
	timeout := time.Duration(float64(s.calls)/float64(s.rate)*float64(time.Second)) + s.callDuration + 2*sippRecvTimeout
	s.uac.dir, s.uas.dir = dir, dir
	s.uac.calls, s.uas.calls = s.calls, s.calls
	s.uac.timeout, s.uas.timeout = timeout, timeout+5*time.Second

	uas, err := startProc("sipp uas", uasCommand(s.uas, s.trace), nil, "")
	if err != nil {
		return Step{}, err
	}
	defer uas.stop(syscall.SIGKILL, 0)
	if err := waitBound(ctx, s.uas.local, 5*time.Second, uas.done); err != nil {
		return Step{}, fmt.Errorf("sipp uas: %w%s", err, uas.lastLines())
	}

	cpu0, err := groupCPU(s.sys.pgids())
	if err != nil {
		return Step{}, err
	}
	count0, _ := s.sys.counted()
	t0 := time.Now()
	uac, err := startProc("sipp uac", uacCommand(s.uac, s.sys.sipAddr(), s.rate, s.callDuration), nil, "")
	if err != nil {
		return Step{}, err
	}
	defer uac.stop(syscall.SIGKILL, 0)
	if err := waitProc(ctx, uac, s.sys, timeout+10*time.Second); err != nil {
		return Step{}, err
	}
	cpu1, err := groupCPU(s.sys.pgids())
	if err != nil {
		return Step{}, err
	}
	wall := time.Since(t0)

	// The UAS ends after its last call (and a 500 ms wait for a stray BYE);
	// calls that never reached it leave it waiting: then it is told to
	// quit (SIGUSR1: final statistics written), and killed after that.
	select {
	case <-uas.done:
	case <-time.After(3 * time.Second):
		uas.stop(syscall.SIGUSR1, 3*time.Second)
	}
	count1, _ := s.sys.counted()

	st := Step{Rate: s.rate, Calls: s.calls, Seconds: wall.Seconds(), Counted: count1 - count0}
	if err := readStep(&st, dir, uac, uas); err != nil {
		return Step{}, err
	}
	cpu := cpu1 - cpu0
	st.CPUSeconds = cpu.Seconds()
	st.CPUPerCallMs = 1000 * cpu.Seconds() / float64(s.calls)
	st.CPUPct = 100 * cpu.Seconds() / wall.Seconds()
	st.Pass = st.passes()
	return st, nil
}

// waitProc waits for sipp p to end by itself, while the system lives.
func waitProc(ctx context.Context, p *proc, sys system, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return fmt.Errorf("%s still running %v after it started, past its own -timeout%s", p.name, limit, p.lastLines())
		case <-tick.C:
			if err := sys.check(); err != nil {
				return err
			}
		}
	}
}

// readStep fills st from the step's sipp files.
func readStep(st *Step, dir string, uac, uas *proc) error {
	read := func(p *proc, name string) (sippStats, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return sippStats{}, fmt.Errorf("%s statistics: %w%s", p.name, err, p.lastLines())
		}
		s, err := parseSippStats(b)
		if err != nil {
			return sippStats{}, fmt.Errorf("%s: %w", p.name, err)
		}
		return s, nil
	}
	a, err := read(uac, uacStats)
	if err != nil {
		return err
	}
	b, err := read(uas, uasStats)
	if err != nil {
		return err
	}
	st.Succeeded = a.succeeded
	st.Failed = st.Calls - a.succeeded
	st.UASFailed = b.failed
	st.Retransmissions = a.retrans + b.retrans
	st.RetransPct = 100 * float64(st.Retransmissions) / float64(st.Calls)

	// sipp writes setup times in batches (rttFreq) and drops a last partial
	// one: a step with failures may have fewer samples than answered calls,
	// or none at all.
	files, err := filepath.Glob(filepath.Join(dir, uacRTTGlob))
	if err != nil || len(files) > 1 {
		return fmt.Errorf("sipp uac: want one %s in %s, found %d", uacRTTGlob, dir, len(files))
	}
	if len(files) == 0 {
		return nil
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("sipp uac setup times: %w", err)
	}
	samples, err := parseRTT(data)
	if err != nil {
		return fmt.Errorf("sipp uac: %w", err)
	}
	st.Setup = latency(samples)
	st.AnsweredRate = answeredRate(samples)
	return nil
}
