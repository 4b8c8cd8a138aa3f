package sbc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Malformed requests get 400 and create no state (RFC 3261 §8.2, §16.3).
// sipgo drops what it cannot parse without answering, so UDP datagrams are
// parsed once in a read filter first; a request that fails gets a stateless
// 400 assembled from its raw Via, From, To, Call-ID and CSeq lines.
// TCP reads are byte streams, not messages, so the filter leaves them alone.

// readFilter is a sip.TransportReadFilter.
func (s *Server) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if s.bans.banned(remoteIP(p.RemoteAddr)) {
		if p.Transport != "UDP" {
			return nil, errBanned // sipgo closes the connection
		}
		return nil, nil // no answer, not even read
	}
	if p.Transport != "UDP" || len(bytes.Trim(data, "\r\n\x00")) == 0 {
		s.notePong(p, data)
		return data, nil
	}
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		// Responses only ever come from trunks and devices (registered,
		// or in a call) we sent requests to.
		ua, ok := p.RemoteAddr.(*net.UDPAddr)
		if !ok || s.trunks.match(ua.AddrPort().Addr().Unmap()) == nil && !s.dev.reg.Registered(ua.String()) && !s.deviceFlow(ua.String()) {
			return nil, nil
		}
	}
	msg, err := s.parser.ParseSIP(data)
	if req, ok := msg.(*sip.Request); err == nil && ok && req.Via() == nil {
		// The transaction layer cannot even key it (and would log an error
		// per datagram: a flood of them would flood the log).
		err = errNoVia
	}
	if err == nil {
		return data, nil
	}
	s.rejectMalformed(p.RemoteAddr, data, err)
	return nil, nil // dropped
}

var errNoVia = errors.New("request without a Via header")

// errBanned closes a banned source's connection (quietHandler keeps sipgo
// from logging it: the ban was logged once).
var errBanned = errors.New("source banned")

// remoteIP is the address of a transport's remote end (invalid if none).
func remoteIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) rejectMalformed(remote net.Addr, data []byte, perr error) {
	ua, ok := remote.(*net.UDPAddr)
	if !ok {
		return
	}
	src := ua.AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	// Unknown sources get nothing: no reflection towards scanners.
	if s.trunks.match(src.Addr()) == nil {
		s.failUnproven(src.Addr(), "UDP", time.Now())
		s.log.Debug("malformed message from unknown source dropped", "source", src.String(), "bytes", len(data))
		return
	}
	res := badRequest(data, perr, s.publicIP)
	if res == nil {
		s.log.Warn("malformed message dropped", "source", src.String(), "bytes", len(data), "error", perr)
		return
	}
	s.log.Warn("malformed request answered 400", "source", src.String(), "bytes", len(data), "error", perr)
	if s.udpConn != nil {
		s.udpConn.WriteToUDPAddrPort(res, src)
	}
}

// badRequest builds a 400 for a raw request, or nil when it is not a
// request or lacks what a response must echo (Via, CSeq).
func badRequest(data []byte, perr error, agent string) []byte {
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) < 2 || !looksLikeRequestLine(lines[0]) {
		return nil
	}
	var b strings.Builder
	b.WriteString("SIP/2.0 400 Bad Request\r\n")
	var via, cseq bool
	for _, l := range lines[1:] {
		name, _, found := strings.Cut(l, ":")
		if !found {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "v":
			via = true
		case "cseq":
			cseq = true
		case "from", "f", "to", "t", "call-id", "i":
		default:
			continue
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	if !via || !cseq {
		return nil
	}
	reason := strings.NewReplacer("\r", " ", "\n", " ", `"`, "'").Replace(perr.Error())
	if len(reason) > 120 {
		reason = reason[:120]
	}
	b.WriteString(`Warning: 399 ` + agent + ` "` + reason + `"` + "\r\nContent-Length: 0\r\n\r\n")
	return []byte(b.String())
}

func looksLikeRequestLine(l string) bool {
	f := strings.Fields(l)
	return len(f) == 3 && f[2] == "SIP/2.0" && f[0] != "SIP/2.0" && strings.ToUpper(f[0]) == f[0]
}

// validate checks what RFC 3261 §8.1.1 makes mandatory in a request, beyond
// what the parser enforces. It returns why the request is malformed, or "".
func validate(req *sip.Request) string {
	switch {
	case req.CallID() == nil || *req.CallID() == "":
		return "missing Call-ID"
	case req.From() == nil:
		return "missing From"
	case req.To() == nil:
		return "missing To"
	case req.CSeq() == nil:
		return "missing CSeq"
	case req.CSeq().MethodName != req.Method:
		return "CSeq method does not match the request method"
	case req.Via() == nil:
		return "missing Via"
	}
	if tag, _ := req.From().Params.Get("tag"); tag == "" && !req.IsAck() && req.Method != sip.OPTIONS {
		return "missing From tag"
	}
	if req.IsInvite() && req.Contact() == nil {
		return "missing Contact"
	}
	return ""
}

// quietHandler keeps sipgo's logs useful and safe: the raw message it
// attaches on parse errors ("data") may carry credentials, so only its size
// is kept.
type quietHandler struct{ slog.Handler }

// SetLibraryLogger routes what the SIP library logs outside any server
// (its connections' bookkeeping) to log, quietened as a server's own
// sipgo lines are. Process-wide: call once, before any server starts.
func SetLibraryLogger(log *slog.Logger) {
	sip.SetDefaultLogger(slog.New(quietHandler{log.Handler()}).With("component", "sipgo"))
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if strings.HasSuffix(r.Message, "ref went negative") || strings.HasSuffix(r.Message, "ref went negative on try close") {
		// sipgo's count of a connection's users, below zero when a peer
		// closed it under a transaction: nothing is lost, nothing to do.
		if level = slog.LevelDebug; !h.Handler.Enabled(ctx, level) {
			return nil
		}
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	banned := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, errBanned) {
			banned = true
			return false
		}
		if a.Key == "data" {
			a = slog.Int("data_bytes", len(a.Value.String()))
		}
		out.AddAttrs(a)
		return true
	})
	if banned {
		return nil
	}
	return h.Handler.Handle(ctx, out)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
