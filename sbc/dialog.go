package sbc

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"sbc/media"
)

// dialogKey identifies a dialog from our side: Call-ID, our tag and the
// peer's tag (RFC 3261 §12).
type dialogKey struct {
	callID, localTag, remoteTag string
}

// leg is one side of a call: a dialog between the SBC and one peer. The A
// leg is a UAS dialog (the peer called us), the B leg a UAC dialog.
type leg struct {
	call      *call
	peer      *Trunk // the trunk or device this leg talks to
	side      media.Side
	transport string // "udp", "tcp", "tls"
	// dest, for a device's leg, is its flow ("ip:port" its requests came
	// from, or its registration did): every request of the leg goes there,
	// whatever its Contact says (behind NAT, a private address).
	dest string
	// sips: the dialog began with a SIPS Request-URI (over TLS): our
	// Contact in it is a SIPS URI too.
	sips bool

	mu        sync.Mutex
	callID    string
	localTag  string
	remoteTag string
	local     sip.Uri // our URI in this dialog (From of our requests)
	localName string
	remote    sip.Uri // the peer's URI (To of our requests)
	remoteNm  string
	target    sip.Uri  // the peer's Contact: Request-URI of our requests
	routes    []string // route set, in the order Route headers are sent
	localSeq  uint32
	remoteSeq uint32
}

// trunk is the trunk (or device) this leg talks to.
func (l *leg) trunk() *Trunk { return l.peer }

func (l *leg) key() dialogKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	return dialogKey{l.callID, l.localTag, l.remoteTag}
}

// requestKey is the dialog key of an incoming in-dialog request: To carries
// our tag, From the peer's.
func requestKey(req *sip.Request) (dialogKey, bool) {
	cid, from, to := req.CallID(), req.From(), req.To()
	if cid == nil || from == nil || to == nil {
		return dialogKey{}, false
	}
	lt, _ := to.Params.Get("tag")
	rt, _ := from.Params.Get("tag")
	if lt == "" {
		return dialogKey{}, false
	}
	return dialogKey{string(*cid), lt, rt}, true
}

// newRequest builds an in-dialog request to the peer (RFC 3261 §12.2.1.1).
// ACK reuses the INVITE's CSeq number; every other method takes the next.
func (l *leg) newRequest(s *Server, method sip.RequestMethod, ackSeq uint32) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	req := sip.NewRequest(method, *l.target.Clone())
	seq := ackSeq
	if method != sip.ACK {
		l.localSeq++
		seq = l.localSeq
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{DisplayName: l.remoteNm, Address: *l.remote.Clone(), Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	cid := sip.CallIDHeader(l.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.AppendHeader(&mf)
	for _, r := range l.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	if method == sip.INVITE {
		req.AppendHeader(s.contact(l))
	}
	s.prepare(req, l.transport)
	if l.dest != "" {
		req.SetDestination(s.legDest(l))
	} else if len(l.routes) > 0 {
		// Loose routing (RFC 3261 §16.12): send to the first route.
		if hp := routeHostPort(l.routes[0]); hp != "" {
			req.SetDestination(hp)
		}
	}
	return req
}

// setRemoteTag learns the peer's tag from a B-leg response (an early
// dialog on 18x, confirmed on 2xx) and files the dialog under its key.
func (l *leg) setRemoteTag(s *Server, tag string) {
	l.mu.Lock()
	old := l.remoteTag
	l.mu.Unlock()
	if tag == old {
		return
	}
	s.removeDialog(l)
	l.mu.Lock()
	l.remoteTag = tag
	l.mu.Unlock()
	s.addDialog(l)
}

// acceptSeq checks an incoming request's CSeq against the last one
// (RFC 3261 §12.2.2: lower is out of order and gets 500).
func (l *leg) acceptSeq(req *sip.Request) bool {
	cseq := req.CSeq()
	if cseq == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if req.IsAck() || req.IsCancel() {
		return true
	}
	if l.remoteSeq != 0 && cseq.SeqNo <= l.remoteSeq {
		return false
	}
	l.remoteSeq = cseq.SeqNo
	return true
}

// setTarget takes the remote target from a request or 2xx Contact
// (RFC 3261 §12.2.1.2: target refresh).
func (l *leg) setTarget(c *sip.ContactHeader) {
	if c == nil {
		return
	}
	l.mu.Lock()
	l.target = *c.Address.Clone()
	l.mu.Unlock()
}

// routeSet is a UAC's route set: the 2xx's Record-Route in reverse
// (RFC 3261 §12.1.2).
func routeSet(hdrs []sip.Header) []string {
	rr := recordRoutes(hdrs)
	slices.Reverse(rr)
	return rr
}

// recordRoutes returns the Record-Route values of a message in order.
func recordRoutes(hdrs []sip.Header) []string {
	var out []string
	for _, h := range hdrs {
		for _, v := range splitHeaderValues(h.Value()) {
			out = append(out, v)
		}
	}
	return out
}

// splitHeaderValues splits a comma-separated list of name-addr values,
// ignoring commas inside <...> or quotes.
func splitHeaderValues(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				if s := strings.TrimSpace(v[start:i]); s != "" {
					out = append(out, s)
				}
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// routeHostPort returns "host:port" of a route value such as
// "<sip:192.0.2.1:5060;lr>", or "" when it cannot be parsed.
func routeHostPort(route string) string {
	v := strings.TrimSpace(route)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(v, &u); err != nil || u.Host == "" {
		return ""
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return joinHostPort(u.Host, port)
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// findLeg returns the leg an in-dialog request belongs to, or nil.
func (s *Server) findLeg(req *sip.Request) *leg {
	k, ok := requestKey(req)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialogs[k]
}

func (s *Server) addDialog(l *leg) {
	k := l.key()
	s.mu.Lock()
	_, had := s.dialogs[k]
	s.dialogs[k] = l
	s.mu.Unlock()
	if !had && l.trunk().device != nil {
		s.flowsMu.Lock()
		s.flows[l.dest]++
		s.flowsMu.Unlock()
	}
}

func (s *Server) removeDialog(l *leg) {
	k := l.key()
	s.mu.Lock()
	_, had := s.dialogs[k]
	delete(s.dialogs, k)
	s.mu.Unlock()
	if had && l.trunk().device != nil {
		s.flowsMu.Lock()
		if s.flows[l.dest]--; s.flows[l.dest] <= 0 {
			delete(s.flows, l.dest)
		}
		s.flowsMu.Unlock()
	}
}

// deviceFlow tells whether a device's call runs over flow: its responses
// are let in, registered or not (a device may call without registering,
// and its registration may lapse during a call).
func (s *Server) deviceFlow(flow string) bool {
	s.flowsMu.Lock()
	defer s.flowsMu.Unlock()
	return s.flows[flow] > 0
}

// legDest is where a leg's requests go: its flow or connection (l.dest),
// unless that is a TLS connection a trunk opened and has closed since;
// then the trunk's own address, to which the SBC connects (dialTrunk),
// checking the trunk's certificate. A device that closed its connection
// is reached again only when it connects and registers anew.
func (s *Server) legDest(l *leg) string {
	t := l.trunk()
	if l.transport != "tls" || t.device != nil || s.tls == nil {
		return l.dest
	}
	if c := s.ua.TransportLayer().Pool("tls").Get(l.dest); c != nil {
		c.Ref(-1)
		return l.dest
	}
	if a, ok := trunkAddr(t.Address); ok {
		return a
	}
	return l.dest
}

// reachable tells whether a leg's peer can be sent a request: a device
// over TCP or TLS only while the connection it registered over is open
// (the SBC cannot connect to it: behind a NAT, its port is the NAT's);
// anyone else always.
func (s *Server) reachable(l *leg) bool {
	if l.peer == nil || l.peer.device == nil || l.transport == "udp" {
		return true
	}
	c := s.ua.TransportLayer().Pool(l.transport).Get(l.dest)
	if c == nil {
		return false
	}
	c.Ref(-1)
	return true
}
