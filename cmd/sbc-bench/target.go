//go:build linux

package main

import (
	"context"
	"net/netip"
)

// A target is what carries the media between the harness's UAC and UAS: the
// sbc daemon, rtpengine, nothing at all (direct), and later other relays
// (Kamailio+rtpengine). The harness drives every target the same way: start,
// set up calls with SIP to sipAddr, send media, hang up, stop.
type target interface {
	name() string
	// start readies the target for e.calls calls between the UAC and UAS of
	// e, and returns once it takes calls.
	start(ctx context.Context, e env) error
	// sipAddr is where the UAC sends its INVITEs: a B2BUA or proxy, or the
	// UAS itself when nothing stands in between.
	sipAddr() netip.AddrPort
	// pid is the relay's process, whose CPU and memory are measured; 0 when
	// there is none.
	pid() int
	// died is closed if the target's process ends by itself during the run;
	// nil (never ready) for a target with no process.
	died() <-chan struct{}
	// stop ends the target, gracefully within ctx, forcibly after, and
	// reports what it counted. It may be called after a failed start.
	stop(ctx context.Context) (relayReport, error)
}

// An anchor is a target that anchors media outside SIP, through a control
// protocol, the way Kamailio drives rtpengine (offer, answer, delete). The
// UAC passes its offer through it before sending the INVITE, and the
// answer from the 200 before using it; the UAS sees only rewritten SDP.
type anchor interface {
	offer(ctx context.Context, c callRef, sdp []byte) ([]byte, error)
	answer(ctx context.Context, c callRef, sdp []byte) ([]byte, error)
	delete(ctx context.Context, c callRef) error
}

// callRef names a call to an anchor, as rtpengine's ng protocol would.
type callRef struct {
	index   int // 0..calls-1
	callID  string
	fromTag string
	toTag   string // empty until answered
}

// env is what a target learns of the harness.
type env struct {
	calls   int
	uacAddr netip.AddrPort // the UAC's SIP socket: calls come from here (trunk "a")
	uasAddr netip.AddrPort // the UAS's SIP socket: calls go there (trunk "b")
	workDir string         // for config files and logs; removed after the run
	srtp    string         // SRTP suite of the A leg (-srtp); "": plain RTP
}

// relayReport is what a target counted itself. Fields a target cannot know
// stay zero; Counted says whether the packet counters mean anything.
type relayReport struct {
	Counted    bool   `json:"counted"`
	NotCounted string `json:"not_counted,omitempty"` // why not, for a relay whose counters could not be read
	Source     string `json:"source,omitempty"`      // where the counters come from
	CallsEnded int    `json:"calls_ended"`           // calls the relay logged as ended
	Forwarded  uint64 `json:"forwarded_rtp"`         // RTP packets forwarded, both directions
	Dropped    uint64 `json:"dropped"`               // received but not forwarded
	Kernel     uint64 `json:"kernel_rtp"`            // of Forwarded, by the kernel fast path
	// SRTPAuthFailures are SRTP packets the relay refused (sbc's
	// srtp_auth_failures).
	SRTPAuthFailures uint64         `json:"srtp_auth_failures"`
	EndedBy          map[string]int `json:"ended_by,omitempty"`
	PortsChecked     bool           `json:"ports_checked"`
	FreePairs        int            `json:"free_port_pairs"`
	TotalPairs       int            `json:"total_port_pairs"`
	LeakedPairs      int            `json:"leaked_port_pairs"`
	ExitCode         int            `json:"exit_code"`
	Errors           int            `json:"errors_logged"`
	Warnings         int            `json:"warnings_logged"`
	FirstError       string         `json:"first_error,omitempty"`
}

// directTarget is no relay: the UAC invites the UAS directly and the two
// exchange RTP between their own sockets. What it measures is the harness
// itself: its latency floor and the most it can push.
type directTarget struct{ uas netip.AddrPort }

func (*directTarget) name() string                           { return "direct" }
func (d *directTarget) start(_ context.Context, e env) error { d.uas = e.uasAddr; return nil }
func (d *directTarget) sipAddr() netip.AddrPort              { return d.uas }
func (*directTarget) pid() int                               { return 0 }
func (*directTarget) died() <-chan struct{}                  { return nil }
func (*directTarget) stop(context.Context) (relayReport, error) {
	return relayReport{}, nil
}
