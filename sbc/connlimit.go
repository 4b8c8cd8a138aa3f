package sbc

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit bounds the TCP and TLS connections peers other than trunks
// open to the SIP listeners, in all and per source address: each holds a
// file descriptor and, for TLS, a handshake's worth of CPU, so one address
// must not take them all. A connection over a limit is closed as it is
// accepted.
type connLimit struct {
	total, perSource int
	// idle is how long a connection may stay silent: twice the longest
	// registration, so a device that only re-registers (no CRLF pings)
	// keeps its connection, and one a peer opened and left does not hold
	// its place for ever.
	idle time.Duration

	mu      sync.Mutex
	open    int
	sources map[netip.Prefix]int // an IPv6 host holds a /64: banKey
	refused atomic.Int64
}

func newConnLimit(total, perSource int, idle time.Duration) *connLimit {
	return &connLimit{total: total, perSource: perSource, idle: idle, sources: map[netip.Prefix]int{}}
}

// take counts a new connection from ip, false when over a limit.
func (l *connLimit) take(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := banKey(ip)
	if l.open >= l.total || l.sources[k] >= l.perSource {
		l.refused.Add(1)
		return false
	}
	l.open++
	l.sources[k]++
	return true
}

func (l *connLimit) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := banKey(ip)
	l.open--
	if l.sources[k]--; l.sources[k] <= 0 {
		delete(l.sources, k)
	}
}

// streamListener accepts the TCP or TLS listener's connections that may
// come: none from a banned source (no handshake either), none over the
// limits. wrap, when set, makes the connection sipgo reads (TLS). An
// accept error that is not the end (too many open files) is waited out,
// never handed to sipgo, whose serving would stop for good.
type streamListener struct {
	*net.TCPListener
	s    *Server
	name string // "TCP", "TLS": for logs
	wrap func(net.Conn) net.Conn
}

func (l *streamListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// EMFILE and the like: waiting beats spinning.
			l.s.log.Warn(l.name+" accept failed; retrying", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ip := remoteIP(c.RemoteAddr())
		if l.s.bans.banned(ip) {
			c.Close()
			continue
		}
		// Trunks (and the SBC itself) are neither limited nor timed out:
		// a carrier may open a connection per call and keep it quiet.
		if !l.s.bans.isProtected(banKey(ip)) {
			if !l.s.conns.take(ip) {
				l.s.log.Debug(l.name+" connection refused: too many", "source", c.RemoteAddr().String())
				c.Close()
				continue
			}
			c = &limitedConn{Conn: c, l: l.s.conns, ip: ip, idle: l.s.conns.idle}
		}
		if l.wrap != nil {
			c = l.wrap(c)
		}
		return c, nil
	}
}

// limitedConn gives its place back when closed, once, and is closed when
// idle for long (a read that waits longer fails: sipgo closes it).
type limitedConn struct {
	net.Conn
	l    *connLimit
	ip   netip.Addr
	idle time.Duration
	once sync.Once
}

func (c *limitedConn) Read(b []byte) (int, error) {
	if c.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(b)
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

// ConnectionsRefused is how many TCP and TLS connections were closed as
// they came, over sip.max_connections or sip.max_connections_per_source.
func (s *Server) ConnectionsRefused() int64 { return s.conns.refused.Load() }
