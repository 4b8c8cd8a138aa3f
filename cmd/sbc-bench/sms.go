//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// runSMS is `sbc-bench sms [flags]`: outbound SMS throughput. Messages
// are posted to the daemon's REST API from concurrent HTTPS clients, go
// through its queue and leave as SIP MESSAGE (RFC 3428) to a sipp carrier;
// the run measures the API's acceptance rate and latency, the end-to-end
// delivery rate and the daemon's CPU per message. Exit status: 0 every
// message ended "sent", 1 one did not or the run failed, 2 bad flags.
func runSMS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseSMSFlags(args, stderr)
	if err != nil {
		return exitUsage // the flag package or Validate said why
	}
	var progress io.Writer = stderr
	if o.quiet {
		progress = io.Discard
	}
	rep, err := smsBench(ctx, o, progress)
	if rep != nil {
		rep.write(stdout)
	}
	code := exitOK
	if err != nil {
		fmt.Fprintf(stderr, "sbc-bench sms: %v\n", err)
		code = exitFail
	}
	if ctx.Err() == nil { // an interrupted run is not judged
		for _, p := range rep.problems() {
			fmt.Fprintf(stderr, "sbc-bench sms: %s\n", p)
			code = exitFail
		}
	}
	if o.jsonPath != "" && rep != nil {
		if err := writeSMSJSON(o.jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "sbc-bench sms: %v\n", err)
			return exitFail
		}
	}
	return code
}

// smsOptions are the flags of `sbc-bench sms`.
type smsOptions struct {
	messages     int
	clients      int
	smsPerSecond int // the account's limit
	timeout      time.Duration
	sbcBin       string
	scenario     string // the carrier's sipp scenario; "": found in the repository's testdata
	jsonPath     string
	keep         bool
	quiet        bool
}

// maxSMSMessages bounds -messages: each message has a recipient of its
// own, +1415 and 7 digits from 6000000.
const maxSMSMessages = 4_000_000

func parseSMSFlags(args []string, stderr io.Writer) (*smsOptions, error) {
	o := &smsOptions{}
	fs := flag.NewFlagSet("sbc-bench sms", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.messages, "messages", 20000, "messages to send, each to a recipient of its own")
	fs.IntVar(&o.clients, "clients", 32, "concurrent API clients, each on a keep-alive HTTPS connection")
	fs.IntVar(&o.smsPerSecond, "sms-per-second", 10000, "the account's SMS rate (10000, the API's maximum, lifts it)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long the carrier may take to get every message")
	fs.StringVar(&o.sbcBin, "sbc-bin", "", "sbc daemon binary (default: go build sbc/cmd/sbc)")
	fs.StringVar(&o.scenario, "scenario", "", "the carrier's sipp scenario (default: testdata/sipp/uas_message.xml of the repository)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory: config, store, daemon and sipp logs (its path is printed)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintf(stderr, "sbc-bench sms: %v\n", err)
		return nil, err
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "sbc-bench sms: %v\n", err)
		return nil, err
	}
	return o, nil
}

func (o *smsOptions) validate() error {
	switch {
	case o.messages < 1 || o.messages > maxSMSMessages:
		return fmt.Errorf("-messages %d: want 1 to %d", o.messages, maxSMSMessages)
	case o.clients < 1 || o.clients > 1024:
		return fmt.Errorf("-clients %d: want 1 to 1024", o.clients)
	case o.smsPerSecond < 1 || o.smsPerSecond > 10000:
		return fmt.Errorf("-sms-per-second %d: want 1 to 10000 (the API's range)", o.smsPerSecond)
	case o.timeout <= 0:
		return fmt.Errorf("-timeout %v: want > 0", o.timeout)
	}
	return nil
}

// smsReport is what one run measured. Times are from the first POST.
type smsReport struct {
	Machine      machine `json:"machine"`
	Messages     int     `json:"messages"`
	Clients      int     `json:"clients"`
	SMSPerSecond int     `json:"sms_per_second"`

	// The API: how many it took (201, queued), how fast, how long each
	// request took (nearest rank), and the first refusal.
	Accepted      int     `json:"accepted"`
	Refused       int     `json:"refused"`
	Unposted      int     `json:"unposted"` // the run was cut short
	FirstRefusal  string  `json:"first_refusal,omitempty"`
	PostSeconds   float64 `json:"post_seconds"`
	AcceptPerSec  float64 `json:"accept_per_second"`
	LatencyP50Ms  float64 `json:"api_latency_p50_ms"`
	LatencyP99Ms  float64 `json:"api_latency_p99_ms"`
	LatencyMaxMs  float64 `json:"api_latency_max_ms"`
	LatencyMeanMs float64 `json:"api_latency_mean_ms"`

	// Delivery: the store's last sent time (the carrier's 200 to the last
	// MESSAGE), and when the carrier sipp exited having answered all.
	DeliverySeconds float64        `json:"delivery_seconds"`
	DeliveryPerSec  float64        `json:"delivery_per_second"`
	CarrierSeconds  float64        `json:"carrier_done_seconds"`
	CarrierExit     int            `json:"carrier_exit_code"`
	Statuses        map[string]int `json:"statuses"` // the store's outbound rows by status
	AllSent         bool           `json:"all_sent"`

	// CPU from the first POST to the last message's log line: the daemon
	// (utime+stime, /proc/PID/stat, 10 ms ticks), the harness's API
	// clients, the carrier sipp over its whole life, and the machine's
	// busy share of all its CPUs.
	DaemonCPUSeconds  float64 `json:"daemon_cpu_seconds"`
	DaemonCPUPer1000  float64 `json:"daemon_cpu_seconds_per_1000"`
	HarnessCPUSeconds float64 `json:"harness_cpu_seconds"`
	CarrierCPUSeconds float64 `json:"carrier_cpu_seconds"`
	MachineBusyPct    float64 `json:"machine_busy_percent"`
	DaemonErrors      int64   `json:"daemon_errors"`
	DaemonWarnings    int64   `json:"daemon_warnings"`
	DaemonFirstError  string  `json:"daemon_first_error,omitempty"`
}

// problems are the reasons a run did not pass: a message not taken, not
// sent, or a peer that did not end well.
func (r *smsReport) problems() []string {
	if r == nil {
		return nil
	}
	var p []string
	if r.Refused > 0 {
		p = append(p, fmt.Sprintf("the API refused %d of %d messages; the first: %s", r.Refused, r.Messages, r.FirstRefusal))
	}
	if !r.AllSent {
		p = append(p, fmt.Sprintf("not every message ended sent: %v of %d", r.Statuses, r.Messages))
	}
	switch {
	case r.CarrierExit < 0:
		p = append(p, "the carrier sipp did not finish: killed")
	case r.CarrierExit != 0:
		p = append(p, fmt.Sprintf("the carrier sipp exited with status %d (see its log with -keep)", r.CarrierExit))
	}
	if r.DaemonErrors > 0 {
		p = append(p, fmt.Sprintf("the daemon logged %d errors; the first: %s", r.DaemonErrors, r.DaemonFirstError))
	}
	return p
}

func (r *smsReport) write(w io.Writer) {
	fmt.Fprintf(w, "sbc-bench sms: %d messages from %d API clients, account limit %d/s, %d CPUs\n",
		r.Messages, r.Clients, r.SMSPerSecond, r.Machine.CPUs)
	fmt.Fprintf(w, "  api        %d accepted (201 queued) in %.2f s: %.0f msgs/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.Accepted, r.PostSeconds, r.AcceptPerSec, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
	carrier := fmt.Sprintf("carrier sipp done at %.2f s", r.CarrierSeconds)
	if r.CarrierSeconds == 0 {
		carrier = "carrier sipp did not finish"
	}
	fmt.Fprintf(w, "  delivery   %d sent to the carrier %.2f s after the first POST: %.0f msgs/s end to end (%s)\n",
		r.Statuses["sent"], r.DeliverySeconds, r.DeliveryPerSec, carrier)
	fmt.Fprintf(w, "  cpu        daemon %.2f s, %.0f ms per 1,000 messages; API clients %.2f s; carrier sipp %.2f s; machine busy %.0f %%\n",
		r.DaemonCPUSeconds, 1000*r.DaemonCPUPer1000, r.HarnessCPUSeconds, r.CarrierCPUSeconds, r.MachineBusyPct)
	verdict := "every message sent"
	if !r.AllSent {
		verdict = "NOT every message sent"
	}
	fmt.Fprintf(w, "  store      %v: %s\n", r.Statuses, verdict)
}

func writeSMSJSON(path string, r *smsReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
