// The B leg's answer: provisional responses, the final one, the caller's
// CANCEL and the ring timeout, until the call is up or refused.

package sbc

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control/store"
	"sbc/media"
	"sbc/sbc/sdp"
)

// awaitAnswer is the set-up loop: the forks' responses (one fork but for
// a call to a user with several devices), the caller's CANCEL, the ring
// timeout and shutdown, until a final outcome.
func (c *call) awaitAnswer(req *sip.Request, tx sip.ServerTransaction, forks []*fork, cancelled chan struct{}) {
	ring := time.NewTimer(c.s.cfg.Calls.RingTimeout)
	defer ring.Stop()
	var (
		aborted     bool // the A side is answered; only B needs tidying
		abortStatus int  // status the A side got
		abortBy     string
		earlySDP    []byte // B's SDP from an 18x, used if the 2xx has none
		giveUp      <-chan time.Time
		ctxDone     = c.ctx.Done()
	)
	abort := func(status int, by string) {
		if aborted {
			return
		}
		aborted, abortStatus, abortBy = true, status, by
		if status != 487 { // sipgo answered the CANCEL's INVITE with 487 itself
			c.respondA(tx, req, status, nil)
		}
		for _, f := range forks {
			if !f.dropped {
				c.cancelFork(f)
			}
		}
		giveUp = time.After(64 * sip.T1)
	}
	// end finishes a call that never got established; the B transactions
	// are dropped so a late response cannot find them (see the unhandled
	// response handler for a late 2xx).
	end := func(status int, by string) {
		for _, f := range forks {
			f.tx.Terminate()
		}
		c.finish(status, by)
	}
	// refused ends the set-up once every fork has refused or failed.
	refused := func() bool {
		for _, f := range forks {
			if f.status == 0 && !f.dropped {
				return false
			}
		}
		if aborted {
			c.finish(abortStatus, abortBy)
			return true
		}
		status, by := bestStatus(forks), endError // no device answered at all
		for _, f := range forks {
			if !f.failed {
				by = endRejected
			}
		}
		if by == endError && status == 408 {
			by = endNoResponse
		}
		c.respondA(tx, req, status, nil)
		c.finish(status, by)
		return true
	}
	// The caller's transaction ends before its answer only when its TCP
	// or TLS connection closed (sipgo's terminate-on-close): a CANCEL.
	callerGone := tx.Done()
	const fixed = 5 // cases before the forks': cancelled, ring, shutdown, giveUp, callerGone
	cases := make([]reflect.SelectCase, fixed+2*len(forks))
	for i := range cases {
		cases[i].Dir = reflect.SelectRecv
	}
	for {
		cases[0].Chan, cases[1].Chan = reflect.ValueOf(cancelled), reflect.ValueOf(ring.C)
		cases[2].Chan, cases[3].Chan = reflect.ValueOf(ctxDone), reflect.ValueOf(giveUp)
		cases[4].Chan = reflect.ValueOf(callerGone)
		for i, f := range forks {
			cases[fixed+2*i].Chan, cases[fixed+2*i+1].Chan = reflect.Value{}, reflect.Value{}
			if f.status == 0 && !f.dropped {
				cases[fixed+2*i].Chan, cases[fixed+2*i+1].Chan = reflect.ValueOf(f.tx.Responses()), reflect.ValueOf(f.tx.Done())
			}
		}
		chosen, v, ok := reflect.Select(cases)
		switch chosen {
		case 0:
			cancelled = nil
			abort(487, endCancel)
			continue
		case 1:
			abort(408, endRingTimeout)
			continue
		case 2:
			ctxDone = nil
			abort(503, c.abortReason())
			// Shutting down: wait for B's 487 only briefly.
			giveUp = time.After(byeTimeout)
			continue
		case 3:
			end(abortStatus, abortBy)
			return
		case 4:
			callerGone = nil
			abort(487, endCancel)
			continue
		}
		f := forks[(chosen-fixed)/2]
		if (chosen-fixed)%2 == 1 || !ok { // the transaction failed
			f.status, f.failed = 503, true
			if errors.Is(f.tx.Err(), sip.ErrTransactionTimeout) {
				f.status = 408
			}
			if !aborted {
				c.log.Info("B leg failed", "error", f.tx.Err(), "to", f.leg.trunk().Address)
			}
			if refused() {
				return
			}
			continue
		}
		res := v.Interface().(*sip.Response)
		code := res.StatusCode
		if code < 200 {
			f.provisional = true
			if aborted {
				c.cancelFork(f)
				continue
			}
			if code == 100 {
				continue
			}
			if !c.ringing {
				c.ringing = true
				c.report(store.CallRinging)
			}
			var body []byte
			if len(forks) == 1 {
				// Early dialog and early media: with several devices
				// ringing, whose would be a guess; they only ring.
				if tag := dialogTag(res); tag != "" {
					c.b.setRemoteTag(c.s, tag) // in-dialog requests may follow
				}
				if len(res.Body()) > 0 {
					b, err := c.answer(media.SideB, res.Body())
					if err != nil {
						c.log.Warn("early media SDP refused", "status", code, "error", err)
					} else {
						body, earlySDP = b, res.Body()
					}
				}
			}
			c.respondA(tx, req, code, body)
			continue
		}
		if code >= 300 {
			f.status = relayStatus(code)
			if code >= 600 {
				// Declined everywhere (RFC 3261 §16.7 step 5): the other
				// devices stop ringing, and the 6xx is the answer.
				for _, g := range forks {
					if g != f {
						c.dropFork(g, nil)
					}
				}
			}
			if refused() {
				return
			}
			continue
		}
		if dialogTag(res) == "" && len(forks) > 1 {
			// One device's broken answer: it failed, the others ring on.
			c.log.Warn("B leg 2xx without To tag, Call-ID, From or CSeq: cannot be ACKed", "to", f.leg.trunk().Address)
			f.status, f.failed = 502, true
			if refused() {
				return
			}
			continue
		}
		if dialogTag(res) == "" {
			c.log.Warn("B leg 2xx without To tag, Call-ID, From or CSeq: cannot be ACKed")
			if !aborted {
				c.respondA(tx, req, 502, nil, c.s.warning("callee sent a malformed 2xx"))
				abortStatus, abortBy = 502, endError
			}
			end(abortStatus, abortBy)
			return
		}
		c.mu.Lock()
		c.b = f.leg // the device that answered is the call's B leg
		c.mu.Unlock()
		for _, g := range forks {
			if g != f {
				c.dropFork(g, completedElsewhere)
			}
		}
		c.answered2xx(req, tx, f.inv, f.tx, res, earlySDP, aborted, abortStatus, abortBy, cancelled)
		return
	}
}

// cancelB sends CANCEL for the B-leg INVITE (RFC 3261 §9.1: same Request-URI,
// Call-ID, From, To, CSeq number and Via branch). The answer is not awaited:
// the INVITE's 487 is what matters.
func (c *call) cancelB(binv *sip.Request, hdrs ...sip.Header) bool {
	cancel := sip.NewRequest(sip.CANCEL, *binv.Recipient.Clone())
	cancel.AppendHeader(sip.HeaderClone(binv.Via()))
	for _, h := range binv.GetHeaders("Route") {
		cancel.AppendHeader(sip.HeaderClone(h))
	}
	cancel.AppendHeader(sip.HeaderClone(binv.From()))
	cancel.AppendHeader(sip.HeaderClone(binv.To()))
	cancel.AppendHeader(sip.HeaderClone(binv.CallID()))
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: binv.CSeq().SeqNo, MethodName: sip.CANCEL})
	cancel.AppendHeader(ptr(sip.MaxForwardsHeader(70)))
	for _, h := range hdrs {
		cancel.AppendHeader(h)
	}
	cancel.SetTransport(binv.Transport())
	cancel.SetDestination(binv.Destination())
	cancel.Laddr = binv.Laddr
	ctx, stop := context.WithTimeout(context.Background(), 64*sip.T1)
	tx, err := c.s.send(ctx, cancel)
	if err != nil {
		stop()
		c.log.Warn("send CANCEL", "error", err)
		return false
	}
	go func() {
		defer stop()
		defer tx.Terminate()
		select {
		case <-tx.Done():
		case <-ctx.Done():
		case <-c.finished:
		}
	}()
	return true
}

// answered2xx completes the call on a B-leg 2xx: ACK to B, SDP answer
// rewritten for A, 2xx to A retransmitted until A's ACK. A call the caller
// (or a shutdown) gave up on meanwhile is hung up on B instead.
func (c *call) answered2xx(req *sip.Request, tx sip.ServerTransaction, binv *sip.Request, btx sip.ClientTransaction, res *sip.Response, earlySDP []byte, aborted bool, abortStatus int, abortBy string, cancelled chan struct{}) {
	s := c.s
	b := c.b
	b.mu.Lock()
	b.remoteNm = res.To().DisplayName
	b.routes = routeSet(res.GetHeaders("Record-Route"))
	b.mu.Unlock()
	b.setRemoteTag(s, dialogTag(res))
	b.setTarget(res.Contact())

	ack := b.newRequest(s, sip.ACK, binv.CSeq().SeqNo)
	if err := s.writeAck(ack); err != nil {
		c.log.Warn("ACK to B failed", "error", err)
	}
	// The 2xx may be retransmitted if our ACK was lost: ACK each copy. A 2xx
	// with another To tag is a second fork answering: ACK and BYE it.
	tag := dialogTag(res)
	btx.OnRetransmission(func(r *sip.Response) {
		if dialogTag(r) == tag {
			s.writeAck(ack)
		} else {
			s.onStrayResponse(r)
		}
	})

	// The caller may have cancelled while the 2xx was on its way: sipgo has
	// then answered 487 already and a 200 can no longer be sent.
	if !aborted && cancelled != nil {
		select {
		case <-cancelled:
			aborted, abortStatus, abortBy = true, 487, endCancel
		default:
		}
	}
	if aborted {
		c.bye(b)
		c.finish(abortStatus, abortBy)
		return
	}

	sdpBody := res.Body()
	if len(sdpBody) == 0 {
		sdpBody = earlySDP
	}
	body, err := c.answer(media.SideB, sdpBody)
	if err != nil {
		c.log.Warn("B-leg 2xx without usable SDP answer", "error", err)
		c.bye(b)
		c.respondA(tx, req, 502, nil, s.warning("callee sent no usable SDP answer: "+answerProblem(err)))
		c.finish(502, endError)
		return
	}
	if by := c.establish(); by != "" {
		// Shutdown asked to end the call while it was being answered.
		c.bye(b)
		c.respondA(tx, req, 503, nil)
		c.finish(503, by)
		return
	}
	c.persist()
	ackKey := c.expectAck(c.a, req.CSeq().SeqNo)
	acked, err := c.respond2xx(c.a, tx, c.respondA(tx, req, 200, body), ackKey)
	switch {
	case err != nil:
		// Cancelled between our check and the 200: sipgo sent 487.
		c.log.Info("caller gone before the 200 could be sent", "error", err)
		if c.beginEnd() {
			c.bye(b)
			c.finish(487, endCancel)
		}
	case acked:
		c.log.Info("call answered")
		c.report(store.CallInProgress)
	default:
		select {
		case <-c.finished:
		default:
			// RFC 3261 §13.3.1.4: no ACK, the session SHOULD be ended with BYE.
			c.log.Warn("no ACK from caller")
			c.hangup(endNoAck)
		}
	}
}

// answer rewrites an SDP answer that arrived from side `from` for the
// other side.
func (c *call) answer(from media.Side, body []byte) ([]byte, error) {
	ans, err := sdp.Parse(body)
	if err != nil {
		return nil, err
	}
	return c.anchor(from, ans, false, nil)
}
