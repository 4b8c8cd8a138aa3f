// Package freeport finds ports that were free a moment ago, for the
// processes tests and benchmarks start on loopback. The process binds the
// port moments later; a race with another process is possible but
// unlikely.
package freeport

import (
	"fmt"
	"net"
	"net/netip"
)

// UDP returns a UDP port free on ip just now.
func UDP(ip netip.Addr) (int, error) {
	c, err := listenUDP(ip, 0)
	if err != nil {
		return 0, fmt.Errorf("find a free udp port on %v: %w", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// UDPOutside returns a UDP port free on ip outside lo..hi (a media port
// range, which the sbc refuses for its SIP listener): an ephemeral one,
// else one of the ports just below the range.
func UDPOutside(ip netip.Addr, lo, hi int) (int, error) {
	if p, err := UDP(ip); err != nil || p < lo || p > hi {
		return p, err
	}
	for p := lo - 1; p > max(lo-100, 1024); p-- {
		if c, err := listenUDP(ip, p); err == nil {
			c.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("find a free udp port on %v outside %d-%d: none free", ip, lo, hi)
}

// Media returns an even port p such that p..p+3 are free on ip and none
// is avoid (a SIP port chosen, not yet bound): sipp binds its audio (p,
// p+1) and video (p+2, p+3) ports even when it sends no RTP.
func Media(ip netip.Addr, avoid int) (int, error) {
	for range 50 {
		p, err := UDP(ip)
		if err != nil {
			return 0, err
		}
		p &^= 1
		if p+3 > 65535 || (avoid >= p && avoid <= p+3) {
			continue
		}
		if free(ip, p, p+3) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("find 4 free udp ports in a row on %v: none after 50 tries", ip)
}

// free tells whether UDP ports lo..hi can all be bound on ip.
func free(ip netip.Addr, lo, hi int) bool {
	var held []*net.UDPConn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for p := lo; p <= hi; p++ {
		c, err := listenUDP(ip, p)
		if err != nil {
			return false
		}
		held = append(held, c)
	}
	return true
}

func listenUDP(ip netip.Addr, port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
}
