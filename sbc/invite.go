package sbc

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/store"
	"sbc/media"
	"sbc/sbc/sdp"
)

// bLegCallIDSuffix ends every Call-ID the SBC makes, so responses to our
// own INVITEs can be told from others.
const bLegCallIDSuffix = "@sbc"

// maxStreams bounds the m= lines of one SDP, and so the ports one call can
// hold: each stream takes two port pairs.
const maxStreams = 8

// rejection is a SIP final response for a request we refuse.
type rejection struct {
	code   int
	reason string
	hdrs   []sip.Header
}

func reject(code int, reason string, hdrs ...sip.Header) *rejection {
	return &rejection{code, reason, hdrs}
}

// screenInvite checks an initial INVITE before any state is created and
// returns the parsed offer, or why it is refused.
func (s *Server) screenInvite(req *sip.Request) (*sdp.Session, *rejection) {
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return nil, reject(483, "Too Many Hops")
	}
	if s.draining.Load() {
		return nil, reject(503, "Service Unavailable", sip.NewHeader("Retry-After", "60"))
	}
	if max := s.cfg.Calls.MaxActive; max > 0 && s.ActiveCalls() >= max {
		return nil, reject(503, "Service Unavailable", sip.NewHeader("Retry-After", "5"), s.warning("call capacity reached"))
	}
	if strings.EqualFold(req.Recipient.Scheme, "sips") && !strings.EqualFold(req.Transport(), "TLS") {
		// A SIPS URI asks for TLS on every hop (RFC 3261 §26.2.2): one
		// that came over UDP or TCP has already lost it.
		return nil, reject(416, "Unsupported URI Scheme", s.warning("sips: URI over "+strings.ToUpper(req.Transport())+"; it needs TLS"))
	}
	if h := req.GetHeader("Require"); h != nil && strings.TrimSpace(h.Value()) != "" {
		// RFC 3261 §8.2.2.3: we support no extension a caller may require.
		return nil, reject(420, "Bad Extension", sip.NewHeader("Unsupported", h.Value()))
	}
	if len(req.Body()) == 0 {
		// Late offer (RFC 3261 §13.2.1, offer in the 2xx) is not supported:
		// the SBC needs the offer to anchor media before calling out.
		return nil, reject(488, "Not Acceptable Here", s.warning("INVITE without SDP offer (late offer) is not supported"))
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		return nil, reject(415, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		return nil, reject(488, "Not Acceptable Here", s.warning("malformed SDP offer: "+strings.TrimPrefix(err.Error(), "sdp: ")))
	}
	if len(offer.Media) == 0 {
		return nil, reject(488, "Not Acceptable Here", s.warning("SDP offer without media"))
	}
	if len(offer.Media) > maxStreams {
		return nil, reject(488, "Not Acceptable Here", s.warning(fmt.Sprintf("more than %d media streams", maxStreams)))
	}
	return offer, nil
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() != nil && req.To().Params.Has("tag") {
		s.onReinvite(req, tx)
		return
	}
	from := s.admitCaller(req, tx)
	if from == nil {
		return
	}
	offer, rej := s.screenInvite(req)
	var dec control.Decision
	if rej == nil {
		var to *Trunk
		var callee string
		if to, callee, dec, rej = s.route(from, req); rej == nil {
			// The media policies before any state: a refused offer gets
			// 488 and no B-leg is tried.
			pending, err := offerLines(offer, &from.MediaPolicy, &to.MediaPolicy)
			if err == nil {
				s.setup(req, tx, from, to, callee, dec, offer, pending)
				return
			}
			dec.Release()
			rej = reject(488, "Not Acceptable Here", s.warning(offerProblem(err)))
		}
	}
	s.respond(tx, req, rej.code, rej.reason, nil, rej.hdrs...)
	attrs := []any{"a_call_id", callID(req), "from_trunk", from.Name, "number", req.Recipient.User, "status", rej.code, "reason", rej.reason}
	if dec.Reason != "" {
		attrs = append(attrs, "account_sid", dec.Account, "policy", dec.Reason)
	}
	if dec.Rule != "" {
		attrs = append(attrs, "rule", dec.Rule)
	}
	s.log.Info("call rejected", attrs...)
}

func callID(m interface{ CallID() *sip.CallIDHeader }) string {
	if h := m.CallID(); h != nil {
		return string(*h)
	}
	return ""
}

// newLegA builds the UAS-side dialog from the caller's INVITE.
func (s *Server) newLegA(c *call, req *sip.Request) *leg {
	from, to := req.From(), req.To()
	remoteTag, _ := from.Params.Get("tag")
	l := &leg{
		call:      c,
		peer:      c.from,
		side:      media.SideA,
		transport: strings.ToLower(req.Transport()),
		callID:    callID(req),
		localTag:  sip.GenerateTagN(16),
		remoteTag: remoteTag,
		local:     *to.Address.Clone(),
		localName: to.DisplayName,
		remote:    *from.Address.Clone(),
		remoteNm:  from.DisplayName,
		target:    req.Recipient,
		routes:    recordRoutes(req.GetHeaders("Record-Route")),
		localSeq:  1,
		remoteSeq: req.CSeq().SeqNo,
	}
	if ct := req.Contact(); ct != nil {
		l.target = *ct.Address.Clone()
	}
	l.sips = l.transport == "tls" && isSIPS(req, l.routes)
	if c.from.device != nil || l.transport == "tls" {
		// A device's flow, or a TLS connection: requests go back over it,
		// whatever the Contact says.
		l.dest = req.Source()
	}
	return l
}

// isSIPS tells whether a dialog req begins must have a SIPS Contact of
// ours (RFC 3261 §12.1.1): its Request-URI is a SIPS URI, or its top
// Record-Route, or without Record-Route its Contact.
func isSIPS(req *sip.Request, routes []string) bool {
	sips := strings.EqualFold(req.Recipient.Scheme, "sips")
	if len(routes) > 0 {
		top := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(routes[0]), "<"))
		sips = sips || len(top) >= 5 && strings.EqualFold(top[:5], "sips:")
	} else if ct := req.Contact(); ct != nil {
		sips = sips || strings.EqualFold(ct.Address.Scheme, "sips")
	}
	return sips
}

// newLegB builds the UAC-side dialog towards the destination trunk, calling
// user there. Nothing of the A leg is reused but the caller's user part.
func (s *Server) newLegB(c *call, req *sip.Request, to *Trunk, user string) *leg {
	host, port, _ := splitHostPort(to.Address)
	host = uriHost(host)
	callee := sip.Uri{Scheme: "sip", User: user, Host: host, Port: port}
	var dest string
	sips := false
	if d := to.device; d != nil {
		// The device's registered Contact, reached over its flow.
		callee, dest = d.contact, to.Address
		host = d.contact.Host
		sips = strings.EqualFold(d.contact.Scheme, "sips") && to.Transport == "tls"
	} else if to.Transport == "tls" {
		// The trunk's TLS connection carries the whole dialog: the SBC
		// connects to no other address over TLS.
		dest = to.Address
	}
	caller := sip.Uri{Scheme: "sip", User: callerUser(c.dec, req), Host: s.publicIP}
	return &leg{
		call:      c,
		peer:      to,
		side:      media.SideB,
		transport: to.Transport,
		callID:    newID() + newID() + bLegCallIDSuffix,
		localTag:  sip.GenerateTagN(16),
		local:     caller,
		localName: callerName(c.dec, req),
		remote:    sip.Uri{Scheme: "sip", User: user, Host: host},
		target:    callee,
		dest:      dest,
		sips:      sips,
		localSeq:  0,
	}
}

// setup runs an initial INVITE to its end: the B leg is called, its
// provisional and final responses relayed, CANCEL and timeouts handled. It
// returns once the call is answered and ACKed, or has failed.
func (s *Server) setup(req *sip.Request, tx sip.ServerTransaction, from, to *Trunk, callee string, dec control.Decision, offer *sdp.Session, pending []*lineOffer) {
	c := s.newCall(from, to, dec, req)
	defer func() {
		if r := recover(); r != nil {
			c.finish(500, endError) // nobody else would: Drain would wait on it forever
			panic(r)                // for guard to log
		}
	}()
	c.a = s.newLegA(c, req)
	c.b = s.newLegB(c, req, to, callee)
	c.log.Info("call started", "a_call_id", c.a.callID, "b_call_id", c.b.callID,
		"from_trunk", from.Name, "to_trunk", to.Name, "number", req.Recipient.User, "account_sid", dec.Account)
	c.report(store.CallQueued)
	s.respond(tx, req, 100, "Trying", nil)

	cancelled := make(chan struct{})
	var once sync.Once
	if !tx.OnCancel(func(*sip.Request) { once.Do(func() { close(cancelled) }) }) {
		c.finish(487, endCancel)
		return
	}
	s.addDialog(c.a)

	body, err := c.anchor(media.SideA, offer, true, pending)
	if err != nil {
		code := 500
		if errors.Is(err, media.ErrNoPorts) {
			code = 503
		}
		c.log.Warn("anchor offer", "error", err)
		c.respondA(tx, req, code, nil)
		c.finish(code, endError)
		return
	}

	forks := []*fork{{leg: c.b}}
	if to.device != nil {
		for _, d := range s.devicesOf(to.device.user) {
			if d.Address != to.Address || d.Transport != to.Transport {
				forks = append(forks, &fork{leg: s.newLegB(c, req, d, callee)})
			}
		}
	}
	var sent []*fork
	for _, f := range forks {
		if !s.reachable(f.leg) {
			c.log.Info("device not called: its connection is gone", "to", f.leg.dest, "transport", f.leg.transport)
			continue
		}
		f.inv = f.leg.newRequest(s, sip.INVITE, 0)
		carryMaxForwards(f.inv, req)
		f.inv.AppendHeader(sip.NewHeader("Allow", allowed))
		f.inv.AppendHeader(ptr(sip.ContentTypeHeader("application/sdp")))
		f.inv.SetBody(body)
		if f.tx, err = s.send(c.ctx, f.inv); err != nil {
			c.log.Warn("send B-leg INVITE", "to", f.leg.trunk().Address, "error", err)
			continue
		}
		sent = append(sent, f)
	}
	if len(sent) == 0 {
		c.respondA(tx, req, 503, nil)
		c.finish(503, endError)
		return
	}
	if sent[0] != forks[0] {
		c.mu.Lock()
		c.b = sent[0].leg // the device first called could not be
		c.mu.Unlock()
	}
	c.awaitAnswer(req, tx, sent, cancelled)
}

func ptr[T any](v T) *T { return &v }

// carryMaxForwards gives out the Max-Forwards of in minus one: loop
// protection carries across the B2BUA (RFC 3261 §16.6 step 3).
func carryMaxForwards(out, in *sip.Request) {
	if mf := in.MaxForwards(); mf != nil && mf.Val() > 0 {
		out.ReplaceHeader(ptr(sip.MaxForwardsHeader(mf.Val() - 1)))
	}
}

// respondA answers the caller's INVITE as our A-leg dialog (our To tag).
// A 2xx is returned unsent: respond2xx sends it, with retransmissions.
func (c *call) respondA(tx sip.ServerTransaction, req *sip.Request, code int, body []byte, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason(code), body)
	if code > 100 {
		res.To().Params.Add("tag", c.a.localTag)
	}
	if code > 100 && code < 300 {
		res.AppendHeader(c.s.contact(c.a))
	}
	if body != nil {
		res.AppendHeader(ptr(sip.ContentTypeHeader("application/sdp")))
	}
	c.s.decorate(res, hdrs...)
	if code >= 200 && code < 300 {
		return res
	}
	if err := tx.Respond(res); err != nil {
		c.log.Debug("respond to A failed", "status", code, "error", err)
	}
	return res
}

// dialogTag returns the To tag of a response from the B side, or "" when the
// response cannot belong to a dialog (RFC 3261 §12.1.2 needs it).
func dialogTag(res *sip.Response) string {
	to := res.To()
	if to == nil || res.CallID() == nil || res.From() == nil || res.CSeq() == nil {
		return ""
	}
	tag, _ := to.Params.Get("tag")
	return tag
}
