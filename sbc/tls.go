package sbc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sbc/tlsconf"

	"github.com/emiago/sipgo/sip"
)

// SIP over TLS (RFC 3261 §26.2): the listener and who is at the other end
// of each of its connections (mutual TLS identifies trunks), and the
// verification of trunks' certificates on connections the SBC opens.
type sipTLS struct {
	cert   *tlsconf.Cert
	server *tls.Config // the listener's; cloned per connection
	refuse *tls.Config // sipgo's own dialling: never (see dial)
	trunks map[string]*trunkTLS
	peers  sync.Map // remote "ip:port" -> *tlsPeer, while the connection lasts
	dialed *connFeed
	dialMu sync.Map // trunk "ip:port" -> *sync.Mutex: one dial at a time
	ours   sync.Map // trunk "ip:port" -> struct{}: the pool's connection there is one the SBC opened
	log    *slog.Logger
}

// trunkTLS is a trunk's TLS settings, with its config's files loaded.
type trunkTLS struct {
	name    string         // its server certificate names this
	dial    *tls.Config    // connecting to it: its CAs, its name (SNI), our certificate
	clients *x509.CertPool // mutual TLS: its client certificates chain to these
}

// tlsPeer is what a connection's client certificate proved.
type tlsPeer struct {
	subject string
	trunks  []string // mutual-TLS trunks whose CA and names it satisfies
}

// needsTLS tells whether the config has anything over TLS.
func (c *Config) needsTLS() bool {
	if c.listens("tls") {
		return true
	}
	for _, t := range c.Trunks {
		if t.Transport == "tls" {
			return true
		}
	}
	return false
}

// newSIPTLS loads the certificate (or makes the self-signed one) and the
// trunks' CA files; nil when nothing in cfg uses TLS.
func newSIPTLS(cfg *Config, log *slog.Logger) (*sipTLS, error) {
	if !cfg.needsTLS() {
		return nil, nil
	}
	t := &sipTLS{trunks: map[string]*trunkTLS{}, log: log}
	var err error
	if cfg.SIP.TLS.Cert != "" {
		if t.cert, err = tlsconf.Load(cfg.SIP.TLS.Cert, cfg.SIP.TLS.Key); err != nil {
			return nil, fmt.Errorf("sip.tls.cert: %w", err)
		}
	} else {
		var made bool
		ip := net.ParseIP(cfg.SIP.PublicIP)
		if t.cert, made, err = tlsconf.SelfSigned(cfg.Control.DataDir, "sip", "sbc SIP", []net.IP{ip}); err != nil {
			return nil, fmt.Errorf("sip.tls: self-signed certificate in %s: %w", cfg.Control.DataDir, err)
		}
		msg := "SIP TLS certificate (self-signed: peers that verify it refuse it; set sip.tls.cert)"
		if made {
			msg = "SIP TLS certificate made (self-signed: peers that verify it refuse it; set sip.tls.cert)"
		}
		log.Warn(msg, "file", t.cert.File(), "sha256_fingerprint", t.cert.Fingerprint())
	}
	for i, tr := range cfg.Trunks {
		key := fmt.Sprintf("trunk[%d]", i)
		tt := &trunkTLS{name: tr.TLSName, dial: tlsconf.Config(t.cert)}
		tt.dial.GetCertificate = nil
		if tt.name == "" {
			tt.name, _, _ = splitHostPort(tr.Address)
		}
		tt.dial.ServerName = tt.name
		if tr.TLSCA != "" {
			if tt.dial.RootCAs, err = loadPool(tr.TLSCA); err != nil {
				return nil, fmt.Errorf("%s.tls_ca: %w", key, err)
			}
		}
		if tr.TLSClientCA != "" {
			if tt.clients, err = loadPool(tr.TLSClientCA); err != nil {
				return nil, fmt.Errorf("%s.tls_client_ca: %w", key, err)
			}
		}
		t.trunks[tr.Name] = tt
	}
	t.server = tlsconf.Config(t.cert)
	// Asked for, never required: devices have none; a trunk that needs one
	// is refused at its first request without it (sourceTrunk).
	t.server.ClientAuth = tls.RequestClientCert
	t.server.GetClientCertificate = nil
	// sipgo would dial every trunk with one configuration and no way to
	// tell which trunk a handshake is for: the SBC dials them itself (dial)
	// and hands sipgo the connection; sipgo's own dials fail.
	t.refuse = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(tls.ConnectionState) error {
			return errors.New("no TLS connection to this address: the SBC connects over TLS to its trunks only")
		}}
	t.dialed = &connFeed{conns: make(chan net.Conn), done: make(chan struct{})}
	return t, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

func intermediates(chain []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range chain[1:] {
		pool.AddCert(c)
	}
	return pool
}

// identify is what a client certificate chain proves: the mutual-TLS
// trunks whose CAs it chains to and whose names it carries.
func (t *sipTLS) identify(cfg *Config, chain []*x509.Certificate) *tlsPeer {
	leaf := chain[0]
	p := &tlsPeer{subject: leaf.Subject.String()}
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, tr := range cfg.Trunks {
		tt := t.trunks[tr.Name]
		if tt.clients == nil || !slices.ContainsFunc(tr.TLSClientNames, func(n string) bool { return slices.Contains(names, n) }) {
			continue
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: tt.clients, Intermediates: intermediates(chain),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			p.trunks = append(p.trunks, tr.Name)
		}
	}
	return p
}

// tlsConn is a server-side TLS connection whose handshake is bounded in
// time and whose peer's certificate is on file while it lasts.
type tlsConn struct {
	*tls.Conn
	s     *Server
	raddr string
	once  sync.Once
	err   error
}

func (s *Server) newTLSConn(c net.Conn) net.Conn {
	// One configuration for all: its session tickets resume on any
	// connection (a clone per connection would make its own keys).
	return &tlsConn{Conn: tls.Server(c, s.tls.server), s: s, raddr: c.RemoteAddr().String()}
}

func (c *tlsConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.SIP.TLS.HandshakeTimeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			// sipgo would log a read error at error level for each: a
			// scanner's probes would fill the log. The end of the stream
			// it is, said once here at debug level.
			c.s.log.Debug("TLS handshake failed", "source", c.raddr, "error", err)
			c.err = io.EOF
			return
		}
		// What its client certificate proves (a resumed session keeps
		// the certificates of the one it resumes).
		if chain := c.Conn.ConnectionState().PeerCertificates; len(chain) > 0 {
			c.s.tls.peers.Store(c.raddr, c.s.tls.identify(c.s.cfg, chain))
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

func (c *tlsConn) Close() error {
	c.s.tls.peers.Delete(c.raddr)
	return c.Conn.Close()
}

// tlsPeerOf is what the client certificate of a TLS request's connection
// proved; nil for other transports and connections without one.
func (s *Server) tlsPeerOf(source string) *tlsPeer {
	if s.tls == nil {
		return nil
	}
	if p, ok := s.tls.peers.Load(source); ok {
		return p.(*tlsPeer)
	}
	return nil
}

// Certificate is the SIP TLS certificate (Reload it on SIGHUP); nil when
// nothing uses TLS.
func (s *Server) Certificate() *tlsconf.Cert {
	if s.tls == nil {
		return nil
	}
	return s.tls.cert
}

// pongTimeout is how long a keepalive ping waits for its pong (RFC 5626
// §4.4.1: 10 s) before the connection is deemed dead and closed.
var pongTimeout = 10 * time.Second

// keepalive pings (a double CRLF, RFC 5626 §4.4.1) the TCP and TLS
// connections the SBC opened to trunks every interval, and closes one
// whose pong does not come: the next request to the trunk opens a new
// connection, instead of being written into a dead one.
func (s *Server) keepalive(interval time.Duration) {
	defer s.reaperWG.Done()
	type flow struct {
		conn    sip.Connection // the one pinged: a new one starts afresh
		pinged  time.Time
		waiting bool
	}
	flows := map[string]*flow{}
	tick := time.NewTicker(min(interval, pongTimeout) / 4)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			for _, t := range s.cfg.Trunks {
				if t.Transport == "udp" {
					continue
				}
				addr, ok := trunkAddr(t.Address)
				if !ok {
					continue
				}
				pool := s.ua.TransportLayer().Pool(t.Transport)
				c := pool.Get(addr)
				if c == nil {
					delete(flows, addr)
					continue
				}
				f := flows[addr]
				if f == nil || f.conn != c {
					f = &flow{conn: c, pinged: now}
					flows[addr] = f
				}
				v, _ := s.pongs.LoadOrStore(addr, new(atomic.Int64))
				if pong := v.(*atomic.Int64).Load(); f.waiting && pong > f.pinged.UnixNano() {
					f.waiting = false
				}
				switch {
				case f.waiting && now.Sub(f.pinged) > pongTimeout:
					s.log.Warn("trunk connection closed: no keepalive pong", "trunk", t.Name, "transport", t.Transport, "address", addr)
					pool.CloseAndDelete(c, addr)
					delete(flows, addr)
					continue
				case !f.waiting && now.Sub(f.pinged) >= interval:
					if w, ok := c.(io.Writer); ok {
						if _, err := w.Write([]byte("\r\n\r\n")); err == nil {
							f.pinged, f.waiting = now, true
						}
					}
				}
				c.Ref(-1) // Get counted a reference
			}
		}
	}
}

// trunkAddr is a trunk's address as sipgo's pools key it ("ip:port"):
// trunks named by host name are not pinged (their address may move).
func trunkAddr(address string) (string, bool) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return "", false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), true
}

// notePong records a keepalive pong (a lone CRLF) from a trunk's
// connection the keepalive pings (only those: the map stays as small as
// the trunk list).
func (s *Server) notePong(p sip.TransportReadProps, data []byte) {
	if p.Transport == "UDP" || len(data) > 2 || len(bytes.Trim(data, "\r\n")) > 0 || p.RemoteAddr == nil {
		return
	}
	if v, ok := s.pongs.Load(p.RemoteAddr.String()); ok {
		v.(*atomic.Int64).Store(time.Now().UnixNano())
	}
}

// connFeed hands sipgo's TLS transport the connections the SBC dialled, as
// if accepted: sipgo files them in its pool under the trunk's address and
// reads from them; requests to the trunk then go over them.
type connFeed struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func (f *connFeed) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}

func (f *connFeed) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

func (f *connFeed) Addr() net.Addr { return f.addr }

// dialTrunk makes sure a request to a TLS trunk at dest ("ip:port") has a
// connection: the one in sipgo's pool, or a new one the SBC dials with the
// trunk's CAs, name and our certificate. A destination that is no TLS
// trunk (a device's connection) is left to sipgo's pool.
func (s *Server) dialTrunk(ctx context.Context, dest string) error {
	var tr *Trunk
	for i := range s.cfg.Trunks {
		if t := &s.cfg.Trunks[i]; t.Transport == "tls" {
			if a, ok := trunkAddr(t.Address); ok && a == dest {
				tr = t
				break
			}
		}
	}
	if tr == nil {
		return nil
	}
	pool := s.ua.TransportLayer().Pool("tls")
	mu, _ := s.tls.dialMu.LoadOrStore(dest, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if c := pool.Get(dest); c != nil {
		c.Ref(-1)
		if _, ours := s.tls.ours.Load(dest); ours {
			return nil
		}
		// A connection the trunk's address opened to us: its certificate
		// was not checked as the trunk's server certificate. The SBC's own
		// connection takes its place in the pool.
	}
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.SIP.TLS.HandshakeTimeout)
	defer cancel()
	d := tls.Dialer{Config: s.tls.trunks[tr.Name].dial}
	c, err := d.DialContext(dialCtx, "tcp", dest)
	if err != nil {
		s.log.Warn("TLS connection to trunk failed", "trunk", tr.Name, "address", dest, "error", err)
		return fmt.Errorf("TLS to trunk %s: %w", tr.Name, err)
	}
	// In TLS 1.3 the client's handshake ends before the server has checked
	// the client's certificate: a trunk that refuses ours says so with an
	// alert right after. Wait a moment for it, rather than hand sipgo a
	// connection whose first request would die with no answer.
	conn, err := awaitRefusal(c.(*tls.Conn), trunkRefusalWait)
	if err != nil {
		s.log.Warn("TLS connection to trunk failed", "trunk", tr.Name, "address", dest, "error", err)
		return fmt.Errorf("TLS to trunk %s: %w", tr.Name, err)
	}
	// The trunk's requests on this connection are the trunk's: its
	// certificate was verified as it was opened (mutual TLS or not).
	raddr := conn.RemoteAddr().String()
	s.tls.peers.Store(raddr, &tlsPeer{subject: c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.String(), trunks: []string{tr.Name}})
	conn = &closeHook{Conn: conn, hook: func() {
		s.tls.peers.Delete(raddr)
		s.tls.ours.Delete(dest)
	}}
	s.tls.ours.Store(dest, struct{}{})
	select {
	case s.tls.dialed.conns <- conn:
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	}
	for range 1000 { // sipgo files it before it reads: at once
		if pc := pool.Get(dest); pc != nil {
			pc.Ref(-1)
			s.log.Info("TLS connection to trunk", "trunk", tr.Name, "address", dest,
				"tls_version", tls.VersionName(c.(*tls.Conn).ConnectionState().Version))
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("TLS to trunk %s: connection not taken up", tr.Name)
}

// trunkRefusalWait is how long a new TLS connection to a trunk is watched
// for the alert of a trunk that refuses our certificate.
var trunkRefusalWait = 300 * time.Millisecond

// awaitRefusal reads from a new client connection for up to wait: an
// error (the peer's alert, a close) is the connection's refusal; silence
// is the normal case; data the peer sent meanwhile is kept for the
// connection's reader.
func awaitRefusal(c *tls.Conn, wait time.Duration) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0:
		return &prefixedConn{Conn: c, prefix: buf[:n]}, nil
	case errors.As(err, &ne) && ne.Timeout():
		return c, nil
	case err == nil:
		return c, nil
	}
	c.Close()
	return nil, err
}

// prefixedConn is a connection whose first bytes were already read.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// closeHook runs hook once when the connection is closed.
type closeHook struct {
	net.Conn
	once sync.Once
	hook func()
}

func (c *closeHook) Close() error {
	c.once.Do(c.hook)
	return c.Conn.Close()
}
