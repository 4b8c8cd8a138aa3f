//go:build linux

package ladder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// freeUDPPort returns a UDP port free on ip a moment ago. The process that
// binds it does so moments later; a race with another process is possible
// but unlikely.
func freeUDPPort(ip netip.Addr) (int, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return 0, fmt.Errorf("find a free udp port on %v: %w", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// freeMediaPort returns an even port p such that p..p+3 are free on ip and
// none is avoid: sipp binds its audio (p, p+1) and video (p+2, p+3) ports
// even when it sends no RTP.
func freeMediaPort(ip netip.Addr, avoid int) (int, error) {
	for range 50 {
		p, err := freeUDPPort(ip)
		if err != nil {
			return 0, err
		}
		p &^= 1
		if p+3 > 65535 || (avoid >= p && avoid <= p+3) {
			continue
		}
		ok := true
		var held []*net.UDPConn
		for q := p; q <= p+3 && ok; q++ {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(q))))
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("find 4 free udp ports in a row on %v: none after 50 tries", ip)
}

// udpBound lists the local addresses of the IPv4 UDP sockets in the text
// of /proc/net/udp (proc(5)): "IIIIIIII:PPPP", the address in host byte
// order (little-endian here), the port big-endian, both in hex.
func udpBound(b []byte) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		ipHex, portHex, ok := bytes.Cut(f[1], []byte(":"))
		ip, err := hex.DecodeString(string(ipHex))
		if !ok || err != nil || len(ip) != 4 {
			return nil, fmt.Errorf("parse /proc/net/udp: local address %q; want IIIIIIII:PPPP", f[1])
		}
		port, err := strconv.ParseUint(string(portHex), 16, 16)
		if err != nil {
			return nil, fmt.Errorf("parse /proc/net/udp: port of %q: %w", f[1], err)
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(ip))
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)))
	}
	return out, sc.Err()
}

// waitBound waits until some process has a UDP socket bound to a, or for
// up to timeout; died, when it closes, means the process that was to bind
// it is gone.
func waitBound(ctx context.Context, a netip.AddrPort, timeout time.Duration, died <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return fmt.Errorf("wait for %v: %w", a, err)
		}
		bound, err := udpBound(b)
		if err != nil {
			return fmt.Errorf("wait for %v: %w", a, err)
		}
		for _, x := range bound {
			if x == a {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing bound udp %v within %v", a, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %v: %w", a, context.Cause(ctx))
		case <-died:
			return fmt.Errorf("exited before binding udp %v", a)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
