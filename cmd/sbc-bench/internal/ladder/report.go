//go:build linux

package ladder

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a ladder run: the settings, and per system its steps and
// highest passing rate.
type Report struct {
	Started      time.Time      `json:"started"`
	Machine      Machine        `json:"machine"`
	Rates        []int          `json:"rates"` // the ladder, calls/s
	StepDuration string         `json:"step_duration"`
	CallDuration string         `json:"call_duration"`
	Retry        int            `json:"retry"`
	PassMark     string         `json:"pass_mark"`
	Systems      []SystemReport `json:"systems"`
}

// Machine is where the ladder ran. sipp, the system and the harness share
// its CPUs.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// SystemReport is one system's ladder.
type SystemReport struct {
	System string `json:"system"`
	// Offer is the media address the UAS found in the probe call's offer:
	// the sbc's, rtpengine's, or (kamailio-nomedia) the UAC's own.
	Offer string `json:"offer_media,omitempty"`
	// MediaPorts is the sbc's or rtpengine's media range; MediaCalls the
	// calls it holds at 4 ports each.
	MediaPorts string `json:"media_ports"`
	MediaCalls int    `json:"media_calls"`
	// Counted says what Step.Counted counts, if anything.
	Counted string `json:"counted,omitempty"`
	Steps   []Step `json:"steps"`
	// MaxPassing is the highest rate that passed (every lower rate too);
	// ReachedMax says the ladder's top passed, so the capacity is higher.
	MaxPassing int  `json:"max_passing_rate"`
	ReachedMax bool `json:"reached_max"`
	// StopNote is how stopping went wrong after a failed last step.
	StopNote string `json:"stop_note,omitempty"`
	Error    string `json:"error,omitempty"`
}

func newReport(cfg Config) Report {
	return Report{
		Started: time.Now().UTC(), Machine: machine(), Rates: cfg.Rates(),
		StepDuration: cfg.StepDuration.String(), CallDuration: cfg.CallDuration.String(), Retry: cfg.Retry,
		PassMark: fmt.Sprintf("0 failed calls and at most %v %% retransmissions", MaxRetransPct),
	}
}

// best is the passing step at the highest passing rate, if any.
func (s SystemReport) best() (Step, bool) {
	for i := len(s.Steps) - 1; i >= 0; i-- {
		if st := s.Steps[i]; st.Pass && st.Rate == s.MaxPassing {
			return st, true
		}
	}
	return Step{}, false
}

// summary is a step in one line, for progress.
func (s Step) summary() string {
	verdict := "pass"
	if !s.Pass {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%d calls/s (try %d): %d/%d calls ok, %d failed, %d failed at the uas, retrans %.2f %%, answered %.1f/s, setup p50 %.0f p99 %.0f max %.0f ms, cpu %.3f ms/call (%.0f %% of a core): %s",
		s.Rate, s.Attempt, s.Succeeded, s.Calls, s.Failed, s.UASFailed, s.RetransPct, s.AnsweredRate,
		s.Setup.P50, s.Setup.P99, s.Setup.Max, s.CPUPerCallMs, s.CPUPct, verdict)
}

// WriteTable prints every step of every system, then each system's
// highest passing rate with its setup time and CPU per call there.
func WriteTable(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\trate/s\ttry\tcalls\tfailed\tuas fail\tretrans %\tanswered/s\tsetup p50\tp99\tmax ms\tcpu ms/call\tcpu %\tcounted\tpass\t")
	for _, s := range r.Systems {
		for _, st := range s.Steps {
			pass := "pass"
			if !st.Pass {
				pass = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.1f\t%.0f\t%.0f\t%.0f\t%.3f\t%.0f\t%d\t%s\t\n",
				s.System, st.Rate, st.Attempt, st.Calls, st.Failed, st.UASFailed, st.RetransPct, st.AnsweredRate,
				st.Setup.P50, st.Setup.P99, st.Setup.Max, st.CPUPerCallMs, st.CPUPct, st.Counted, pass)
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\nHighest passing rate (%s; steps of %s, calls of %s):\n", r.PassMark, r.StepDuration, r.CallDuration)
	for _, s := range r.Systems {
		fmt.Fprintf(w, "  %-17s %s\n", s.System, s.verdict())
	}
	for _, s := range r.Systems {
		if s.Counted != "" {
			fmt.Fprintf(w, "counted (%s): %s\n", s.System, s.Counted)
		}
		if s.StopNote != "" {
			fmt.Fprintf(w, "stop (%s, after its failed step): %s\n", s.System, s.StopNote)
		}
	}
	for _, s := range r.Systems {
		if s.System != SystemKamailioNoMedia && s.MediaPorts != "" {
			fmt.Fprintf(w, "media ports of the sbc and rtpengine: %s, room for %d calls up at once\n", s.MediaPorts, s.MediaCalls)
			break
		}
	}
	fmt.Fprintln(w, "setup: INVITE sent to 200 received at the UAC in ms, nearest-rank percentiles; sipp reads its clock once per event-loop turn, so times come in steps of its loop's wait (a few ms) at low rates.")
	fmt.Fprintln(w, "cpu: the system's processes (sbc; kamailio's workers + rtpengine), utime+stime from /proc over the UAC's run, per call placed.")
}

func (s SystemReport) verdict() string {
	var b strings.Builder
	switch {
	case s.MaxPassing == 0:
		b.WriteString("none passed")
	case s.ReachedMax:
		fmt.Fprintf(&b, ">= %d calls/s (the ladder's top)", s.MaxPassing)
	default:
		fmt.Fprintf(&b, "%d calls/s", s.MaxPassing)
	}
	if st, ok := s.best(); ok {
		fmt.Fprintf(&b, ": setup p50 %.0f ms, p99 %.0f ms; cpu %.3f ms/call", st.Setup.P50, st.Setup.P99, st.CPUPerCallMs)
	}
	if s.Offer != "" {
		fmt.Fprintf(&b, "; offer media at %s", s.Offer)
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "; error: %s", firstLine(s.Error))
	}
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// WriteJSON writes the report to path.
func WriteJSON(path string, r Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode ladder report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write ladder report: %w", err)
	}
	return nil
}
