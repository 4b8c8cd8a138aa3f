// The B leg's answer: provisional responses, the final one, the caller's
// CANCEL and the ring timeout, until the call is up or refused.

package sbc

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control/store"
	"sbc/media"
	"sbc/sbc/sdp"
)

// awaitAnswer is the set-up loop: B-leg responses, the caller's CANCEL, the
// ring timeout and shutdown, until a final outcome.
func (c *call) awaitAnswer(req *sip.Request, tx sip.ServerTransaction, binv *sip.Request, btx sip.ClientTransaction, cancelled chan struct{}) {
	ring := time.NewTimer(c.s.cfg.Calls.RingTimeout)
	defer ring.Stop()
	var (
		provisional bool // B sent a 1xx: CANCEL may be sent (RFC 3261 §9.1)
		cancelSent  bool
		aborted     bool // the A side is answered; only B needs tidying
		abortStatus int  // status the A side got
		abortBy     string
		earlySDP    []byte // B's SDP from an 18x, used if the 2xx has none
		giveUp      <-chan time.Time
	)
	abort := func(status int, by string) {
		if aborted {
			return
		}
		aborted, abortStatus, abortBy = true, status, by
		if status != 487 { // sipgo answered the CANCEL's INVITE with 487 itself
			c.respondA(tx, req, status, nil)
		}
		if provisional && !cancelSent {
			cancelSent = c.cancelB(binv)
		}
		giveUp = time.After(64 * sip.T1)
	}
	// end finishes a call that never got established; the B transaction is
	// dropped so a late response cannot find it (see the unhandled
	// response handler for a late 2xx).
	end := func(status int, by string) {
		btx.Terminate()
		c.finish(status, by)
	}
	ctxDone := c.ctx.Done()
	for {
		select {
		case res := <-btx.Responses():
			code := res.StatusCode
			if code < 200 {
				provisional = true
				if aborted {
					if !cancelSent {
						cancelSent = c.cancelB(binv)
					}
					continue
				}
				if code == 100 {
					continue
				}
				if !c.ringing {
					c.ringing = true
					c.report(store.CallRinging)
				}
				if tag := dialogTag(res); tag != "" {
					c.b.setRemoteTag(c.s, tag) // early dialog: in-dialog requests may follow
				}
				var body []byte
				if len(res.Body()) > 0 {
					b, err := c.answer(media.SideB, res.Body())
					if err != nil {
						c.log.Warn("early media SDP refused", "status", code, "error", err)
					} else {
						body, earlySDP = b, res.Body()
					}
				}
				c.respondA(tx, req, code, body)
				continue
			}
			if code < 300 {
				if dialogTag(res) == "" {
					c.log.Warn("B leg 2xx without To tag, Call-ID, From or CSeq: cannot be ACKed")
					if !aborted {
						c.respondA(tx, req, 502, nil, c.s.warning("callee sent a malformed 2xx"))
						abortStatus, abortBy = 502, endError
					}
					end(abortStatus, abortBy)
					return
				}
				c.answered2xx(req, tx, binv, btx, res, earlySDP, aborted, abortStatus, abortBy, cancelled)
				return
			}
			if !aborted {
				status := relayStatus(code)
				c.respondA(tx, req, status, nil)
				c.finish(status, endRejected)
				return
			}
			c.finish(abortStatus, abortBy)
			return
		case <-btx.Done():
			if !aborted {
				status, by := 503, endError
				if errors.Is(btx.Err(), sip.ErrTransactionTimeout) {
					status, by = 408, endNoResponse
				}
				c.log.Info("B leg failed", "error", btx.Err())
				c.respondA(tx, req, status, nil)
				c.finish(status, by)
				return
			}
			c.finish(abortStatus, abortBy)
			return
		case <-cancelled:
			cancelled = nil
			abort(487, endCancel)
		case <-ring.C:
			abort(408, endRingTimeout)
		case <-ctxDone:
			ctxDone = nil
			abort(503, c.abortReason())
			// Shutting down: wait for B's 487 only briefly.
			giveUp = time.After(byeTimeout)
		case <-giveUp:
			end(abortStatus, abortBy)
			return
		}
	}
}

// cancelB sends CANCEL for the B-leg INVITE (RFC 3261 §9.1: same Request-URI,
// Call-ID, From, To, CSeq number and Via branch). The answer is not awaited:
// the INVITE's 487 is what matters.
func (c *call) cancelB(binv *sip.Request) bool {
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
