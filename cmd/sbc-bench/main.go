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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ladder" {
		return runLadder(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "sms" {
		return runSMS(ctx, args[1:], stdout, stderr)
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
