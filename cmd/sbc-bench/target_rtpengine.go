//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"sbc/sbc/sbctest/rtpengine"
)

// rtpengineTarget runs Sipwise's rtpengine and drives it the way Kamailio's
// rtpengine module does: SIP goes from the UAC straight to the UAS, and the
// UAC passes its offer through ng "offer" before the INVITE, the 200's
// answer through "answer", and sends "delete" at hang-up. So the media flows
// UAC ↔ rtpengine ↔ UAS, and rtpengine is the process measured.
type rtpengineTarget struct {
	bin     string     // "" is rtpengine in PATH
	ip      netip.Addr // its media interface and ng listener
	portMin int
	logCopy io.Writer // every log line also goes here, when set
	netns   string    // network namespace to run in; "": this one
	ngPort  int       // its ng port; 0: a free one

	uas  netip.AddrPort
	srtp string // the A leg's SRTP suite (-srtp), "": plain
	proc *rtpengine.Proc
}

const (
	// rtpengineThreads is its --num-threads: the machine's two cores, as the
	// sbc daemon's GOMAXPROCS is; rtpengine's own default would be 4 on a
	// machine with fewer than 4 cores.
	rtpengineThreads = 2
	// rtpenginePortsPerCall: an RTP and an RTCP port on each side.
	rtpenginePortsPerCall = 4
)

func newRTPengineTarget(bin string, ip netip.Addr, portMin int, logCopy io.Writer) *rtpengineTarget {
	return &rtpengineTarget{bin: bin, ip: ip, portMin: portMin, logCopy: logCopy}
}

func (*rtpengineTarget) name() string { return "rtpengine" }

// portRange sizes the media range for calls, with the slack the sbc target
// has.
func (t *rtpengineTarget) portRange(calls int) (lo, hi int, err error) {
	lo = t.portMin
	hi = lo + rtpenginePortsPerCall*calls + 2*sbcMediaSlack - 1
	if hi > 65535 {
		return 0, 0, fmt.Errorf("%d calls need %d rtpengine ports from %d, past 65535: lower -rtpengine-port-min or -calls", calls, hi-lo+1, lo)
	}
	return lo, hi, nil
}

func (t *rtpengineTarget) start(ctx context.Context, e env) error {
	lo, hi, err := t.portRange(e.calls)
	if err != nil {
		return err
	}
	t.uas, t.srtp = e.uasAddr, e.srtp
	t.proc, err = rtpengine.Start(ctx, rtpengine.Config{Bin: t.bin, IP: t.ip, PortMin: lo, PortMax: hi,
		Threads: rtpengineThreads, Dir: e.workDir, Log: t.logCopy, Netns: t.netns, NGPort: t.ngPort})
	return err
}

// SIP goes straight to the UAS, as through a proxy that only anchors media.
func (t *rtpengineTarget) sipAddr() netip.AddrPort { return t.uas }

func (t *rtpengineTarget) pid() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.Pid()
}

func (t *rtpengineTarget) died() <-chan struct{} {
	if t.proc == nil {
		return nil
	}
	return t.proc.Exited()
}

func dialog(c callRef) rtpengine.Dialog {
	return rtpengine.Dialog{CallID: c.callID, FromTag: c.fromTag, ToTag: c.toTag}
}

func (t *rtpengineTarget) offer(ctx context.Context, c callRef, sdp []byte) ([]byte, error) {
	if t.srtp != "" {
		// The caller offers SRTP; the callee gets plain RTP, as
		// Kamailio's rtpengine_offer("RTP/AVP") asks.
		return t.proc.OfferWith(ctx, dialog(c), sdp, rtpengine.Dict{"transport-protocol": "RTP/AVP"})
	}
	return t.proc.Offer(ctx, dialog(c), sdp)
}

func (t *rtpengineTarget) answer(ctx context.Context, c callRef, sdp []byte) ([]byte, error) {
	return t.proc.Answer(ctx, dialog(c), sdp)
}

func (t *rtpengineTarget) delete(ctx context.Context, c callRef) error {
	return t.proc.Delete(ctx, dialog(c))
}

// stop reads rtpengine's counters, then stops it (killed at ctx's end).
func (t *rtpengineTarget) stop(ctx context.Context) (relayReport, error) {
	if t.proc == nil {
		return relayReport{}, nil
	}
	p := t.proc
	t.proc = nil
	rep := relayReport{ExitCode: -1}
	var serr error
	select {
	case <-p.Exited(): // Stop says so
	default:
		var st rtpengine.Statistics
		st, serr = p.Statistics(ctx)
		switch {
		case errors.Is(serr, rtpengine.ErrNoCounters):
			rep.NotCounted, serr = serr.Error(), nil
		case serr == nil:
			fillFromStatistics(&rep, st)
		}
	}
	err := p.Stop(ctx)
	logs := p.Logs()
	rep.Errors, rep.Warnings, rep.FirstError = logs.Errors, logs.Warnings, logs.FirstError
	if code, ok := p.ExitCode(); ok {
		rep.ExitCode = code
	}
	if err == nil && serr != nil {
		err = fmt.Errorf("read rtpengine statistics: %w", serr)
	}
	return rep, err
}

// fillFromStatistics: rtpengine counts what it received on its media ports
// and how much of it it could not relay.
func fillFromStatistics(rep *relayReport, st rtpengine.Statistics) {
	rep.Counted, rep.Source = true, "ng statistics before stop"
	rep.Forwarded, rep.Dropped = st.Packets-min(st.Errors, st.Packets), st.Errors
	rep.EndedBy = map[string]int{}
	for how, n := range st.Ended {
		if n > 0 {
			rep.EndedBy[how] = int(n)
			rep.CallsEnded += int(n)
		}
	}
	if len(st.Ports) > 0 {
		rep.PortsChecked = true
		for _, p := range st.Ports {
			rep.FreePairs += int(p.Free / 2)
			rep.TotalPairs += int(p.Total / 2)
			rep.LeakedPairs += int(p.Used / 2)
		}
	}
}
