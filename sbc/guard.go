package sbc

import (
	"context"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// guard keeps a bug in one request's handling from taking the daemon and
// every call with it: the panic is logged with its stack and answered 500.
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if s.scanner(req) {
			if tx != nil {
				tx.Terminate()
			}
			return
		}
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic handling request", "method", req.Method.String(), "source", req.Source(),
					"panic", r, "stack", string(debug.Stack()))
				if tx != nil && !req.IsAck() {
					s.respond(tx, req, 500, "Server Internal Error", nil)
				}
			}
		}()
		h(req, tx)
	}
}

// onStrayResponse sees responses that match no client transaction. A 2xx
// to an INVITE still establishes a dialog at the far end (RFC 3261
// §13.2.2.4): if it is a retransmission within a dialog we know, we ACK it
// again; otherwise (a late answer after we gave up, or a second fork) we ACK
// it and send BYE, so the far end does not hang on to a call nobody has.
func (s *Server) onStrayResponse(res *sip.Response) {
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		s.log.Debug("stray response dropped", "status", res.StatusCode, "source", res.Source())
		return
	}
	ip, ok := sourceIP(res.Source())
	if !ok || s.trunks.match(ip) == nil {
		s.log.Debug("stray 2xx from unknown source dropped", "source", res.Source())
		return
	}
	// Only answers to INVITEs we sent (our B-leg Call-IDs), and only so many
	// a second: a spoofed 2xx must not make us send ACK and BYE anywhere.
	if cid := res.CallID(); cid == nil || !strings.HasSuffix(string(*cid), bLegCallIDSuffix) || !s.strays.take() {
		s.log.Debug("stray 2xx dropped", "source", res.Source())
		return
	}
	tag := dialogTag(res)
	from := res.From()
	if tag == "" || res.Contact() == nil {
		s.log.Warn("stray 2xx without dialog identifiers dropped", "source", res.Source())
		return
	}
	localTag, _ := from.Params.Get("tag")
	s.mu.Lock()
	l := s.dialogs[dialogKey{string(*res.CallID()), localTag, tag}]
	s.mu.Unlock()
	if l != nil {
		s.writeAck(l.newRequest(s, sip.ACK, cseq.SeqNo))
		l.call.mu.Lock()
		live := l.call.state == stateEstablished || l.call.state == stateEnding
		l.call.mu.Unlock()
		if !live {
			// A 2xx after we gave up on the set-up: nobody owns this call.
			s.track(func() { s.byeStray(l) })
		}
		return
	}
	stray := &leg{
		transport: strings.ToLower(res.Transport()),
		callID:    string(*res.CallID()),
		localTag:  localTag,
		remoteTag: tag,
		local:     *from.Address.Clone(),
		remote:    *res.To().Address.Clone(),
		target:    *res.Contact().Address.Clone(),
		routes:    routeSet(res.GetHeaders("Record-Route")),
		localSeq:  cseq.SeqNo,
	}
	s.log.Info("late or forked 2xx: ACK and BYE", "call_id", stray.callID, "source", res.Source())
	s.writeAck(stray.newRequest(s, sip.ACK, cseq.SeqNo))
	s.track(func() { s.byeStray(stray) })
}

// track runs f in a goroutine Drain and Close wait for; once they have
// started waiting, f runs no more (a WaitGroup must not grow from zero
// while it is waited on): false.
func (s *Server) track(f func()) bool {
	s.mu.Lock()
	if s.waiting {
		s.mu.Unlock()
		return false
	}
	s.callWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.callWG.Done()
		f()
	}()
	return true
}

func (s *Server) byeStray(l *leg) {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	if _, err := s.do(ctx, l.newRequest(s, sip.BYE, 0)); err != nil {
		s.log.Warn("BYE to stray dialog got no answer", "call_id", l.callID, "error", err)
	}
}

// rateLimit allows n events a second.
type rateLimit struct {
	mu    sync.Mutex
	n     int
	start time.Time
	used  int
}

func (r *rateLimit) take() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.start) >= time.Second {
		r.start, r.used = now, 0
	}
	if r.used >= r.n {
		return false
	}
	r.used++
	return true
}

// logLimit lets one log line a second through and counts the rest, so a
// flood cannot fill the disk.
type logLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow returns how many lines were suppressed since the last one, or -1
// when this one must be suppressed too.
func (l *logLimit) allow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= time.Second {
		n := l.suppressed
		l.last, l.suppressed = now, 0
		return n
	}
	l.suppressed++
	return -1
}

// scanner drops a request whose User-Agent is a known scanner's
// (sip.scanners) without an answer, counting it against its source: a
// scanner learns nothing, not even that a SIP server is here.
func (s *Server) scanner(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil || len(s.cfg.SIP.Scanners) == 0 {
		return false
	}
	ua := strings.ToLower(h.Value())
	for _, sc := range s.cfg.SIP.Scanners {
		if strings.Contains(ua, strings.ToLower(sc)) {
			if n := s.scanners.allow(); n >= 0 {
				s.log.Warn("scanner dropped", "method", req.Method.String(), "source", req.Source(), "user_agent", h.Value(), "suppressed", n)
			}
			if ip, ok := sourceIP(req.Source()); ok {
				s.failUnproven(ip, req.Transport(), time.Now())
			}
			return true
		}
	}
	return false
}
