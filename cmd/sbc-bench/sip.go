//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The harness's SIP user agents, built on sipgo: a UAC that places the calls
// from trunk "a"'s address and a UAS that answers them on trunk "b"'s. Each
// is its own sipgo UserAgent with one UDP socket, which is the source of
// everything it sends, so the SBC matches it to its trunk.

// sipSide is one user agent and its socket.
type sipSide struct {
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	client  *sipgo.Client
	conn    *net.UDPConn
	addr    netip.AddrPort
	laddr   sip.Addr
	contact sip.ContactHeader
	served  sync.WaitGroup
}

func newSIPSide(ip netip.Addr, log *slog.Logger) (*sipSide, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("listen sip on %v: %w", ip, err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("sbc-bench"),
		sipgo.WithUserAgentHostname(ip.String()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log),
		sipgo.WithClientHostname(ip.String()), sipgo.WithClientConnectionAddr(addr.String()))
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	return &sipSide{
		ua: ua, srv: srv, client: client, conn: conn, addr: addr,
		laddr:   sip.Addr{IP: net.IP(ip.AsSlice()), Port: int(addr.Port())},
		contact: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bench", Host: ip.String(), Port: int(addr.Port())}},
	}, nil
}

// serve starts reading the socket; register handlers first. It returns once
// sipgo knows the socket as a connection to send from: before that, a
// request with this Laddr would make sipgo bind the address again and fail.
func (s *sipSide) serve() error {
	s.served.Go(func() { s.srv.ServeUDP(s.conn) })
	tp := s.ua.TransportLayer()
	for range 1000 {
		if c, err := tp.GetConnection("udp", s.addr.String()); err == nil {
			c.TryClose() // GetConnection took a reference
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("sip socket %v: not serving after 1s", s.addr)
}

// close stops the user agent and its reader.
func (s *sipSide) close() {
	s.ua.Close()
	s.conn.Close()
	s.served.Wait()
}

// callUser is the Request-URI user of call i: digits, as a dial plan
// expects, and all the UAS needs to know which call an INVITE is (the SBC
// hides everything else).
func callUser(i int) string { return strconv.Itoa(1_000_000 + i) }

func parseCallUser(user string, calls int) (int, bool) {
	n, err := strconv.Atoi(user)
	i := n - 1_000_000
	return i, err == nil && i >= 0 && i < calls
}

// failures keeps the first few errors of many concurrent calls.
type failures struct {
	mu    sync.Mutex
	n     int
	first []error
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.first) < 5 {
		f.first = append(f.first, err)
	}
}

func (f *failures) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// err summarises, or is nil when nothing failed.
func (f *failures) err(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return nil
	}
	return fmt.Errorf("%d %s failed, first: %w", f.n, what, errors.Join(f.first...))
}

// uac places and ends the calls.
type uac struct {
	*sipSide
	dua      sipgo.DialogUA
	to       netip.AddrPort // target.sipAddr
	anchor   anchor         // nil unless the target anchors media out of band
	tag      string         // makes Call-IDs unique across runs
	sessions []*sipgo.DialogClientSession
	refs     []callRef
	// byes counts BYEs the target sent us: a call it ended by itself.
	byes atomic.Int64
}

func newUAC(ip netip.Addr, calls int, log *slog.Logger) (*uac, error) {
	s, err := newSIPSide(ip, log)
	if err != nil {
		return nil, err
	}
	u := &uac{sipSide: s, tag: sip.GenerateTagN(8),
		sessions: make([]*sipgo.DialogClientSession, calls), refs: make([]callRef, calls)}
	u.dua = sipgo.DialogUA{Client: s.client, ContactHDR: s.contact}
	s.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		u.byes.Add(1)
		tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	if err := s.serve(); err != nil {
		s.close()
		return nil, err
	}
	return u, nil
}

// invite places call i with offer and returns the SDP answer once the 200
// has come; ack confirms it. Each call is placed once, by one goroutine.
func (u *uac) invite(ctx context.Context, i int, offer []byte) ([]byte, error) {
	host := u.to.Addr().String()
	ref := callRef{index: i, callID: fmt.Sprintf("bench-%s-%d@%s", u.tag, i, u.addr.Addr()), fromTag: sip.GenerateTagN(16)}
	if u.anchor != nil {
		var err error
		if offer, err = u.anchor.offer(ctx, ref, offer); err != nil {
			return nil, fmt.Errorf("call %d: anchor offer: %w", i, err)
		}
	}
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: callUser(i), Host: host, Port: int(u.to.Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "bench", Host: u.addr.Addr().String()}, Params: sip.NewParams()}
	from.Params.Add("tag", ref.fromTag)
	callID := sip.CallIDHeader(ref.callID)
	contact := u.contact
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: callUser(i), Host: host}})
	req.AppendHeader(&callID)
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	sess, err := u.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("call %d: send INVITE: %w", i, err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		sess.Close()
		var dr *sipgo.ErrDialogResponse
		if errors.As(err, &dr) {
			return nil, fmt.Errorf("call %d: INVITE answered %d %s", i, dr.Res.StatusCode, dr.Res.Reason)
		}
		return nil, fmt.Errorf("call %d: INVITE: %w", i, err)
	}
	u.sessions[i] = sess
	res := sess.InviteResponse
	if to := res.To(); to != nil {
		ref.toTag, _ = to.Params.Get("tag")
	}
	u.refs[i] = ref // bye deletes what the anchor knows, even if answer fails
	answer := res.Body()
	if u.anchor != nil {
		if answer, err = u.anchor.answer(ctx, ref, answer); err != nil {
			return nil, fmt.Errorf("call %d: anchor answer: %w", i, err)
		}
	}
	return answer, nil
}

// remoteTarget is where in-dialog requests of call i go: the Contact of
// the 200 (RFC 3261 §12.1.2).
func (u *uac) remoteTarget(i int) sip.Uri {
	res := u.sessions[i].InviteResponse
	if c := res.Contact(); c != nil {
		return *c.Address.Clone()
	}
	return *u.sessions[i].InviteRequest.Recipient.Clone()
}

func (u *uac) ack(ctx context.Context, i int) error {
	ack := sip.NewRequest(sip.ACK, u.remoteTarget(i))
	ack.Laddr = u.laddr
	if err := u.sessions[i].WriteAck(ctx, ack); err != nil {
		return fmt.Errorf("call %d: send ACK: %w", i, err)
	}
	return nil
}

// bye ends call i and waits for the 200.
func (u *uac) bye(ctx context.Context, i int) error {
	sess := u.sessions[i]
	if sess == nil {
		return nil
	}
	bye := sip.NewRequest(sip.BYE, u.remoteTarget(i))
	bye.Laddr = u.laddr
	err := sess.WriteBye(ctx, bye)
	if u.anchor != nil {
		if derr := u.anchor.delete(ctx, u.refs[i]); derr != nil && err == nil {
			err = derr
		}
	}
	if err != nil {
		var dr sipgo.ErrDialogResponse
		if errors.As(err, &dr) {
			return fmt.Errorf("call %d: BYE answered %d %s", i, dr.Res.StatusCode, dr.Res.Reason)
		}
		return fmt.Errorf("call %d: BYE: %w", i, err)
	}
	return nil
}

// uas answers the calls. answer gives the SDP answer for call i's offer
// (and readies its media); it is set before serving.
type uas struct {
	*sipSide
	cache  *sipgo.DialogServerCache
	calls  int
	answer func(i int, offer []byte) ([]byte, error)
	seen   []atomic.Bool
	acked  atomic.Int64
	byes   atomic.Int64
	fail   failures
}

func newUAS(ip netip.Addr, calls int, log *slog.Logger, answer func(int, []byte) ([]byte, error)) (*uas, error) {
	s, err := newSIPSide(ip, log)
	if err != nil {
		return nil, err
	}
	u := &uas{sipSide: s, calls: calls, answer: answer, seen: make([]atomic.Bool, calls)}
	u.cache = sipgo.NewDialogServerCache(s.client, s.contact)
	s.srv.OnInvite(u.onInvite)
	s.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { u.cache.ReadAck(req, tx) })
	s.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := u.cache.ReadBye(req, tx); err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
			return
		}
		u.byes.Add(1)
	})
	if err := s.serve(); err != nil {
		s.close()
		return nil, err
	}
	return u, nil
}

func (u *uas) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	refuse := func(code int, reason string, err error) {
		u.fail.add(err)
		tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	i, ok := parseCallUser(req.Recipient.User, u.calls)
	if !ok {
		refuse(sip.StatusNotFound, "Not Found", fmt.Errorf("INVITE for unknown user %q", req.Recipient.User))
		return
	}
	if u.seen[i].Swap(true) {
		refuse(sip.StatusLoopDetected, "Loop Detected", fmt.Errorf("call %d: a second INVITE (new transaction) at the UAS", i))
		return
	}
	answer, err := u.answer(i, req.Body())
	if err != nil {
		refuse(sip.StatusNotAcceptableHere, "Not Acceptable Here", fmt.Errorf("call %d: UAS: %w", i, err))
		return
	}
	d, err := u.cache.ReadInvite(req, tx)
	if err != nil {
		refuse(sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("call %d: UAS: %w", i, err))
		return
	}
	// RespondSDP returns once the ACK came (or 64*T1 without it).
	if err := d.RespondSDP(answer); err != nil {
		u.fail.add(fmt.Errorf("call %d: UAS 200: %w", i, err))
		return
	}
	u.acked.Add(1)
}
