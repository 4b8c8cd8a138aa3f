package sbc

import (
	"context"
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"

	"sbc/media"
	"sbc/sbc/sdp"
)

// inDialog finds the leg of an in-dialog request and checks it, answering
// the request itself (403, 481, 483, 500) when it cannot go on.
func (s *Server) inDialog(req *sip.Request, tx sip.ServerTransaction) *leg {
	l := s.deviceLeg(req) // a device's dialog: its flow is its proof
	if l == nil {
		t := s.admit(req, tx)
		if t == nil {
			return nil
		}
		if l = s.findLeg(req); l == nil || l.trunk() != t {
			// Unknown dialog, or one of another trunk's calls: the same
			// answer, so nothing is revealed about other trunks' calls.
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
			return nil
		}
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		s.respond(tx, req, 483, "Too Many Hops", nil)
		return nil
	}
	if !l.acceptSeq(req) {
		// RFC 3261 §12.2.2: a lower CSeq is out of order.
		s.respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return nil
	}
	return l
}

// onInDialog handles BYE and the requests relayed as-is (INFO).
func (s *Server) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := s.inDialog(req, tx)
	if l == nil {
		return
	}
	c := l.call
	switch req.Method {
	case sip.BYE:
		s.respond(tx, req, 200, "OK", nil)
		by := endCaller
		if l.side == media.SideB {
			by = endCallee
		}
		c.mu.Lock()
		state := c.state
		c.mu.Unlock()
		if state == stateSetup {
			// A BYE in an early dialog ends the set-up.
			c.hangup(by)
			return
		}
		if c.beginEnd() {
			defer c.finish(200, by) // even if the BYE panics: the call must end
			c.bye(c.other(l))
		}
	default:
		s.forward(c, l, req, tx)
	}
}

// forward relays a non-INVITE in-dialog request (INFO) to the other leg and
// its final response back. Only the body and its type cross. One at a time
// per leg: a flood of INFOs must not pile up transactions.
func (s *Server) forward(c *call, l *leg, req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	busy := c.infoBusy[l]
	c.infoBusy[l] = true
	c.mu.Unlock()
	if busy {
		s.respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	defer func() {
		c.mu.Lock()
		delete(c.infoBusy, l)
		c.mu.Unlock()
	}()
	out := c.other(l).newRequest(s, req.Method, 0)
	carryMaxForwards(out, req)
	if ct := req.ContentType(); ct != nil {
		out.AppendHeader(sip.HeaderClone(ct))
	}
	out.SetBody(req.Body())
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1)
	defer cancel()
	res, err := s.do(ctx, out)
	if err != nil {
		c.log.Info("relay failed", "method", req.Method.String(), "error", err)
		code := 503
		if errors.Is(err, sip.ErrTransactionTimeout) || errors.Is(err, context.DeadlineExceeded) {
			code = 408
		}
		s.respond(tx, req, code, reason(code), nil)
		return
	}
	var body []byte
	var hdrs []sip.Header
	if len(res.Body()) > 0 {
		body = res.Body()
		if ct := res.ContentType(); ct != nil {
			hdrs = append(hdrs, sip.HeaderClone(ct))
		}
	}
	code := res.StatusCode
	if code >= 300 {
		code = relayStatus(code)
	}
	s.respond(tx, req, code, reason(code), body, hdrs...)
	c.persist() // both legs' CSeqs moved
}

// onAck takes ACKs for 2xx (ours to absorb: the SBC ACKs the far leg
// itself). ACKs matching no dialog are dropped: ACK gets no response.
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if req.CSeq() == nil {
		return
	}
	if l := s.deviceLeg(req); l != nil {
		l.call.gotAck(l, req.CSeq().SeqNo)
		return
	}
	if s.sourceTrunk(req) == nil {
		return
	}
	if l := s.findLeg(req); l != nil {
		l.call.gotAck(l, req.CSeq().SeqNo)
	}
}

// onReinvite handles a re-INVITE from either leg: the new offer is anchored,
// sent to the other leg as a re-INVITE of its own, and the answer brought
// back (hold/unhold, codec or address changes).
func (s *Server) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	l := s.inDialog(req, tx)
	if l == nil {
		return
	}
	c := l.call
	c.mu.Lock()
	busy := c.reinvite || c.state != stateEstablished
	if !busy {
		c.reinvite = true
	}
	c.mu.Unlock()
	if busy {
		// RFC 3261 §14.2: an offer while another is pending gets 491.
		s.respond(tx, req, 491, "Request Pending", nil)
		return
	}
	defer func() {
		c.mu.Lock()
		c.reinvite = false
		c.mu.Unlock()
	}()
	s.respond(tx, req, 100, "Trying", nil)
	l.setTarget(req.Contact())

	if len(req.Body()) == 0 {
		s.respond(tx, req, 488, "Not Acceptable Here", nil, s.warning("re-INVITE without SDP offer is not supported"))
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		s.respond(tx, req, 488, "Not Acceptable Here", nil, s.warning("malformed SDP offer"))
		return
	}
	if len(offer.Media) > maxStreams {
		s.respond(tx, req, 488, "Not Acceptable Here", nil, s.warning("too many media streams"))
		return
	}
	pending, err := c.offerFrom(l.side, offer)
	if err != nil {
		c.log.Warn("re-INVITE offer refused by the media policy", "error", err)
		s.respond(tx, req, 488, "Not Acceptable Here", nil, s.warning(offerProblem(err)))
		return
	}
	old := c.snapshot()
	body, err := c.anchor(l.side, offer, true, pending)
	if err != nil {
		c.restore(old)
		c.log.Warn("re-INVITE offer refused", "error", err)
		s.respond(tx, req, 488, "Not Acceptable Here", nil)
		return
	}

	o := c.other(l)
	out := o.newRequest(s, sip.INVITE, 0)
	carryMaxForwards(out, req)
	out.AppendHeader(sip.NewHeader("Allow", allowed))
	out.AppendHeader(ptr(sip.ContentTypeHeader("application/sdp")))
	out.SetBody(body)
	ctx, cancel := context.WithTimeout(c.ctx, 64*sip.T1)
	defer cancel()
	otx, err := s.send(ctx, out)
	if err != nil {
		c.restore(old)
		c.log.Warn("send re-INVITE", "error", err)
		s.respond(tx, req, 503, "Service Unavailable", nil)
		return
	}
	res := awaitFinal(ctx, otx)
	if res == nil || res.StatusCode >= 300 {
		// The 2xx case keeps the transaction: Timer M ends it, and its
		// retransmitted 2xx are ACKed meanwhile.
		otx.Terminate()
		c.restore(old)
		code := 408
		if res != nil {
			code = relayStatus(res.StatusCode)
		}
		s.respond(tx, req, code, reason(code), nil)
		return
	}
	o.setTarget(res.Contact())
	ack := o.newRequest(s, sip.ACK, out.CSeq().SeqNo)
	if err := s.writeAck(ack); err != nil {
		c.log.Warn("ACK re-INVITE", "leg", o.side.String(), "error", err)
	}
	otx.OnRetransmission(func(*sip.Response) { s.writeAck(ack) })

	answer, err := c.answer(o.side, res.Body())
	if err != nil {
		// The other leg took the new offer already: there is no going back
		// without another exchange, so the call ends rather than run on
		// media nobody agreed to.
		c.log.Warn("re-INVITE answer unusable; ending the call", "leg", o.side.String(), "error", err)
		s.respond(tx, req, 488, "Not Acceptable Here", nil, s.warning("unusable SDP answer from the other side: "+answerProblem(err)))
		c.hangup(endError)
		return
	}
	resp := sip.NewResponseFromRequest(req, 200, "OK", answer)
	resp.AppendHeader(s.contact(l))
	resp.AppendHeader(ptr(sip.ContentTypeHeader("application/sdp")))
	s.decorate(resp)
	c.log.Info("re-INVITE", "from_leg", l.side.String(), "direction", directions(offer))
	c.persist()
	if acked, err := c.respond2xx(l, tx, resp, c.expectAck(l, req.CSeq().SeqNo)); err != nil || !acked {
		select {
		case <-c.finished:
		default:
			c.log.Warn("no ACK for re-INVITE 200", "leg", l.side.String(), "error", err)
			c.hangup(endNoAck)
		}
	}
}

// awaitFinal waits for a transaction's final response; nil on timeout.
func awaitFinal(ctx context.Context, tx sip.ClientTransaction) *sip.Response {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res
		case <-tx.Done():
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func directions(d *sdp.Session) string {
	var out []string
	for _, m := range d.Media {
		out = append(out, m.Direction)
	}
	return strings.Join(out, ",")
}
