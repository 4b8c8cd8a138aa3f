package sbc

import (
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Who may send what: the trunk a request comes from (its address, its
// TLS client certificate), a registered device's flow, or a stranger, and
// the answers that refuse them.

// sourceTrunk finds the trunk a request came from; nil when none matches.
func (s *Server) sourceTrunk(req *sip.Request) *Trunk {
	t, _ := s.identifyTrunk(req)
	return t
}

// identifyTrunk is sourceTrunk with, when the source is a trunk's but the
// request is not acceptable from it (plain transport to a tls_only trunk,
// no client certificate for a mutual-TLS one), nil and why.
func (s *Server) identifyTrunk(req *sip.Request) (*Trunk, string) {
	ip, ok := sourceIP(req.Source())
	if !ok {
		return nil, ""
	}
	overTLS := strings.EqualFold(req.Transport(), "TLS")
	if p := s.tlsPeerOf(req.Source()); overTLS && p != nil {
		for _, name := range p.trunks {
			if t := s.trunks.get(name); t.contains(ip) {
				return t, ""
			}
		}
	}
	t := s.trunks.match(ip)
	switch {
	case t == nil:
		return nil, ""
	case t.TLSClientCA != "":
		return nil, "trunk " + t.Name + " requires TLS with a valid client certificate"
	case t.TLSOnly && !overTLS:
		return nil, "trunk " + t.Name + " accepts TLS only"
	}
	return t, ""
}

// admit rejects requests from unknown sources with 403 before any state is
// created. It returns the trunk, or nil when the request was answered.
func (s *Server) admit(req *sip.Request, tx sip.ServerTransaction) *Trunk {
	t, why := s.identifyTrunk(req)
	if why != "" {
		// A trunk's address: never banned, told why.
		s.log.Warn("request from a trunk's address refused", "method", req.Method.String(), "source", req.Source(),
			"transport", req.Transport(), "reason", why)
		s.respond(tx, req, 403, "Forbidden", nil, s.warning(why))
		return nil
	}
	if t == nil && s.dev.reg.Registered(req.Source()) {
		// A registered device's request the SBC does not take (SUBSCRIBE,
		// PUBLISH, MESSAGE, a dialog it does not know): refused, never
		// counted towards a ban of the device's own address.
		switch {
		case req.To() != nil && req.To().Params.Has("tag"):
			s.respondOnce(tx, req, 481, "Call/Transaction Does Not Exist")
		case req.Method == sip.MESSAGE:
			s.respondOnce(tx, req, 403, "Forbidden", s.warning("only carrier trunks send MESSAGE"))
		default:
			s.respondOnce(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowed))
		}
		return nil
	}
	if t == nil {
		if ip, ok := sourceIP(req.Source()); ok && s.failUnproven(ip, req.Transport(), time.Now()) {
			tx.Terminate()
			return nil // banned: no answer
		}
		if n := s.strangers.allow(); n >= 0 {
			s.log.Warn("request from unknown source", "method", req.Method.String(), "source", req.Source(), "suppressed", n)
		}
		s.respondOnce(tx, req, 403, "Forbidden")
		return nil
	}
	if why := validate(req); why != "" {
		s.log.Warn("malformed request answered 400", "method", req.Method.String(), "source", req.Source(), "error", why)
		s.respond(tx, req, 400, "Bad Request", nil, s.warning(why))
		return nil
	}
	return t
}

// respondOnce answers statelessly: no transaction retransmits the answer
// towards what may be a spoofed address (a UDP source the SBC cannot yet
// trust), so an answer never multiplies a forged request.
func (s *Server) respondOnce(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	s.decorate(res, hdrs...)
	s.srv.WriteResponse(res)
	tx.Terminate()
}

// respond sends a stateful response built from req with our Server header.
func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	s.decorate(res, hdrs...)
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "status", code, "error", err)
	}
}

func (s *Server) decorate(res *sip.Response, hdrs ...sip.Header) {
	res.AppendHeader(sip.NewHeader("Server", s.cfg.SIP.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
}

// failUnproven counts towards a ban a failure that proves nothing of its
// source over UDP (a stranger's request, a malformed datagram, a
// scanner's User-Agent: anyone can send them from any address), unless
// devices are registered from that host (a customer's NAT, whose phones
// a forger must not cut off). Over TCP and TLS the source is proven, and
// failed digest authentication answers a nonce sent to it: those count
// always. true: the source is now banned.
func (s *Server) failUnproven(ip netip.Addr, transport string, now time.Time) bool {
	if strings.EqualFold(transport, "UDP") && s.dev.reg.HostRegistered(ip) {
		return false
	}
	return s.bans.fail(ip, now)
}
