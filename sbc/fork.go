package sbc

import (
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A call to a user rings all its registered devices at once (parallel
// forking, RFC 3261 §16.7 as a B2BUA does it): one B leg, INVITE and
// transaction per device, each a dialog of its own. The first 2xx wins
// and becomes the call's B leg; the others are cancelled ("Call completed
// elsewhere", RFC 3326, so phones log no missed call), and a 2xx that
// crosses the CANCEL is ACKed and hung up. When every device refuses, the
// caller gets the best refusal.

// fork is one device called, or the one trunk of an ordinary call.
type fork struct {
	leg         *leg
	inv         *sip.Request
	tx          sip.ClientTransaction
	provisional bool // a 1xx came: CANCEL may be sent (RFC 3261 §9.1)
	cancelSent  bool
	status      int  // its refusal (or 408/503 when it failed), 0 while it may answer
	failed      bool // no answer, or its transport failed
	// dropped: let go (dropFork), its transaction watched by a goroutine
	// of its own, which alone touches it from then on.
	dropped bool
}

// devicesOf is the peers a call to user rings: each device it has
// registered, the one that registered last first; none when it has none.
func (s *Server) devicesOf(user string) []*Trunk {
	d, ok := s.ctl.Device(user)
	if !ok {
		return nil
	}
	var out []*Trunk
	for _, b := range s.dev.reg.Lookup(user, time.Now()) {
		var contact sip.Uri
		if err := sip.ParseUri(b.Contact, &contact); err != nil {
			continue
		}
		if _, err := netip.ParseAddrPort(b.Source); err != nil {
			continue
		}
		out = append(out, s.newDeviceTrunk(d.User, b.Transport, b.Source, contact))
	}
	return out
}

// cancel sends CANCEL for a fork that rang, once.
func (c *call) cancelFork(f *fork, hdrs ...sip.Header) {
	if f.provisional && !f.cancelSent && f.status == 0 {
		f.cancelSent = c.cancelB(f.inv, hdrs...)
	}
}

// completedElsewhere is the Reason of the CANCELs of the devices that did
// not answer a forked call (RFC 3326): phones log no missed call.
func completedElsewhere() sip.Header {
	return sip.NewHeader("Reason", `SIP;cause=200;text="Call completed elsewhere"`)
}

// dropFork lets go of a device that lost the race, or of every other
// device when one declined (a 6xx, RFC 3261 §16.7 step 5; reason nil):
// cancelled if it rang (else as soon as it does), ACKed and hung up if
// its 2xx crossed the CANCEL. A final refusal ends the watch (sipgo's
// transaction ACKs its retransmissions, Timer D); no answer within Timer
// B, or a shutdown, ends the transaction.
func (c *call) dropFork(f *fork, reason func() sip.Header) {
	if f.status != 0 || f.dropped {
		return
	}
	f.dropped = true
	var hdrs []sip.Header
	if reason != nil {
		hdrs = append(hdrs, reason())
	}
	c.cancelFork(f, hdrs...)
	watching := c.s.track(func() {
		giveUp := time.NewTimer(64 * sip.T1)
		defer giveUp.Stop()
		for {
			select {
			case res := <-f.tx.Responses():
				switch code := res.StatusCode; {
				case code < 200:
					f.provisional = true
					c.cancelFork(f, hdrs...)
				case code < 300:
					c.hangUpFork(f, res)
					return
				default:
					return
				}
			case <-f.tx.Done():
				return
			case <-giveUp.C:
				f.tx.Terminate()
				return
			case <-c.s.stop:
				f.tx.Terminate()
				return
			}
		}
	})
	if !watching {
		f.tx.Terminate() // shutting down: nobody reads its responses
	}
}

// hangUpFork ACKs a losing device's 2xx and ends its dialog with BYE.
func (c *call) hangUpFork(f *fork, res *sip.Response) {
	tag := dialogTag(res)
	if tag == "" {
		return // cannot be ACKed: its Timer H ends it
	}
	l := f.leg
	l.mu.Lock()
	l.remoteTag = tag
	l.routes = routeSet(res.GetHeaders("Record-Route"))
	l.mu.Unlock()
	l.setTarget(res.Contact())
	c.s.writeAck(l.newRequest(c.s, sip.ACK, f.inv.CSeq().SeqNo))
	c.bye(l)
}

// bestStatus is what the caller is told when every fork refused: a 6xx
// if any (the callee declines everywhere), else the lowest class, the
// first of it to come (RFC 3261 §16.7 step 6).
func bestStatus(forks []*fork) int {
	best := 0
	for _, f := range forks {
		switch {
		case f.status == 0: // dropped: another device declined
		case f.status >= 600 && best < 600:
			best = f.status
		case best == 0 || best < 600 && f.status/100 < best/100:
			best = f.status
		}
	}
	return best
}
