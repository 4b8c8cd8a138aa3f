package media

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// This file is the only one that does socket I/O. It offers one UDP socket
// per port and one reader goroutine per socket; a batched transport can
// replace it behind the same three operations: listen, write, read loop.

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
