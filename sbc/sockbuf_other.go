//go:build !linux

package sbc

import "net"

const udpReceiveBuffer = 4 << 20

// growReceiveBuffer asks for udpReceiveBuffer and, not knowing what the
// kernel granted, reports it granted (as twice the payload room, like Linux).
func growReceiveBuffer(conn *net.UDPConn) (int, error) {
	return 2 * udpReceiveBuffer, conn.SetReadBuffer(udpReceiveBuffer)
}
