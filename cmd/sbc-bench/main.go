//go:build linux

// Command sbc-bench measures a media relay under load: it sets up N calls
// through the target with real SIP (its own UAC and UAS on loopback), sends
// G.711-sized RTP both ways on every call for a while, hangs up, and reports
// what arrived, how late, and what it cost the relay.
//
//	go run ./cmd/sbc-bench -calls 500 -duration 10s           the sbc daemon
//	go run ./cmd/sbc-bench -target direct -calls 500          no relay: the harness's ceiling
//	go run ./cmd/sbc-bench -target sbc,direct -json out.json  both, one table
//	go run ./cmd/sbc-bench -target sbc,rtpengine,direct       and rtpengine, driven as Kamailio does
//	go run ./cmd/sbc-bench -sweep -max-calls 3200             the most calls that pass
//	go run ./cmd/sbc-bench -sweep -target sbc,rtpengine -plot sweep.png
//
// A run passes when loss < 0.1 % and p99 one-way latency < 1 ms. Exit
// status: 0 done (a sweep: some N passed), 1 a run failed, 2 bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"sbc/sbc/sbctest/rtpengine"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line.
type options struct {
	targets      []string
	calls        int
	idleCalls    int
	duration     time.Duration
	rate         float64
	setupTimeout time.Duration
	inFlight     int
	senders      int
	sendBatch    int
	receivers    int
	sbcBin       string
	sbcPortMin   int
	sbcSteering  string
	sbcWorkers   int
	sbcIP        netip.Addr
	sbcLog       string
	rtpeBin      string
	rtpeIP       netip.Addr
	rtpePortMin  int
	rtpeLog      string
	jsonPath     string
	plotPath     string
	quiet        bool
	verbose      bool
	sweep        bool
	sweepStart   int
	maxCalls     int
	refine       int
	retry        int
	cpuProfile   string
	netlab       bool
	sbcFastPath  string
	kernelHook   string
	passP99      time.Duration
	floodPPS     int
	srtp         string
	floodCompare bool
	repeat       int
	measureAfter time.Duration
	lab          *labInfo // set in the child of -netlab
	uacIP, uasIP netip.Addr
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sbc-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "sbc", "what relays the media: sbc, rtpengine, direct (no relay); with -netlab also sbc-kernel (the daemon with its kernel fast path) and bare (a bare XDP forwarder); or a comma-separated list run in turn")
	fs.IntVar(&o.calls, "calls", 100, "concurrent calls")
	fs.IntVar(&o.idleCalls, "idle-calls", 0, "more concurrent calls, set up after the others, without media: for memory and descriptors at scale")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "media phase of each run")
	fs.Float64Var(&o.rate, "rate", 200, "calls set up (and hung up) per second")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 10*time.Second, "longest a call may take from INVITE to 200, or a BYE to its 200")
	fs.IntVar(&o.inFlight, "in-flight", 256, "calls being set up at once, at most")
	fs.IntVar(&o.senders, "senders", 2, "sender goroutines of the media generator")
	fs.IntVar(&o.sendBatch, "send-batch", 8, "packets per sendmmsg of the generator, on a raw socket (needs CAP_NET_RAW; else a write per packet); 0: a write per packet. Larger batches cost less CPU and stamp the packets of a batch a little early")
	fs.IntVar(&o.receivers, "receivers", 2, "receiver goroutines of the media generator")
	fs.StringVar(&o.sbcBin, "sbc-bin", "", "sbc daemon binary (default: go build sbc/cmd/sbc into a temporary dir)")
	fs.IntVar(&o.sbcPortMin, "sbc-port-min", 30000, "first media port of the daemon's range (sized 4 ports per call + slack)")
	fs.StringVar(&o.sbcSteering, "sbc-steering", "auto", "the daemon's media.steering: auto, on (port range steered to a few sockets) or off (a socket per port)")
	fs.IntVar(&o.sbcWorkers, "sbc-workers", 0, "the daemon's media.workers: relay goroutines of a steered relay (0: one per CPU)")
	sbcIP := fs.String("sbc-ip", "127.0.0.1", "loopback address of the daemon's SIP listener and media ports")
	fs.StringVar(&o.sbcLog, "sbc-log", "", "append the daemon's log to this file")
	fs.StringVar(&o.rtpeBin, "rtpengine-bin", "rtpengine", "rtpengine daemon binary (Debian: apt-get install rtpengine-daemon)")
	rtpeIP := fs.String("rtpengine-ip", "127.0.0.3", "loopback address of rtpengine's media ports and ng listener")
	fs.IntVar(&o.rtpePortMin, "rtpengine-port-min", 40000, "first media port of rtpengine's range (sized 4 ports per call + slack)")
	fs.StringVar(&o.rtpeLog, "rtpengine-log", "", "append rtpengine's log to this file")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.plotPath, "plot", "", "with -sweep: draw loss and p99 latency against calls, one line per target, into this PNG file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.BoolVar(&o.verbose, "v", false, "log the harness's SIP warnings to stderr")
	fs.BoolVar(&o.sweep, "sweep", false, "raise the calls from -sweep-start, doubling up to -max-calls, to find the most that pass")
	fs.IntVar(&o.sweepStart, "sweep-start", 50, "first step of -sweep")
	fs.IntVar(&o.maxCalls, "max-calls", 3200, "last step of -sweep")
	fs.IntVar(&o.refine, "sweep-refine", 2, "bisection steps of -sweep between the last pass and the first failure")
	fs.IntVar(&o.retry, "sweep-retry", 1, "runs again a -sweep step that missed the pass mark, up to this many times")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the harness's own CPU profile to this file")
	fs.BoolVar(&o.netlab, "netlab", false, "measure across network namespaces (targets in one, the harness in another, two veth pairs between) instead of loopback; needs root")
	fs.StringVar(&o.sbcFastPath, "sbc-fast-path", "off", "the media.fast_path of target sbc: off (the userspace relay), auto, xdp or tc")
	fs.StringVar(&o.kernelHook, "kernel-hook", "xdp", "with -netlab: the media.fast_path of target sbc-kernel, xdp or tc (bare is XDP only)")
	fs.DurationVar(&o.passP99, "pass-p99", time.Millisecond, "pass mark: p99 one-way added latency below this (and loss below 0.1 %)")
	fs.IntVar(&o.repeat, "repeat", 1, "run the list of targets this many times, interleaved, and print each target's means (runs on a shared machine vary)")
	fs.BoolVar(&o.floodCompare, "flood-compare", false, "with -flood-pps: run each target without the flood first, and print what the flood cost (loss, latency, machine CPU per dropped packet)")
	fs.DurationVar(&o.measureAfter, "measure-after", 0, "measure CPU from this far into the media phase on (steady state: streams set up, in the kernel with the fast path); latency and loss cover all of it")
	fs.StringVar(&o.srtp, "srtp", "", "make the caller's leg SRTP with this SDES suite (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM), a fresh key per call, the callee's plain RTP: the relay bridges them (targets sbc and rtpengine)")
	fs.IntVar(&o.floodPPS, "flood-pps", 0, "during the media phase, also send this many packets/s to media ports of no call of the target (from another source): they must be dropped without hurting the calls")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	lab, err := inLab()
	if err != nil {
		return nil, err
	}
	o.lab, o.uacIP, o.uasIP = lab, defaultUACIP, defaultUASIP
	if lab != nil {
		o.uacIP, o.uasIP = lab.UAC, lab.UAS
		*sbcIP, *rtpeIP = lab.SBC.String(), lab.SBC.String()
	}
	ip, err := netip.ParseAddr(*sbcIP)
	if lab != nil {
		o.sbcIP, o.rtpeIP = ip, ip
	} else if err != nil || !ip.Is4() || !ip.IsLoopback() || ip == defaultUACIP || ip == defaultUASIP {
		return nil, fmt.Errorf("-sbc-ip %q: want an IPv4 loopback address other than the UAC's %v and the UAS's %v", *sbcIP, defaultUACIP, defaultUASIP)
	}
	if lab == nil {
		o.sbcIP = ip
		ip, err = netip.ParseAddr(*rtpeIP)
		if err != nil || !ip.Is4() || !ip.IsLoopback() || ip == defaultUACIP || ip == defaultUASIP {
			return nil, fmt.Errorf("-rtpengine-ip %q: want an IPv4 loopback address other than the UAC's %v and the UAS's %v", *rtpeIP, defaultUACIP, defaultUASIP)
		}
		o.rtpeIP = ip
	}
	for _, t := range strings.Split(*target, ",") {
		switch t = strings.TrimSpace(t); t {
		case "sbc", "rtpengine", "direct", "sbc-kernel", "bare":
			if slices.Contains(o.targets, t) {
				return nil, fmt.Errorf("-target: %s twice (-repeat runs the list again)", t)
			}
			if (t == "sbc-kernel" || t == "bare") && !o.netlab {
				return nil, fmt.Errorf("-target %s: needs -netlab (the kernel fast path needs real interfaces)", t)
			}
			o.targets = append(o.targets, t)
		default:
			return nil, fmt.Errorf("-target %q: want sbc, rtpengine, direct, sbc-kernel or bare (or a comma-separated list)", t)
		}
	}
	switch {
	case o.calls < 1:
		return nil, fmt.Errorf("-calls %d: want at least 1", o.calls)
	case o.sendBatch < 0 || o.sendBatch > maxSendBatch:
		return nil, fmt.Errorf("-send-batch %d: want 0 (a write per packet) to %d", o.sendBatch, maxSendBatch)
	case o.idleCalls < 0:
		return nil, fmt.Errorf("-idle-calls %d: want 0 or more", o.idleCalls)
	case o.duration < time.Second:
		return nil, fmt.Errorf("-duration %v: want at least 1s", o.duration)
	case o.rate <= 0:
		return nil, fmt.Errorf("-rate %v: want calls per second > 0", o.rate)
	case o.setupTimeout <= 0:
		return nil, fmt.Errorf("-setup-timeout %v: want > 0", o.setupTimeout)
	case o.refine < 0 || o.retry < 0:
		return nil, fmt.Errorf("-sweep-refine, -sweep-retry: want 0 or more")
	case o.inFlight < 1 || o.senders < 1 || o.receivers < 1:
		return nil, fmt.Errorf("-in-flight, -senders, -receivers: want at least 1")
	case o.sbcPortMin < 1024 || o.sbcPortMin%2 != 0 || o.sbcPortMin > 65530:
		return nil, fmt.Errorf("-sbc-port-min %d: want an even port in 1024..65530", o.sbcPortMin)
	case o.rtpePortMin < 1024 || o.rtpePortMin%2 != 0 || o.rtpePortMin > 65530:
		return nil, fmt.Errorf("-rtpengine-port-min %d: want an even port in 1024..65530", o.rtpePortMin)
	case o.plotPath != "" && !o.sweep:
		return nil, fmt.Errorf("-plot: draws a -sweep; add -sweep")
	case o.sweep && (o.sweepStart < 1 || o.maxCalls < o.sweepStart):
		return nil, fmt.Errorf("-sweep-start %d, -max-calls %d: want 1 <= start <= max", o.sweepStart, o.maxCalls)
	case !slices.Contains([]string{"off", "auto", "xdp", "tc"}, o.sbcFastPath):
		return nil, fmt.Errorf("-sbc-fast-path %q: want off, auto, xdp or tc", o.sbcFastPath)
	case o.kernelHook != "xdp" && o.kernelHook != "tc":
		return nil, fmt.Errorf("-kernel-hook %q: want xdp or tc", o.kernelHook)
	case o.repeat < 1 || o.repeat > 100 || (o.repeat > 1 && o.sweep):
		return nil, fmt.Errorf("-repeat %d: want 1 to 100, and no -sweep", o.repeat)
	case o.floodCompare && (o.floodPPS == 0 || o.sweep):
		return nil, fmt.Errorf("-flood-compare: needs -flood-pps, and no -sweep")
	case o.measureAfter < 0 || o.measureAfter >= o.duration:
		return nil, fmt.Errorf("-measure-after %v: want 0 or more, less than -duration %v", o.measureAfter, o.duration)
	case o.passP99 <= 0:
		return nil, fmt.Errorf("-pass-p99 %v: want > 0", o.passP99)
	case o.floodPPS < 0 || o.floodPPS > 2_000_000:
		return nil, fmt.Errorf("-flood-pps %d: want 0 to 2000000", o.floodPPS)
	}
	if o.srtp != "" {
		if _, ok := srtpSuites[o.srtp]; !ok {
			return nil, fmt.Errorf("-srtp %q: want AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 or AEAD_AES_128_GCM", o.srtp)
		}
		for _, t := range o.targets {
			if t != "sbc" && t != "rtpengine" {
				return nil, fmt.Errorf("-srtp with -target %s: only sbc and rtpengine terminate SRTP", t)
			}
		}
	}
	if o.netlab && lab == nil {
		return o, nil // the parent: the child checks the rest
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ladder" {
		return runLadder(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "sbc-bench: %v\n", err)
		}
		return exitUsage
	}
	if o.netlab && o.lab == nil {
		return runInLab(ctx, args, stdout, stderr)
	}
	passP99 = o.passP99
	b, err := newBench(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sbc-bench: %v\n", err)
		return exitFail
	}
	defer b.close()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "sbc-bench: -cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "sbc-bench: -cpuprofile: %v\n", err)
			return exitFail
		}
		defer pprof.StopCPUProfile()
	}
	code := b.runAll(ctx, stdout, stderr)
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, b.report); err != nil {
			fmt.Fprintf(stderr, "sbc-bench: %v\n", err)
			return exitFail
		}
	}
	if o.plotPath != "" {
		if err := writePlot(o.plotPath, b.report.Runs); err != nil {
			fmt.Fprintf(stderr, "sbc-bench: %v\n", err)
			return exitFail
		}
	}
	return code
}

// bench is one invocation: its options, its targets and what they gave.
type bench struct {
	o        *options
	targets  []target
	sbc      *sbcTarget
	kernel   *sbcTarget // sbc-kernel
	logFiles []*os.File
	prog     *progress
	sipLog   *slog.Logger
	report   jsonReport
}

func newBench(o *options, stderr io.Writer) (*bench, error) {
	b := &bench{o: o, sipLog: slog.New(slog.DiscardHandler)}
	if o.verbose {
		b.sipLog = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if !o.quiet && isTerminal(stderr) {
		b.prog = &progress{w: stderr}
	}
	for _, name := range o.targets {
		switch name {
		case "sbc":
			logCopy, err := b.openLog("-sbc-log", o.sbcLog)
			if err != nil {
				return nil, err
			}
			b.sbc = b.newSBC(logCopy)
			b.sbc.fastPath = o.sbcFastPath
			b.targets = append(b.targets, b.sbc)
		case "sbc-kernel":
			logCopy, err := b.openLog("-sbc-log", o.sbcLog)
			if err != nil {
				return nil, err
			}
			k := b.newSBC(logCopy)
			k.label, k.fastPath = "sbc-kernel", o.kernelHook
			b.kernel = k
			b.targets = append(b.targets, k)
		case "bare":
			if o.kernelHook != "xdp" {
				return nil, fmt.Errorf("-target bare: an XDP forwarder; -kernel-hook %s has no bare counterpart", o.kernelHook)
			}
			b.targets = append(b.targets, newBareTarget(o.lab, o.sbcPortMin))
		case "rtpengine":
			// Before any run, rather than after the others'.
			if _, err := rtpengine.Find(o.rtpeBin); err != nil {
				b.close()
				return nil, fmt.Errorf("-target rtpengine: %w", err)
			}
			logCopy, err := b.openLog("-rtpengine-log", o.rtpeLog)
			if err != nil {
				return nil, err
			}
			rt := newRTPengineTarget(o.rtpeBin, o.rtpeIP, o.rtpePortMin, logCopy)
			if o.lab != nil {
				rt.netns, rt.ngPort = o.lab.SBCNetns, 2223
			}
			b.targets = append(b.targets, rt)
		case "direct":
			b.targets = append(b.targets, &directTarget{})
		}
	}
	b.report = jsonReport{Machine: thisMachine(), Flags: map[string]any{
		"target": strings.Join(o.targets, ","), "calls": o.calls, "duration": o.duration.String(),
		"rate": o.rate, "senders": o.senders, "receivers": o.receivers, "sweep": o.sweep, "max_calls": o.maxCalls,
	}}
	return b, nil
}

// openLog opens a target's log copy for appending; nil when path is "".
func (b *bench) openLog(flag, path string) (io.Writer, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	b.logFiles = append(b.logFiles, f)
	return f, nil
}

// newSBC is a daemon target as the options say; in a lab, in its sbc
// namespace on the lab's interfaces.
func (b *bench) newSBC(logCopy io.Writer) *sbcTarget {
	o := b.o
	t := newSBCTarget(o.sbcBin, false, o.sbcPortMin, logCopy)
	if b.sbc != nil && b.sbc.bin != "" {
		t.bin = b.sbc.bin
	}
	t.steering, t.workers, t.ip = o.sbcSteering, o.sbcWorkers, o.sbcIP
	if o.lab != nil {
		t.netns, t.interfaces, t.sipPort = o.lab.SBCNetns, o.lab.Interfaces, 5060
	}
	return t
}

func (b *bench) close() {
	if b.sbc != nil {
		b.sbc.cleanup()
	}
	if b.kernel != nil {
		b.kernel.cleanup()
	}
	for _, f := range b.logFiles {
		f.Close()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (b *bench) config(calls int) runConfig {
	return runConfig{
		calls: calls, idle: b.o.idleCalls, duration: b.o.duration, rate: b.o.rate, setupTimeout: b.o.setupTimeout,
		inFlight: b.o.inFlight, senders: b.o.senders, sendBatch: b.o.sendBatch, receivers: b.o.receivers, drain: 500 * time.Millisecond,
		uacIP: b.o.uacIP, uasIP: b.o.uasIP, sipLog: b.sipLog, progress: b.prog, floodPPS: b.o.floodPPS, floodDst: b.o.sbcIP, measureAfter: b.o.measureAfter, srtp: b.o.srtp,
	}
}

// one runs calls calls through t, adds the outcome to the report and the
// table, and returns the result (nil on failure).
func (b *bench) one(ctx context.Context, t target, calls int, tab *table, stderr io.Writer) *result {
	return b.oneWith(ctx, t, b.config(calls), tab, stderr)
}

func (b *bench) oneWith(ctx context.Context, t target, cfg runConfig, tab *table, stderr io.Writer) *result {
	calls := cfg.calls
	res, err := runOnce(ctx, cfg, t)
	b.prog.clear()
	if err != nil {
		b.report.Failed = append(b.report.Failed, failedRun{Target: t.name(), Calls: calls, Error: err.Error()})
		tab.failed(t.name(), calls, err)
		fmt.Fprintf(stderr, "sbc-bench: %s, %d calls: %v\n", t.name(), calls, err)
		return nil
	}
	b.report.Runs = append(b.report.Runs, res)
	tab.row(res)
	for _, p := range res.problems() {
		fmt.Fprintf(stderr, "sbc-bench: %s, %d calls: %s\n", t.name(), calls, p)
	}
	return res
}

func (b *bench) runAll(ctx context.Context, stdout, stderr io.Writer) int {
	tab := newTable(stdout)
	code := exitOK
	if !b.o.sweep {
		var floods []string
		for _, t := range slices.Repeat(b.targets, b.o.repeat) {
			if b.o.floodCompare {
				// The same run without the flood first: the difference is
				// what the flood cost.
				quiet := b.config(b.o.calls)
				quiet.floodPPS = 0
				base := b.oneWith(ctx, t, quiet, tab, stderr)
				flooded := b.one(ctx, t, b.o.calls, tab, stderr)
				if base == nil || flooded == nil {
					code = exitFail
				} else {
					floods = append(floods, floodCost(base, flooded))
				}
				continue
			}
			if b.one(ctx, t, b.o.calls, tab, stderr) == nil {
				code = exitFail
			}
			if ctx.Err() != nil {
				break
			}
		}
		notes(stdout, b.report.Runs)
		if b.o.repeat > 1 {
			fmt.Fprintf(stdout, "\n%s", means(b.report.Runs))
		}
		for _, f := range floods {
			fmt.Fprintf(stdout, "\n%s\n", f)
		}
		b.compare(stdout)
		return code
	}
	for _, t := range b.targets {
		sw := b.sweep(ctx, t, tab, stderr)
		b.report.Sweeps = append(b.report.Sweeps, sw)
		if sw.MaxPassing == 0 {
			code = exitFail
		}
		if ctx.Err() != nil {
			code = exitFail
			break
		}
	}
	notes(stdout, b.report.Runs)
	fmt.Fprintln(stdout)
	for _, sw := range b.report.Sweeps {
		fmt.Fprintln(stdout, sw.String())
	}
	b.compare(stdout)
	return code
}

// compare adds sbc against rtpengine to the report, when both ran.
func (b *bench) compare(stdout io.Writer) {
	if c := compare(b.report.Runs, b.report.Sweeps); c != nil {
		b.report.Comparison = c
		fmt.Fprintf(stdout, "\n%s\n", c)
	}
}
