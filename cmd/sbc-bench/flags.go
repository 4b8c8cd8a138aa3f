//go:build linux

package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
)

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
