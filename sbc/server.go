package sbc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"sbc/media"
	"sbc/sbc/dialplan"
)

// allowed is what the SBC accepts; sent in Allow headers (RFC 3261 §20.5).
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, MESSAGE"

// Server is the SIP side of the SBC: listeners, trunks, routing and the
// B2BUA calls. It is safe for concurrent use.
type Server struct {
	cfg    *Config
	log    *slog.Logger
	relay  *media.Relay
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	trunks *trunkTable
	plan   *dialplan.Table
	ctl    ControlPlane // nil: no control plane
	tls    *sipTLS      // nil: nothing over TLS
	dev    *devices     // the registrar and digest authentication
	pongs  sync.Map     // trunk "ip:port" -> *atomic.Int64, last keepalive pong (unix ns)

	publicIP  string         // as a URI host: an IPv6 address in brackets
	listeners []net.Addr     // bound addresses, in config order
	ports     map[string]int // transport ("udp") -> listen port for Via/Contact
	udpLaddr  sip.Addr       // UDP listener, the source of UDP requests we send
	closers   []func() error // listener sockets
	udpConn   *net.UDPConn   // for stateless 400s to malformed datagrams
	parser    *sip.Parser

	draining  atomic.Bool
	strangers logLimit // "request from unknown source" lines
	scanners  logLimit // "scanner dropped" lines
	bans      *banList
	conns     *connLimit // TCP and TLS connections peers opened
	strays    rateLimit  // stray 2xx answered with ACK and BYE
	waiting   bool       // Drain or Close waits on callWG: track starts nothing (under mu)
	mu        sync.Mutex
	calls     map[*call]struct{}
	dialogs   map[dialogKey]*leg
	flowsMu   sync.Mutex     // not mu: readFilter asks for each response from a stranger
	flows     map[string]int // device legs' flows ("ip:port") -> dialogs over them
	callWG    sync.WaitGroup // in-flight call endings (BYEs)
	stop      chan struct{}
	stopOnce  sync.Once
	listening chan struct{} // closed once Listen serves

	reaperWG sync.WaitGroup
}

// NewServer builds a server from a validated config. It opens no socket;
// Listen does.
func NewServer(cfg *Config, relay *media.Relay, log *slog.Logger) (*Server, error) {
	if sip.T1 != cfg.SIP.T1 {
		// sipgo's timers are process-wide; one server per process sets them.
		sip.SetTimers(cfg.SIP.T1, sip.T2, sip.T4)
	}
	sipLog := slog.New(quietHandler{log.Handler()}).With("component", "sipgo")
	tlsState, err := newSIPTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{parser: sip.NewParser()}
	var tlsOpt []sipgo.UserAgentOption
	if tlsState != nil {
		tlsOpt = append(tlsOpt, sipgo.WithUserAgenTLSConfig(tlsState.refuse))
	}
	ua, err := sipgo.NewUA(append(tlsOpt,
		sipgo.WithUserAgent(cfg.SIP.UserAgent),
		sipgo.WithUserAgentHostname(cfg.SIP.PublicIP),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sipLog),
			sip.WithTransportLayerReadFilter(func(p sip.TransportReadProps, data []byte) ([]byte, error) {
				return s.readFilter(p, data)
			}),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(func(res *sip.Response) { s.onStrayResponse(res) }),
			// A TCP or TLS peer that closes its connection fails the
			// transactions pending on it at once (a call then fails over
			// or is answered), not after Timer B's 32 s.
			sip.WithTransactionLayerTerminateOnConnClose(),
		),
	)...)
	if err != nil {
		return nil, fmt.Errorf("create user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		return nil, fmt.Errorf("create sip server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog), sipgo.WithClientHostname(cfg.SIP.PublicIP))
	if err != nil {
		return nil, fmt.Errorf("create sip client: %w", err)
	}
	routes := make([]dialplan.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = dialplan.Route{From: r.From, Prefix: r.Prefix, To: r.To}
	}
	*s = Server{
		parser:    s.parser,
		cfg:       cfg,
		log:       log,
		relay:     relay,
		ua:        ua,
		srv:       srv,
		client:    client,
		trunks:    newTrunkTable(cfg.Trunks),
		tls:       tlsState,
		dev:       newDevices(cfg),
		plan:      dialplan.New(routes),
		publicIP:  uriHost(cfg.SIP.PublicIP),
		ports:     map[string]int{},
		calls:     map[*call]struct{}{},
		dialogs:   map[dialogKey]*leg{},
		flows:     map[string]int{},
		stop:      make(chan struct{}),
		listening: make(chan struct{}),
		strays:    rateLimit{n: 50},
		bans:      newBanList(cfg, log),
		conns:     newConnLimit(cfg.SIP.MaxConnections, cfg.SIP.MaxConnectionsPerSource, 2*cfg.SIP.Registrar.MaxExpires),
	}
	srv.OnInvite(s.guard(s.onInvite))
	srv.OnAck(s.guard(s.onAck))
	srv.OnBye(s.guard(s.onInDialog))
	srv.OnInfo(s.guard(s.onInDialog))
	srv.OnOptions(s.guard(s.onOptions))
	srv.OnCancel(s.guard(s.onCancel))
	srv.OnRegister(s.guard(s.onRegister))
	srv.OnMessage(s.guard(s.onMessage))
	srv.OnNoRoute(s.guard(s.onOther))
	return s, nil
}

// Listen binds every configured listener, then starts serving them all.
// It returns once all sockets are bound, or the first bind error.
func (s *Server) Listen() error {
	s.restoreRegistrations()
	var serve []func()
	for _, l := range s.cfg.SIP.Listen {
		ap := netip.MustParseAddrPort(l.Address)
		family := "4"
		if ap.Addr().Is6() {
			family = "6"
		}
		network := l.Transport + family
		switch l.Transport {
		case "udp":
			conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
			if err != nil {
				s.closeListeners()
				return fmt.Errorf("listen udp %s: %w", l.Address, err)
			}
			if size, err := growReceiveBuffer(conn); err != nil || size/2 < udpReceiveBuffer {
				s.log.Warn("SIP UDP receive buffer smaller than asked: bursts of requests may be dropped; raise net.core.rmem_max or run with CAP_NET_ADMIN",
					"address", l.Address, "asked", udpReceiveBuffer, "granted", size/2, "error", err)
			}
			la := conn.LocalAddr().(*net.UDPAddr)
			s.ports["udp"] = la.Port
			s.udpLaddr = sip.Addr{IP: la.IP, Port: la.Port}
			s.udpConn = conn
			s.listeners = append(s.listeners, la)
			s.closers = append(s.closers, conn.Close)
			serve = append(serve, func() { s.srv.ServeUDP(conn) })
		case "tcp":
			ln, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(ap))
			if err != nil {
				s.closeListeners()
				return fmt.Errorf("listen tcp %s: %w", l.Address, err)
			}
			la := ln.Addr().(*net.TCPAddr)
			s.ports["tcp"] = la.Port
			s.listeners = append(s.listeners, la)
			s.closers = append(s.closers, ln.Close)
			serve = append(serve, func() { s.srv.ServeTCP(&streamListener{TCPListener: ln, s: s, name: "TCP"}) })
		case "tls":
			ln, err := net.ListenTCP("tcp"+family, net.TCPAddrFromAddrPort(ap))
			if err != nil {
				s.closeListeners()
				return fmt.Errorf("listen tls %s: %w", l.Address, err)
			}
			la := ln.Addr().(*net.TCPAddr)
			s.ports["tls"] = la.Port
			s.listeners = append(s.listeners, la)
			s.closers = append(s.closers, ln.Close)
			s.tls.dialed.addr = la
			s.closers = append(s.closers, s.tls.dialed.Close)
			serve = append(serve, func() { s.srv.ServeTLS(&streamListener{TCPListener: ln, s: s, name: "TLS", wrap: s.newTLSConn}) })
			go s.srv.ServeTLS(s.tls.dialed) // the connections to trunks
		}
	}
	// Only now that s.ports is complete may requests arrive.
	for i, f := range serve {
		go f()
		s.log.Info("listening", "transport", s.cfg.SIP.Listen[i].Transport, "address", s.listeners[i].String())
	}
	s.awaitUDPServing()
	s.reaperWG.Add(1)
	go s.reaper()
	if k := s.cfg.SIP.TLS.Keepalive; k != nil && *k > 0 {
		s.reaperWG.Add(1)
		go s.keepalive(*k)
	}
	if k := s.cfg.SIP.Registrar.Keepalive; k != nil && *k > 0 && s.udpConn != nil {
		s.reaperWG.Add(1)
		go s.pingDevices(*k)
	}
	close(s.listening)
	return nil
}

// awaitUDPServing waits (up to a second) until sipgo has put the UDP
// listener into its pool. A request sent before that (the BYEs of calls a
// restart could not take over) would make sipgo bind a second socket to
// the listener's address and fail with EADDRINUSE.
func (s *Server) awaitUDPServing() {
	if s.udpConn == nil {
		return
	}
	pool := s.ua.TransportLayer().Pool("udp")
	addr := s.udpConn.LocalAddr().String()
	for i := 0; i < 1000; i++ {
		if c := pool.Get(addr); c != nil {
			c.Ref(-1) // Get counted a reference
			return
		}
		time.Sleep(time.Millisecond)
	}
	s.log.Warn("sipgo not serving the UDP listener after 1s", "address", addr)
}

// Addrs returns the bound listener addresses in config order.
func (s *Server) Addrs() []net.Addr { return s.listeners }

func (s *Server) closeListeners() {
	for _, c := range s.closers {
		c()
	}
	s.closers = nil
}

// ActiveCalls counts calls that have not ended.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Drain refuses new calls with 503, waits up to timeout for active calls to
// end, then ends the rest (BYE on both legs, or CANCEL and 503 for calls
// still ringing) and waits for that.
func (s *Server) Drain(timeout time.Duration) {
	s.draining.Store(true)
	s.log.Info("draining", "active_calls", s.ActiveCalls(), "timeout", timeout.String())
	deadline := time.Now().Add(timeout)
	for s.ActiveCalls() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.stopReaper()
	s.mu.Lock()
	for c := range s.calls {
		s.callWG.Add(1)
		go func() {
			defer s.callWG.Done()
			c.hangup(endShutdown)
		}()
	}
	s.waiting = true
	s.mu.Unlock()
	s.callWG.Wait()
}

func (s *Server) stopReaper() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.reaperWG.Wait()
}

// Close stops the listeners and the transaction machinery. Call Drain first
// for a graceful stop.
func (s *Server) Close() error {
	s.stopReaper()
	s.closeListeners()
	s.mu.Lock()
	s.waiting = true
	s.mu.Unlock()
	s.callWG.Wait()
	return s.ua.Close()
}

// reaper ends calls whose media went silent or that exceeded the maximum
// duration. One goroutine for all calls keeps the cost flat.
func (s *Server) reaper() {
	defer s.reaperWG.Done()
	tick := time.NewTicker(reaperInterval(s.cfg.Media.Timeout))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.mu.Lock()
			calls := make([]*call, 0, len(s.calls))
			for c := range s.calls {
				calls = append(calls, c)
			}
			s.mu.Unlock()
			for _, c := range calls {
				if r := c.expired(now, s.cfg.Media.Timeout, s.cfg.Calls.MaxDuration); r != "" {
					s.track(func() { c.hangup(r) })
				}
			}
			s.bans.expire(now)
			s.bans.apply()
			s.expireRegistrations(now)
		case <-s.bans.wake:
			s.bans.apply()
		}
	}
}

func reaperInterval(timeout time.Duration) time.Duration {
	iv := timeout / 10
	return min(max(iv, 20*time.Millisecond), time.Second)
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if t, _ := s.identifyTrunk(req); t == nil && s.dev.reg.Registered(req.Source()) {
		// A registered device's keepalive or probe.
		s.respond(tx, req, 200, "OK", nil, sip.NewHeader("Allow", allowed))
		return
	}
	if s.admit(req, tx) == nil {
		return
	}
	if s.draining.Load() {
		// Lets load balancers and carriers' probes move traffic away.
		s.respond(tx, req, 503, "Service Unavailable", nil, sip.NewHeader("Retry-After", "60"))
		return
	}
	if req.To() != nil && req.To().Params.Has("tag") && s.findLeg(req) == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	s.respond(tx, req, 200, "OK", nil,
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Accept", "application/sdp"),
	)
}

// onCancel sees only CANCELs that matched no INVITE transaction: the
// transaction layer answers the others itself (RFC 3261 §9.2).
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	if s.admit(req, tx) == nil {
		return
	}
	s.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
}

// onOther answers methods the SBC does not handle.
func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if s.admit(req, tx) == nil {
		return
	}
	if req.To() != nil && req.To().Params.Has("tag") && s.findLeg(req) == nil {
		s.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	s.respond(tx, req, 501, "Not Implemented", nil, sip.NewHeader("Allow", allowed))
}

// via builds our Via for a request sent on transport.
func (s *Server) via(transport string) *sip.ViaHeader {
	v := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       strings.ToUpper(transport),
		Host:            s.publicIP,
		Port:            s.ports[transport],
		Params:          sip.NewParams(),
	}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	return v
}

// contact is our Contact in a leg's dialog: a SIPS URI in a dialog a
// SIPS Request-URI began (RFC 3261 §12.1.1), which means TLS.
func (s *Server) contact(l *leg) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "sbc", Host: s.publicIP, Port: s.ports[l.transport]}
	switch {
	case l.sips:
		u.Scheme = "sips"
	case l.transport != "udp":
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", l.transport)
	}
	return &sip.ContactHeader{Address: u}
}

// prepare sets our Via, the transport and, for UDP, the listener socket as
// the source, so responses and in-dialog requests come back to it.
func (s *Server) prepare(req *sip.Request, transport string) {
	req.PrependHeader(s.via(transport))
	req.SetTransport(strings.ToUpper(transport))
	if transport == "udp" {
		req.Laddr = s.udpLaddr
	}
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.SIP.UserAgent))
}

// asIs tells sipgo the request is complete: add nothing.
func asIs(*sipgo.Client, *sip.Request) error { return nil }

// send starts a client transaction for a prepared request.
func (s *Server) send(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	withLength(req)
	if s.tls != nil && strings.EqualFold(req.Transport(), "TLS") {
		if err := s.dialTrunk(ctx, req.Destination()); err != nil {
			return nil, fmt.Errorf("send %s: %w", req.Method, err)
		}
	}
	tx, err := s.client.TransactionRequest(ctx, req, asIs)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", req.Method, err)
	}
	return tx, nil
}

// do sends a request and waits for its final response.
func (s *Server) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := s.send(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// writeAck sends an ACK for a 2xx; ACKs are not transactions (RFC 3261 §17.1.1.3).
func (s *Server) writeAck(ack *sip.Request) error {
	withLength(ack)
	if s.tls != nil && strings.EqualFold(ack.Transport(), "TLS") {
		if err := s.dialTrunk(context.Background(), ack.Destination()); err != nil {
			return err
		}
	}
	return s.client.WriteRequest(ack, asIs)
}

// withLength adds Content-Length, mandatory on stream transports
// (RFC 3261 §20.14) and harmless on UDP.
func withLength(req *sip.Request) {
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
}
