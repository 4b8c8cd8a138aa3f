//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
)

// runConfig is one run: calls calls through one target.
type runConfig struct {
	calls        int           // calls with media
	idle         int           // more calls, set up after those, that carry no media
	duration     time.Duration // media phase
	rate         float64       // calls/s set up, and hung up
	setupTimeout time.Duration // per call, INVITE to 200
	inFlight     int           // calls being set up at once, at most
	senders      int
	sendBatch    int // packets per sendmmsg on a raw socket; 0: a write per packet
	receivers    int
	drain        time.Duration // wait for packets in flight after the last send
	uacIP, uasIP netip.Addr
	srtp         string        // SRTP suite of the A leg (SDES); "": plain RTP
	floodPPS     int           // packets/s to closed media ports during the media phase
	floodDst     netip.Addr    // the target's media address
	measureAfter time.Duration // CPU measured from this far into the media phase
	sipLog       *slog.Logger
	progress     *progress // nil: none
}

// Loopback addresses of the harness's two sides; on Linux all of
// 127.0.0.0/8 is local.
var (
	defaultUACIP = netip.MustParseAddr("127.0.0.10") // trunk "a"
	defaultUASIP = netip.MustParseAddr("127.0.0.20") // trunk "b"
)

// errTargetDied is the cause of a run's context when the target's process
// ended by itself.
var errTargetDied = errors.New("the target's process exited during the run")

// fdsPerCall is what the harness itself opens per call: one socket per
// stream end.
const fdsPerCall = 2

// checkFiles fails early, and clearly, when n more descriptors would pass the
// open-files limit.
func checkFiles(who string, n int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil // cannot tell; the socket calls will say
	}
	if uint64(n) > rl.Max {
		return fmt.Errorf("%s needs about %d open files, over the open-files limit %d: use fewer calls", who, n, rl.Max)
	}
	return nil
}

// socketPerPort tells whether t binds one socket per media port, 2 pairs
// per call: rtpengine does, and the daemon without steering.
func socketPerPort(t target) bool {
	switch t := t.(type) {
	case *rtpengineTarget:
		return true
	case *sbcTarget:
		return t.steering == "off"
	}
	return false
}

// runOnce sets up cfg.calls calls through t, sends media for cfg.duration,
// hangs up and stops t. Whatever fails, t is stopped and every socket
// closed before it returns.
func runOnce(ctx context.Context, cfg runConfig, t target) (res *result, err error) {
	if err := checkFiles("the harness", fdsPerCall*cfg.calls+256); err != nil {
		return nil, err
	}
	if socketPerPort(t) {
		if err := checkFiles(t.name(), 4*cfg.calls+256); err != nil {
			return nil, err
		}
	}
	// Every phase is bounded; this bounds them together too.
	limit := time.Duration(float64(cfg.calls+cfg.idle)/cfg.rate*2*float64(time.Second)) + cfg.setupTimeout + cfg.duration + 2*time.Minute
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, limit, fmt.Errorf("run of %d calls took over %v", cfg.calls, limit))
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	work, err := os.MkdirTemp("", "sbc-bench-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)

	cfg.progress.set("%s: opening %d media sockets", t.name(), fdsPerCall*cfg.calls)
	gen, err := newGenerator(cfg.calls, cfg.uacIP, cfg.uasIP, cfg.senders, cfg.receivers, cfg.sendBatch)
	if err != nil {
		return nil, err
	}
	if cfg.srtp != "" {
		gen.useSRTP()
	}
	defer gen.close()

	// The UAS readies call i's B end when the offer arrives: its peer is
	// whatever the offer names (the relay, or the UAC's A end when direct).
	answer := func(i int, offer []byte) ([]byte, error) {
		if i >= cfg.calls {
			return sdpFor(idleMedia(cfg.uasIP), uint64(i), ""), nil
		}
		peer, err := mediaAddr(offer)
		if err != nil {
			return nil, err
		}
		b := gen.endB(i)
		if err := b.connect(peer); err != nil {
			return nil, err
		}
		return sdpFor(b.local, uint64(i), ""), nil
	}
	callee, err := newUAS(cfg.uasIP, cfg.calls+cfg.idle, cfg.sipLog, answer)
	if err != nil {
		return nil, err
	}
	defer callee.close()
	caller, err := newUAC(cfg.uacIP, cfg.calls+cfg.idle, cfg.sipLog)
	if err != nil {
		return nil, err
	}
	defer caller.close()

	cfg.progress.set("%s: starting", t.name())
	e := env{calls: cfg.calls + cfg.idle, uacAddr: caller.addr, uasAddr: callee.addr, workDir: work, srtp: cfg.srtp}
	stopped := false
	defer func() {
		if stopped {
			return
		}
		// A failed run: stop the target quickly, and say what became of it.
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_, serr := t.stop(sctx)
		switch {
		case serr == nil:
		case errors.Is(err, errTargetDied):
			err = fmt.Errorf("%w: %v", err, serr)
		default:
			err = fmt.Errorf("%w\n(and stopping %s: %v)", err, t.name(), serr)
		}
	}()
	if err := t.start(ctx, e); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.name(), err)
	}
	// Read here, not in the goroutine, which may first run after a failed
	// run has stopped t.
	died := t.died()
	go func() { // ends with the run: ctx is cancelled on return
		select {
		case <-died:
			cancel(errTargetDied)
		case <-ctx.Done():
		}
	}()
	caller.to, caller.anchor = t.sipAddr(), nil
	if a, ok := t.(anchor); ok {
		caller.anchor = a
	}

	res = &result{Target: t.name(), Calls: cfg.calls, IdleCalls: cfg.idle, Senders: gen.senders, Receivers: gen.receivers, SRTP: cfg.srtp}
	pid := t.pid()
	if pid != 0 {
		res.Relay = &relayUsage{}
		if res.Relay.RSSBeforeKiB, err = procRSS(pid); err != nil {
			return nil, err
		}
	}

	// Calls up.
	t0 := time.Now()
	if err := setupCalls(ctx, cfg, gen, caller, callee); err != nil {
		return nil, phaseErr(ctx, "set up calls", err)
	}
	res.SetupS = time.Since(t0).Seconds()

	// Media.
	cfg.progress.set("%s: media for %v", t.name(), cfg.duration)
	stopProgress := cfg.progress.media(t.name(), gen, cfg.duration)
	var cpu0 time.Duration
	if pid != 0 {
		if cpu0, err = procCPU(pid); err != nil {
			stopProgress()
			return nil, err
		}
	}
	var fl *flooder
	if cfg.floodPPS > 0 {
		if fl, err = newFlooder(cfg.uacIP, cfg.floodDst, floodPorts(t, cfg.calls)); err != nil {
			stopProgress()
			return nil, err
		}
		defer fl.close()
	}
	self0, wall0, mach0 := selfCPU(), time.Now(), machineCPU()
	// With -measure-after, the CPU figures cover the media phase from then
	// on: what the target does in steady state, not while it sets the
	// calls' streams up (the kernel fast path takes them at their first
	// packets).
	warm := make(chan struct{})
	var rx0 uint64
	if cfg.measureAfter > 0 {
		go func() {
			defer close(warm)
			select {
			case <-time.After(cfg.measureAfter):
			case <-ctx.Done():
				return
			}
			if pid != 0 {
				cpu0, _ = procCPU(pid)
			}
			self0, wall0, mach0, rx0 = selfCPU(), time.Now(), machineCPU(), gen.received.Load()
		}()
	} else {
		close(warm)
	}
	floodDone := make(chan struct{})
	floodStart := time.Now()
	if fl != nil {
		fctx, stopFlood := context.WithCancel(ctx)
		go func() { defer close(floodDone); fl.run(fctx, cfg.floodPPS) }()
		defer stopFlood()
		err = gen.run(ctx, cfg.duration, cfg.drain)
		stopFlood()
		<-floodDone
	} else {
		err = gen.run(ctx, cfg.duration, cfg.drain)
	}
	self1, wall1, mach1 := selfCPU(), time.Now(), machineCPU()
	<-warm
	res.windowReceived = gen.received.Load() - rx0
	stopProgress()
	if err != nil {
		return nil, phaseErr(ctx, "media", err)
	}
	if pid != 0 {
		cpu1, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		res.Relay.cpu, res.Relay.wall = cpu1-cpu0, wall1.Sub(wall0)
		if res.Relay.RSSCallsKiB, err = procRSS(pid); err != nil {
			return nil, err
		}
	}
	res.gen.cpu, res.gen.wall = self1-self0, wall1.Sub(wall0)
	res.Machine.BusyPct, res.Machine.IdlePct, res.Machine.StealPct = mach0.share(mach1)
	res.Machine.CPUSeconds = mach0.busySeconds(mach1)
	if fl != nil {
		res.Flood = &floodReport{Sent: fl.sent, PPS: float64(fl.sent) / wall1.Sub(floodStart).Seconds()}
	}
	if n := caller.byes.Load(); n > 0 {
		return nil, fmt.Errorf("%s hung up %d calls by itself during the media phase", t.name(), n)
	}

	// Calls down.
	if err := teardownCalls(ctx, cfg, caller, callee); err != nil {
		return nil, phaseErr(ctx, "hang up", err)
	}
	if pid != 0 {
		if res.Relay.RSSAfterKiB, err = procRSS(pid); err != nil {
			return nil, err
		}
	}

	cfg.progress.set("%s: stopping", t.name())
	sctx, c := context.WithTimeout(ctx, 30*time.Second)
	defer c()
	rep, err := t.stop(sctx)
	stopped = true
	if err != nil {
		return nil, fmt.Errorf("stop %s: %w", t.name(), err)
	}
	cfg.progress.clear()
	res.fill(gen, rep)
	return res, nil
}

// phaseErr names the phase, and the target's death when that is why (the
// calls' own errors then say nothing more).
func phaseErr(ctx context.Context, phase string, err error) error {
	if errors.Is(context.Cause(ctx), errTargetDied) {
		return fmt.Errorf("%s: %w", phase, errTargetDied)
	}
	return fmt.Errorf("%s: %w", phase, err)
}

// paced runs f(i) for i in 0..n-1, started at rate per second, at most
// inFlight at once. It stops starting new ones at the first error (or ctx's
// end), waits for those running and returns every failure summarised.
func paced(ctx context.Context, n int, rate float64, inFlight int, what string, p *progress, f func(int) error) error {
	var (
		wg       sync.WaitGroup
		fail     failures
		finished atomic.Int64
		sem      = make(chan struct{}, max(1, inFlight))
	)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
launch:
	for i := range n {
		if fail.count() > 0 {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				break launch
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		wg.Go(func() {
			defer func() { <-sem; finished.Add(1) }()
			if err := f(i); err != nil {
				fail.add(err)
			}
		})
		p.set("%s %d/%d", what, finished.Load(), n)
	}
	wg.Wait()
	if err := fail.err(what); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// callContext bounds one SIP exchange by d and by parent. Its cause is
// always sipgo's WaitAnswerForceCancelErr, which makes sipgo give up on an
// unanswered INVITE at once instead of sending CANCEL and waiting 64*T1:
// a run that gives up on a call is aborting anyway.
func callContext(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	t := time.AfterFunc(d, func() { cancel(sipgo.WaitAnswerForceCancelErr) })
	stop := context.AfterFunc(parent, func() { cancel(sipgo.WaitAnswerForceCancelErr) })
	return ctx, func() { t.Stop(); stop(); cancel(nil) }
}

// idleMedia is the media address the SDP of a call without media names on
// ip: the discard port, where nothing listens and nothing is sent.
func idleMedia(ip netip.Addr) netip.AddrPort { return netip.AddrPortFrom(ip, 9) }

// setupCalls places every call and readies the A end of those with media.
func setupCalls(ctx context.Context, cfg runConfig, gen *generator, caller *uac, callee *uas) error {
	total := cfg.calls + cfg.idle
	err := paced(ctx, total, cfg.rate, cfg.inFlight, "calls set up", cfg.progress, func(i int) error {
		cctx, cancel := callContext(ctx, cfg.setupTimeout)
		defer cancel()
		local, crypto := idleMedia(cfg.uacIP), ""
		var key sdesKey
		if i < cfg.calls {
			local = gen.endA(i).local
			if cfg.srtp != "" {
				var err error
				if key, err = gen.offerSRTP(i, cfg.srtp); err != nil {
					return fmt.Errorf("call %d: %w", i, err)
				}
				crypto = key.line()
			}
		}
		answer, err := caller.invite(cctx, i, sdpFor(local, uint64(i), crypto))
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("call %d: %w", i, context.Cause(ctx))
			}
			if cctx.Err() != nil {
				return fmt.Errorf("call %d: no final answer to the INVITE within %v (-setup-timeout)", i, cfg.setupTimeout)
			}
			return err
		}
		peer, err := mediaAddr(answer)
		if err != nil {
			return fmt.Errorf("call %d: 200: %w", i, err)
		}
		if i < cfg.calls {
			if crypto != "" {
				if err := gen.answerSRTP(i, key, answer); err != nil {
					return fmt.Errorf("call %d: 200: %w", i, err)
				}
			}
			if err := gen.endA(i).connect(peer); err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
		}
		return caller.ack(cctx, i)
	})
	if err == nil {
		err = callee.fail.err("calls at the UAS")
	}
	if err != nil {
		return err
	}
	// The 200 left the UAS before the ACK got there: wait for the ACKs, so
	// no call is still being confirmed when media starts.
	return waitFor(ctx, 10*time.Second, func() bool { return callee.acked.Load() == int64(total) },
		func() error {
			if err := callee.fail.err("calls at the UAS"); err != nil {
				return err
			}
			return fmt.Errorf("the UAS got %d ACKs of %d calls", callee.acked.Load(), total)
		})
}

// teardownCalls hangs every call up from the UAC and waits until the UAS has
// seen every BYE.
func teardownCalls(ctx context.Context, cfg runConfig, caller *uac, callee *uas) error {
	total := cfg.calls + cfg.idle
	err := paced(ctx, total, cfg.rate, cfg.inFlight, "calls hung up", cfg.progress, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, cfg.setupTimeout)
		defer cancel()
		if err := caller.bye(cctx, i); err != nil {
			if cctx.Err() != nil && ctx.Err() == nil {
				return fmt.Errorf("call %d: no answer to the BYE within %v", i, cfg.setupTimeout)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return waitFor(ctx, 10*time.Second, func() bool { return callee.byes.Load() == int64(total) },
		func() error { return fmt.Errorf("the UAS got %d BYEs of %d calls", callee.byes.Load(), total) })
}

// waitFor polls cond until it holds, ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool, fail func() error) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fail()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// floodPorts are media ports of t that no call of a run of calls calls
// holds: the top of a daemon's range (pairs go out from the bottom, and
// the range has slack), above the calls' ports elsewhere.
func floodPorts(t target, calls int) []uint16 {
	lo, hi := 0, 0
	switch t := t.(type) {
	case *sbcTarget:
		lo, hi, _ = t.portRange(calls)
	case *rtpengineTarget:
		lo, hi, _ = t.portRange(calls)
	case *bareTarget:
		lo = t.portMin
		hi = lo + 4*calls + 63
	}
	var ports []uint16
	for p := max(lo, hi-31); p <= hi && p > 0; p++ {
		ports = append(ports, uint16(p))
	}
	if len(ports) == 0 {
		ports = []uint16{9}
	}
	return ports
}
