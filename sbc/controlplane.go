package sbc

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/messaging"
	"sbc/control/store"
	"sbc/media"
)

// ControlPlane is what the SBC needs of the control plane: a decision on
// each call before it is routed, from memory, and the call's log rows,
// written without waiting.
type ControlPlane interface {
	AdmitCall(control.Attempt) control.Decision
	// Resume holds a concurrency slot for a call taken over from a
	// previous run (its log row) and weighs it against the balance.
	Resume(row store.Call) control.Decision
	LogCall(store.Call)
	// LogFinal queues a call's final row and calls written once the row
	// (and the call's charge) is committed.
	LogFinal(row store.Call, written func())
	// Device is a SIP user, for the registrar and digest authentication.
	Device(username string) (control.Device, bool)
	HasDevices() bool
	// SaveRegistrations stores a REGISTER's changes; NodeRegistrations
	// reads this node's back at start.
	SaveRegistrations(ctx context.Context, saved, removed []store.Registration) error
	NodeRegistrations(ctx context.Context) ([]store.Registration, error)
	// ReceiveMessage files a carrier's inbound SMS; DeliveryReport applies
	// its report on one the SBC sent (the MESSAGE's Call-ID).
	ReceiveMessage(ctx context.Context, from, to, body string) (store.Message, messaging.Keyword, error)
	DeliveryReport(ctx context.Context, carrierID, raw string) (store.Message, error)
}

// SetControl puts calls under a control plane's policy and logs. Without
// one, calls are routed by the dial plan alone and logged only in the
// daemon's log. Call before Listen.
func (s *Server) SetControl(cp ControlPlane) { s.ctl = cp }

// HangupCall ends the live call whose SID is sid (the API's
// Status=completed, a spent balance), endedBy saying why in its log row;
// false when this node has no such call.
func (s *Server) HangupCall(sid, endedBy string) bool {
	s.mu.Lock()
	var found *call
	for c := range s.calls {
		if c.id == sid {
			found = c
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	go found.hangup(endedBy)
	return true
}

// CallSIDs are the SIDs of the calls this server carries.
func (s *Server) CallSIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.calls))
	for c := range s.calls {
		out = append(out, c.id)
	}
	return out
}

// route picks the destination trunk of an initial INVITE from trunk
// from, and the user part the B leg calls: the control plane's decision
// first (account, limits, class of restriction, the number's own target),
// then the dial plan. A call of an account is routed and sent on as the
// E.164 number (+CC…) it was checked as.
func (s *Server) route(from *Trunk, req *sip.Request) (*Trunk, string, control.Decision, *rejection) {
	callee := req.Recipient.User
	var d control.Decision
	if s.ctl != nil {
		at := control.Attempt{Account: from.Account, From: req.From().Address.User, To: callee}
		if from.device != nil {
			at = control.Attempt{User: from.device.user, From: req.From().Address.User, To: callee}
		}
		d = s.ctl.AdmitCall(at)
		if !d.Admitted() {
			var hdrs []sip.Header
			if d.RetryAfter > 0 {
				hdrs = append(hdrs, sip.NewHeader("Retry-After", strconv.Itoa(d.RetryAfter)))
			}
			if d.Cause > 0 {
				// RFC 3326 §2 (which considers responses too): the
				// refusal's own status, 402 for a spent balance, a final
				// response SIP peers would not act on.
				hdrs = append(hdrs, sip.NewHeader("Reason", "SIP;cause="+strconv.Itoa(d.Cause)+`;text="`+warnText(d.Reason)+`"`))
			}
			return nil, "", d, reject(d.Code, reason(d.Code), append(hdrs, s.warning(d.Reason))...)
		}
		if d.Direction == store.DirectionTerminating {
			// An account's call goes on with the number its class of
			// restriction checked, never with digits the carrier might
			// read otherwise (toll fraud by a national or dial-out prefix).
			callee = d.To
		}
		var problem string
		switch {
		case strings.HasPrefix(d.Target, "trunk:"):
			if to := s.trunks.get(d.Target[len("trunk:"):]); to != nil {
				return to, callee, d, nil
			}
			problem = "the number's trunk " + d.Target[len("trunk:"):] + " is not configured"
		case strings.HasPrefix(d.Target, "sip:"):
			if to, user := s.trunkAt(d.Target); to != nil {
				return to, user, d, nil
			}
			problem = "the number's SIP URI is at no configured trunk"
		case strings.HasPrefix(d.Target, "user:"):
			user := d.Target[len("user:"):]
			if to := s.deviceOf(user); to != nil && to.Account == d.Account {
				return to, user, d, nil
			}
			d.Release()
			return nil, "", d, reject(480, "Temporarily Unavailable", s.warning("the user has no device registered"))
		}
		if problem != "" {
			d.Release()
			return nil, "", d, reject(404, "Not Found", s.warning(problem))
		}
	}
	dest, ok := s.plan.Lookup(from.Name, callee)
	if !ok {
		d.Release()
		return nil, "", d, reject(404, "Not Found")
	}
	return s.trunks.get(dest), callee, d, nil
}

// callRow is a call's log row as the control plane keeps it.
func (c *call) callRow() store.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.row
	r.Answered = c.answered
	return r
}

// report queues the call's row with a new status.
func (c *call) report(status string) {
	if c.s.ctl == nil || c.row.SID == "" {
		return
	}
	r := c.callRow()
	r.Status = status
	c.s.ctl.LogCall(r)
}

// reportEnd queues the call's final row: status from how it ended,
// duration, media figures of each leg. The call's record (persist.go)
// is replaced by the row and goes once the row is in the store: a
// daemon killed meanwhile writes the row at its next start, so no
// answered call's end (and charge) is lost.
func (c *call) reportEnd(code int, endedBy string, now time.Time, st media.Stats) {
	if c.s.ctl == nil || c.row.SID == "" {
		c.unpersist()
		return
	}
	r := c.callRow()
	r.Status, r.SIPCode, r.EndedBy, r.Ended = finalStatus(!r.Answered.IsZero(), code, endedBy), code, endedBy, now
	if !r.Answered.IsZero() {
		r.Duration = int(now.Sub(r.Answered).Round(time.Second) / time.Second)
	}
	r.A, r.B = legStats(st.AtoB), legStats(st.BtoA)
	if c.persistEnded(r) {
		c.s.ctl.LogFinal(r, c.unpersist)
		return
	}
	c.s.ctl.LogCall(r)
}

// legStats is the log row's view of the media received from one leg.
func legStats(d media.Direction) store.LegStats {
	return store.LegStats{Packets: int64(d.RTPPackets), Lost: max(0, d.Quality.Lost), JitterMs: d.Quality.JitterMS, MOS: d.Quality.MOS}
}

// finalStatus maps how a call ended to the CPaaS call statuses.
func finalStatus(answered bool, code int, endedBy string) string {
	switch {
	case answered:
		return store.CallCompleted
	case endedBy == endCancel:
		return store.CallCanceled
	case code == 486 || code == 600 || code == 603:
		return store.CallBusy
	case endedBy == endRingTimeout || endedBy == endNoResponse || code == 408 || code == 480:
		return store.CallNoAnswer
	}
	return store.CallFailed
}

// trunkAt is the trunk whose address is the host and port of a sip: URI
// (port 5060 when the URI has none) and the URI's user, or nil.
func (s *Server) trunkAt(uri string) (*Trunk, string) {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil || u.User == "" {
		return nil, ""
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	for i := range s.cfg.Trunks {
		t := &s.cfg.Trunks[i]
		host, p, err := splitHostPort(t.Address)
		if err == nil && p == port && strings.EqualFold(uriHost(host), u.Host) {
			return s.trunks.get(t.Name), u.User
		}
	}
	return nil, ""
}
