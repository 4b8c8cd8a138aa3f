package sbc

import (
	"net"

	"golang.org/x/sys/unix"
)

// udpReceiveBuffer is what the SIP UDP listener asks of the kernel. One
// goroutine reads the socket; while the scheduler gives the other cores to
// call handling, a burst of requests waits in this buffer, and a datagram
// that does not fit is dropped, costing the sender a retransmission 500 ms
// later. The default buffer (net.core.rmem_default, 208 KiB) holds about
// 400 INVITEs: a few tens of milliseconds at 1,800 calls/s.
const udpReceiveBuffer = 4 << 20

// growReceiveBuffer sets the socket's receive buffer to udpReceiveBuffer and
// returns the size the kernel granted (getsockopt, which reports twice the
// payload room). SO_RCVBUFFORCE passes net.core.rmem_max with
// CAP_NET_ADMIN; without it SO_RCVBUF is capped by that sysctl.
func growReceiveBuffer(conn *net.UDPConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpReceiveBuffer) != nil {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, udpReceiveBuffer); serr != nil {
				return
			}
		}
		got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	return got, err
}
