//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// A packet capture on the loopback interface, done in the test process with
// an AF_PACKET socket: a witness outside both sipp and the SBC of which UDP
// flows really went where. It needs CAP_NET_RAW, as sipp's pcap play does.

// udpFlow is one direction of UDP traffic between two sockets.
type udpFlow struct{ src, dst netip.AddrPort }

func (f udpFlow) String() string { return f.src.String() + " -> " + f.dst.String() }

type loopCapture struct {
	fd    int
	stopc atomic.Bool
	done  chan struct{}
	err   error

	mu    sync.Mutex
	flows map[udpFlow]int
}

// startCapture counts IPv4 UDP packets on lo per flow until stop.
func startCapture(t *testing.T) *loopCapture {
	t.Helper()
	lo, err := loopbackInterface()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_IP)))
	if err != nil {
		t.Fatalf("capture: AF_PACKET socket: %v (the media test needs CAP_NET_RAW: run it as root)", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		t.Fatalf("capture: bind to %s: %v", lo.Name, err)
	}
	// Wake up regularly to notice stop; keep a burst of packets queued.
	tv := syscall.NsecToTimeval(50e6)
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
	c := &loopCapture{fd: fd, done: make(chan struct{}), flows: map[udpFlow]int{}}
	go c.loop()
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *loopCapture) loop() {
	defer close(c.done)
	defer syscall.Close(c.fd)
	buf := make([]byte, 65536)
	for !c.stopc.Load() {
		n, from, err := syscall.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			c.err = err
			return
		}
		// On lo every packet shows up twice: once leaving, once arriving.
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue
		}
		if f, ok := parseUDP(buf[:n]); ok {
			c.mu.Lock()
			c.flows[f]++
			c.mu.Unlock()
		}
	}
}

// stop ends the capture and returns the packet count of each flow seen.
func (c *loopCapture) stop() (map[udpFlow]int, error) {
	c.stopc.Store(true)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[udpFlow]int, len(c.flows))
	for f, n := range c.flows {
		out[f] = n
	}
	return out, c.err
}

// parseUDP reads the addresses and ports of an IPv4 UDP packet.
func parseUDP(p []byte) (udpFlow, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != syscall.IPPROTO_UDP {
		return udpFlow{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return udpFlow{}, false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	sport := binary.BigEndian.Uint16(p[ihl:])
	dport := binary.BigEndian.Uint16(p[ihl+2:])
	return udpFlow{netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}, true
}

func loopbackInterface() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 {
			return &ifs[i], nil
		}
	}
	return nil, errors.New("no loopback interface")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// formatFlows lists flows, busiest first, for failure messages.
func formatFlows(flows map[udpFlow]int) string {
	type fc struct {
		f udpFlow
		n int
	}
	var all []fc
	for f, n := range flows {
		all = append(all, fc{f, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].f.String() < all[j].f.String()
	})
	var b strings.Builder
	for _, x := range all {
		fmt.Fprintf(&b, "  %6d  %s\n", x.n, x.f)
	}
	return b.String()
}

// trunkListener stands in for the callee trunk where no call may arrive.
type trunkListener struct {
	conn net.PacketConn
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

// listenCallee binds trunk b's address and records whatever reaches it.
func listenCallee(t *testing.T, e *e2eEnv) *trunkListener {
	t.Helper()
	c, err := net.ListenPacket("udp4", e.cfg.Callee.Addr.String())
	if err != nil {
		t.Fatalf("listen as trunk b: %v", err)
	}
	l := &trunkListener{conn: c, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got = append(l.got, string(buf[:n]))
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-l.done })
	return l
}

// expectNothing fails the test if anything reached the callee trunk.
func (l *trunkListener) expectNothing(t *testing.T) {
	t.Helper()
	l.conn.Close()
	<-l.done
	for _, m := range l.got {
		t.Errorf("the callee trunk got a message it must not:\n%s", m)
	}
}

// messages returns what reached the callee trunk so far.
func (l *trunkListener) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}
