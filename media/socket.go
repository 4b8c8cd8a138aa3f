package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// The per-port transport: one UDP socket and one reader goroutine per port.
// It needs no privileges and serves IPv6, but costs a file descriptor per
// port and a wake-up per packet; the steered transport (steered.go) replaces
// it where it can.

// perPort opens a leg by binding its two ports.
type perPort struct {
	bindIP netip.Addr
	ports  *portAllocator
	log    *slog.Logger
}

// open allocates and binds the leg's pair and starts its two readers on wg.
func (t *perPort) open(st *Stream, l *leg, wg *sync.WaitGroup, port int) error {
	var (
		rtp, rtcp *socket
		err       error
	)
	if port != 0 {
		rtp, rtcp, err = listenPair(t.bindIP, port)
		if err != nil {
			err = fmt.Errorf("bind media ports %d-%d: %w", port, port+1, err)
		}
	} else {
		port, rtp, rtcp, err = t.bindPair()
	}
	if err != nil {
		return err
	}
	l.rtpPort = port
	l.sock = [2]*socket{rtp, rtcp}
	for k, sock := range l.sock {
		side, kind := l.side, sockKind(k)
		wg.Go(func() {
			sock.readLoop(func(b []byte, src netip.AddrPort) { st.receive(side, kind, b, src) })
		})
	}
	return nil
}

// shut closes the leg's sockets, which ends its readers.
func (t *perPort) shut(l *leg) {
	for _, s := range l.sock {
		if s != nil {
			s.close()
		}
	}
}

func (t *perPort) close()                                   {}
func (t *perPort) quiesce()                                 {} // the legs' WaitGroups do it
func (t *perPort) remoteChanged(l *leg, rtp netip.AddrPort) {} // each socket has its address

// bindPair allocates a port pair and binds it. A pair held by another
// process is returned to the back of the queue and the next one is tried,
// at most once per free pair.
func (t *perPort) bindPair() (port int, rtp, rtcp *socket, err error) {
	var busy error
	for tries := t.ports.freePairs(); tries > 0; tries-- {
		port, ok := t.ports.alloc()
		if !ok {
			break
		}
		rtp, rtcp, err := listenPair(t.bindIP, port)
		if err == nil {
			return port, rtp, rtcp, nil
		}
		t.ports.free(port)
		if !isAddrInUse(err) {
			return 0, nil, nil, fmt.Errorf("bind media ports %d-%d: %w", port, port+1, err)
		}
		t.log.Debug("media port pair busy, skipping", "port", port, "err", err)
		busy = err
	}
	if busy != nil {
		return 0, nil, nil, fmt.Errorf("%w: the free pairs are held by other sockets (last: %v)", ErrNoPorts, busy)
	}
	return 0, nil, nil, ErrNoPorts
}

const (
	// maxPacket is the largest datagram relayed: one Ethernet MTU of payload
	// is far above any RTP/RTCP packet a SIP peer sends.
	maxPacket = 1500
	// readBuffer is larger than maxPacket so an oversize datagram is seen as
	// such (n > maxPacket) and dropped rather than silently truncated.
	readBuffer = 2048
)

// socket is one bound UDP port.
type socket struct {
	conn *net.UDPConn
	port int
}

// listen binds ip:port. An IPv4 address binds an IPv4-only socket; "::"
// binds a dual-stack one, so IPv4 peers reach it too.
func listen(ip netip.Addr, port int) (*socket, error) {
	network := "udp"
	if ip.Is4() {
		network = "udp4"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	if err != nil {
		return nil, err
	}
	return &socket{conn: c, port: port}, nil
}

// listenPair binds the RTP port and RTCP on RTP+1; both or neither.
func listenPair(ip netip.Addr, rtpPort int) (rtp, rtcp *socket, err error) {
	if rtp, err = listen(ip, rtpPort); err != nil {
		return nil, nil, err
	}
	if rtcp, err = listen(ip, rtpPort+1); err != nil {
		rtp.close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}

// isAddrInUse tells a port held by another process (skip to the next pair)
// from errors that no other port would fix.
func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// writeTo sends b to dst without allocating (netip, not net.UDPAddr).
func (s *socket) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := s.conn.WriteToUDPAddrPort(b, dst)
	return err
}

func (s *socket) close() error { return s.conn.Close() }

// readLoop calls handle for every datagram until the socket is closed. The
// buffer is reused: handle must not keep b. The source address is unmapped
// (::ffff:a.b.c.d → a.b.c.d) so that it compares equal to signalled IPv4
// addresses on a dual-stack socket.
func (s *socket) readLoop(handle func(b []byte, src netip.AddrPort)) {
	buf := make([]byte, readBuffer)
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An unconnected UDP socket reports no ICMP errors; anything
			// else is transient and concerns one datagram.
			continue
		}
		handle(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()))
	}
}
