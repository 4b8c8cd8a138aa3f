//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// What a run found, for people (a table) and scripts (JSON). Latencies are
// in µs, memory in KiB, CPU in % of one core.

// The sweep's pass mark (issue 3): loss below 0.1 % and p99 added latency
// below 1 ms (-pass-p99).
const passLossPct = 0.1

var passP99 = time.Millisecond

type result struct {
	Target string `json:"target"`
	Calls  int    `json:"calls"`
	// IdleCalls are up during the run as well, without media (-idle-calls).
	IdleCalls int     `json:"idle_calls,omitempty"`
	SetupS    float64 `json:"setup_s"` // placing every call, INVITE to ACK
	MediaS    float64 `json:"media_s"` // first send to last send
	Sent      uint64  `json:"sent"`    // RTP packets the harness sent, all streams
	// Received counts packets that left the target (the relay) and arrived at
	// the harness's stream ends: the relayed packets. Distinct per stream.
	Received  uint64  `json:"received"`
	Lost      uint64  `json:"lost"` // sent and never received
	LossPct   float64 `json:"loss_pct"`
	Reordered uint64  `json:"reordered"` // arrived after a later packet of its stream
	// WorstStreamLossPct is the loss of the stream that lost most, and
	// StarvedStreams those that got no packet through: an even degradation
	// keeps the first near LossPct and the second at 0.
	WorstStreamLossPct float64 `json:"worst_stream_loss_pct"`
	StarvedStreams     int     `json:"starved_streams"`
	Duplicates         uint64  `json:"duplicates"` // arrived again
	Misrouted          uint64  `json:"misrouted"`  // our packet, on another stream's end
	Foreign            uint64  `json:"foreign"`    // not our packet
	SendErrors         uint64  `json:"send_errors"`
	// SRTP is the A leg's suite with -srtp; SRTPFailures the packets an A
	// end could not decrypt (authentication, replay).
	SRTP         string  `json:"srtp,omitempty"`
	SRTPFailures uint64  `json:"srtp_failures"`
	RelayedPPS   float64 `json:"relayed_pps"` // received / media_s
	// LatencyUs is one way, from the harness's write to the kernel's receive
	// timestamp at the far end: what the target adds (see latencies).
	LatencyUs latencyReport `json:"latency_us"`
	// UserLatencyUs is one way to the harness's receiver goroutine reading
	// the packet: LatencyUs plus the harness's own receive delay.
	UserLatencyUs latencyReport `json:"user_latency_us"`
	Unstamped     uint64        `json:"unstamped"` // received without a kernel timestamp
	Relay         *relayUsage   `json:"relay,omitempty"`
	Gen           genUsage      `json:"generator"`
	Counters      *relayReport  `json:"relay_counters,omitempty"`
	// Machine is how all CPUs were spent over the media phase: on a 2-core
	// VM, steal (the hypervisor running someone else) shows up in latency.
	Machine struct {
		BusyPct  float64 `json:"busy_pct"`
		IdlePct  float64 `json:"idle_pct"`
		StealPct float64 `json:"steal_pct"`
		// CPUSeconds is the busy time of all CPUs over the media phase;
		// PerPacketUs that over the relayed packets: what the whole
		// machine (generator, relay, kernel) spent per packet.
		CPUSeconds  float64 `json:"cpu_s"`
		PerPacketUs float64 `json:"cpu_us_per_packet"`
	} `json:"machine_cpu"`
	Flood     *floodReport `json:"flood,omitempty"`
	Pass      bool         `json:"pass"`
	Senders   int          `json:"-"`
	Receivers int          `json:"-"`
	gen       struct{ cpu, wall time.Duration }
	// windowReceived is what arrived while the CPU was measured (all of
	// the media phase unless -measure-after).
	windowReceived uint64
}

// floodReport is what -flood-pps sent to closed media ports.
type floodReport struct {
	Sent uint64  `json:"sent"`
	PPS  float64 `json:"pps"`
}

type latencyReport struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// relayUsage is what /proc says of the target's process.
type relayUsage struct {
	CPUPct         float64 `json:"cpu_pct"`           // over the media phase
	CPUPerPacketUs float64 `json:"cpu_us_per_packet"` // CPU / received (relayed) packets
	RSSBeforeKiB   int64   `json:"rss_before_kib"`    // daemon up, no call yet
	RSSCallsKiB    int64   `json:"rss_calls_kib"`     // end of the media phase, every call up
	RSSAfterKiB    int64   `json:"rss_after_kib"`     // every call hung up
	MemPerCallKiB  float64 `json:"mem_per_call_kib"`  // (rss_calls - rss_before) / (calls + idle_calls)
	cpu, wall      time.Duration
}

// genUsage is the harness's own cost over the media phase (the whole
// process: senders, receivers, and idle SIP).
type genUsage struct {
	CPUPct         float64 `json:"cpu_pct"`
	CPUPerPacketUs float64 `json:"cpu_us_per_packet"` // CPU / packets sent: each is also received
	LagP99Us       float64 `json:"send_lag_p99_us"`   // how late sends were against the 20 ms schedule
	LagMaxUs       float64 `json:"send_lag_max_us"`
	Senders        int     `json:"senders"`
	Receivers      int     `json:"receivers"`
	// Batched is true when the senders batch on a raw socket (sendmmsg),
	// false when they write per packet (no CAP_NET_RAW).
	Batched bool `json:"batched_sends"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fill computes the report from the generator's counters and the target's.
func (r *result) fill(g *generator, rep relayReport) {
	t := g.totals()
	r.Sent, r.Received, r.Lost = t.sent, t.received, t.lost
	r.Reordered, r.Duplicates, r.SendErrors = t.reordered, t.dups, t.sendErr
	r.Misrouted, r.Foreign = g.misrouted.Load(), g.foreign.Load()
	r.SRTPFailures = g.srtpFail.Load()
	if t.sent > 0 {
		r.LossPct = 100 * float64(t.lost) / float64(t.sent)
	}
	r.WorstStreamLossPct, r.StarvedStreams = t.worstLossPct, t.starved
	r.MediaS = g.ended.Sub(g.started).Seconds()
	if r.MediaS > 0 {
		r.RelayedPPS = float64(t.received) / r.MediaS
	}
	r.LatencyUs, r.UserLatencyUs = latencyOf(g.latency.kernel), latencyOf(g.latency.user)
	if r.windowReceived > 0 {
		r.Machine.PerPacketUs = 1e6 * r.Machine.CPUSeconds / float64(r.windowReceived)
	}
	r.Unstamped = g.unstamped.Load()
	if ru := r.Relay; ru != nil {
		if ru.wall > 0 {
			ru.CPUPct = 100 * ru.cpu.Seconds() / ru.wall.Seconds()
		}
		if r.windowReceived > 0 {
			ru.CPUPerPacketUs = us(ru.cpu) / float64(r.windowReceived)
		}
		if n := r.Calls + r.IdleCalls; n > 0 {
			ru.MemPerCallKiB = float64(ru.RSSCallsKiB-ru.RSSBeforeKiB) / float64(n)
		}
	}
	r.Gen = genUsage{Senders: r.Senders, Receivers: r.Receivers, Batched: g.batched(),
		LagP99Us: us(g.lag.quantile(0.99)), LagMaxUs: us(time.Duration(max(g.lag.max, 0)))}
	if r.gen.wall > 0 {
		r.Gen.CPUPct = 100 * r.gen.cpu.Seconds() / r.gen.wall.Seconds()
	}
	if t.sent > 0 {
		r.Gen.CPUPerPacketUs = us(r.gen.cpu) / float64(t.sent)
	}
	if rep.Counted || rep.NotCounted != "" {
		r.Counters = &rep
	}
	r.Pass = t.sent > 0 && r.LossPct < passLossPct && g.latency.kernel.quantile(0.99) < passP99 &&
		r.Misrouted == 0 && r.Unstamped == 0 && rep.LeakedPairs == 0 && r.SRTPFailures == 0 && rep.SRTPAuthFailures == 0
}

// problems lists what is wrong beyond the numbers: a relay that leaked
// ports or logged errors still gave a measurement, but not a clean one.
func (r *result) problems() []string {
	var p []string
	if r.Misrouted > 0 {
		p = append(p, fmt.Sprintf("%d packets arrived on another call's socket", r.Misrouted))
	}
	if c := r.Counters; c != nil {
		if c.NotCounted != "" {
			p = append(p, "its packet counters were not read: "+c.NotCounted)
		}
		if c.LeakedPairs != 0 {
			p = append(p, fmt.Sprintf("%d media port pairs leaked (%d of %d free at exit)", c.LeakedPairs, c.FreePairs, c.TotalPairs))
		}
		if c.Errors > 0 {
			p = append(p, fmt.Sprintf("%d errors logged, first: %s", c.Errors, c.FirstError))
		}
		if c.Counted && c.CallsEnded != r.Calls+r.IdleCalls {
			p = append(p, fmt.Sprintf("%d calls ended by its own count, of %d", c.CallsEnded, r.Calls+r.IdleCalls))
		}
	}
	return p
}

func latencyOf(h *histogram) latencyReport {
	return latencyReport{P50: us(h.quantile(0.5)), P99: us(h.quantile(0.99)), P999: us(h.quantile(0.999)),
		Max: us(time.Duration(max(h.max, 0))), Mean: us(h.mean())}
}

// table writes results as fixed-width columns, one row per run, each
// written as soon as its run ends (a sweep shows its steps as they go).
type table struct{ out io.Writer }

var columns = []struct {
	name  string
	width int
}{
	{"target", 9}, {"calls", 6}, {"relayed pps", 11}, {"loss %", 7}, {"reord", 6},
	{"p50", 8}, {"p99", 8}, {"p99.9", 8}, {"max", 8}, {"user p99", 8},
	{"relay CPU %", 11}, {"relay µs/pkt", 12}, {"RSS before", 10}, {"RSS calls", 10}, {"KiB/call", 8},
	{"gen CPU %", 9}, {"gen µs/pkt", 10}, {"mach µs/pkt", 11}, {"pass", 4},
}

func newTable(out io.Writer) *table {
	t := &table{out: out}
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	t.line(names)
	return t
}

// line right-aligns cells in the columns.
func (t *table) line(cells []string) {
	var b strings.Builder
	for i, c := range cells {
		w := columns[i].width
		if n := utf8.RuneCountInString(c); n < w {
			b.WriteString(strings.Repeat(" ", w-n))
		}
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString("  ")
		}
	}
	fmt.Fprintln(t.out, b.String())
}

func (t *table) row(r *result) {
	relay := []string{"-", "-", "-", "-", "-"}
	if ru := r.Relay; ru != nil {
		relay = []string{fmt.Sprintf("%.1f", ru.CPUPct), fmt.Sprintf("%.2f", ru.CPUPerPacketUs),
			kib(ru.RSSBeforeKiB), kib(ru.RSSCallsKiB), fmt.Sprintf("%.1f", ru.MemPerCallKiB)}
	}
	pass := "no"
	if r.Pass {
		pass = "yes"
	}
	cells := []string{r.Target, fmt.Sprint(r.Calls), fmt.Sprintf("%.0f", r.RelayedPPS), fmt.Sprintf("%.3f", r.LossPct),
		fmt.Sprint(r.Reordered), usStr(r.LatencyUs.P50), usStr(r.LatencyUs.P99), usStr(r.LatencyUs.P999), usStr(r.LatencyUs.Max),
		usStr(r.UserLatencyUs.P99)}
	cells = append(cells, relay...)
	cells = append(cells, fmt.Sprintf("%.1f", r.Gen.CPUPct), fmt.Sprintf("%.2f", r.Gen.CPUPerPacketUs),
		fmt.Sprintf("%.2f", r.Machine.PerPacketUs), pass)
	t.line(cells)
}

// failed writes a row for a run that did not complete.
func (t *table) failed(name string, calls int, err error) {
	t.line([]string{name, fmt.Sprint(calls), "failed: " + firstLine(err.Error())})
}

// notes explains what was counted, below the table.
func notes(out io.Writer, results []*result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(out, `
relayed pps: RTP packets that left the target and reached the harness's stream ends, per second of media
  (2 streams per call, 50 pps each). loss: sent, never received. reord: arrived after a later packet.
p50..max: one-way latency from the harness's write to the kernel's receive timestamp at the far socket:
  what the target adds (direct = the loopback floor). user p99: to the harness's receiver reading it,
  on the process's monotonic clock; adds the harness's own receive delay. pass: loss < 0.1 %%, p99 < %v.
relay CPU: utime+stime of its process over the media phase; µs/pkt per relayed packet. KiB/call: RSS
  growth from no call to all calls up, per call (idle ones included). gen: this process, µs per packet sent (and received).
mach: busy CPU of the whole machine (all processes, softirq included) per relayed packet.
`, passP99)
	for _, r := range results {
		fmt.Fprintf(out, "%s, %d calls: sent %d, received %d, lost %d (worst stream %.2f %%, %d streams starved), reordered %d, duplicates %d, misrouted %d, foreign %d, send errors %d;\n",
			r.Target, r.Calls, r.Sent, r.Received, r.Lost, r.WorstStreamLossPct, r.StarvedStreams, r.Reordered, r.Duplicates, r.Misrouted, r.Foreign, r.SendErrors)
		if r.SRTP != "" {
			relay := "not counted"
			if r.Counters != nil && r.Counters.Counted {
				relay = fmt.Sprint(r.Counters.SRTPAuthFailures)
			}
			fmt.Fprintf(out, "  A leg SRTP %s, B leg RTP: %d packets the harness could not decrypt, %s the relay refused\n", r.SRTP, r.SRTPFailures, relay)
		}
		fmt.Fprintf(out, "  setup %.2fs (%.0f calls/s), media %.2fs; latency mean %s, at the receiver p50 %s p99 %s p99.9 %s\n",
			r.SetupS, float64(r.Calls+r.IdleCalls)/max(r.SetupS, 1e-9), r.MediaS, usStr(r.LatencyUs.Mean),
			usStr(r.UserLatencyUs.P50), usStr(r.UserLatencyUs.P99), usStr(r.UserLatencyUs.P999))
		sends := "a write per packet"
		if r.Gen.Batched {
			sends = "sendmmsg batches on a raw socket"
		}
		fmt.Fprintf(out, "  generator: %d senders (%s) + %d receivers, %.1f %% CPU, send lag behind schedule p99 %s max %s\n",
			r.Gen.Senders, sends, r.Gen.Receivers, r.Gen.CPUPct, usStr(r.Gen.LagP99Us), usStr(r.Gen.LagMaxUs))
		fmt.Fprintf(out, "  machine over the media phase (all CPUs): %.0f %% busy, %.0f %% idle, %.1f %% stolen by the hypervisor; %.2f CPU-s, %.2f µs per relayed packet\n",
			r.Machine.BusyPct, r.Machine.IdlePct, r.Machine.StealPct, r.Machine.CPUSeconds, r.Machine.PerPacketUs)
		if f := r.Flood; f != nil {
			fmt.Fprintf(out, "  flood: %d packets (%.0f/s) to media ports of no call\n", f.Sent, f.PPS)
		}
		if ru := r.Relay; ru != nil {
			fmt.Fprintf(out, "  relay RSS: %s before calls, %s with %d calls up, %s after hang-up\n",
				kib(ru.RSSBeforeKiB), kib(ru.RSSCallsKiB), r.Calls+r.IdleCalls, kib(ru.RSSAfterKiB))
		}
		if c := r.Counters; c != nil {
			if c.Counted {
				fmt.Fprintf(out, "  its own counters (%s): %d calls ended, %d RTP packets forwarded (%d by the kernel), %d dropped; ended by %s\n",
					c.Source, c.CallsEnded, c.Forwarded, c.Kernel, c.Dropped, endedBy(c.EndedBy))
			} else {
				fmt.Fprintf(out, "  its own counters: not read (%s)\n", c.NotCounted)
			}
			if c.PortsChecked {
				fmt.Fprintf(out, "  ports at exit: %d of %d pairs free, %d leaked; exit status %d; %d errors, %d warnings logged\n",
					c.FreePairs, c.TotalPairs, c.LeakedPairs, c.ExitCode, c.Errors, c.Warnings)
			}
			if c.FirstError != "" {
				fmt.Fprintf(out, "  first error logged: %s\n", c.FirstError)
			}
		}
	}
}

func endedBy(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	return strings.Join(parts, " ")
}

func usStr(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1000:
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.0fµs", v)
}

func kib(v int64) string {
	if v >= 10*1024 {
		return fmt.Sprintf("%.1fM", float64(v)/1024)
	}
	return fmt.Sprintf("%dK", v)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// jsonReport is the -json file.
type jsonReport struct {
	Machine machine        `json:"machine"`
	Flags   map[string]any `json:"flags"`
	Runs    []*result      `json:"runs"`
	Failed  []failedRun    `json:"failed,omitempty"`
	Sweeps  []sweepResult  `json:"sweeps,omitempty"`
	// Comparison is sbc against rtpengine, when both ran.
	Comparison *comparison `json:"sbc_vs_rtpengine,omitempty"`
}

type failedRun struct {
	Target string `json:"target"`
	Calls  int    `json:"calls"`
	Error  string `json:"error"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	Time      string `json:"time"`
}

func thisMachine() machine {
	k, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: strings.TrimSpace(string(k)),
		Time: time.Now().UTC().Format(time.RFC3339)}
}

func writeJSON(path string, rep jsonReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
