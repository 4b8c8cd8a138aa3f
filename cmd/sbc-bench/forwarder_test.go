//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// dropRelay is the tests' stand-in for a relay: a tiny UDP forwarder that
// anchors each call's media out of band (offer/answer, like rtpengine under
// Kamailio) and drops every n-th packet of each direction on purpose, so
// the harness's loss accounting has a known answer. It is a target like any
// other.
type dropRelay struct {
	every int // drop packets every, 2*every, ...; 0 drops nothing
	uas   netip.AddrPort

	mu    sync.Mutex
	calls map[int]*relayCall
	wg    sync.WaitGroup

	forwarded, dropped atomic.Uint64
}

// relayCall is one call: a socket facing the UAC (A) and one facing the UAS (B).
type relayCall struct {
	a, b         *net.UDPConn
	mu           sync.Mutex
	peerA, peerB netip.AddrPort
}

// relayIP is not 127.0.0.1, which relay experiments on this machine steer
// ports of with BPF sk_lookup: a socket here must get its own packets.
var relayIP = netip.MustParseAddr("127.0.0.30")

func (*dropRelay) name() string { return "drop-relay" }

func (r *dropRelay) start(_ context.Context, e env) error {
	r.uas, r.calls = e.uasAddr, map[int]*relayCall{}
	return nil
}

// SIP goes straight to the UAS; only the SDP passes through offer/answer.
func (r *dropRelay) sipAddr() netip.AddrPort { return r.uas }
func (*dropRelay) pid() int                  { return 0 }
func (*dropRelay) died() <-chan struct{}     { return nil }

func (r *dropRelay) offer(_ context.Context, c callRef, sdp []byte) ([]byte, error) {
	peerA, err := mediaAddr(sdp)
	if err != nil {
		return nil, err
	}
	call := &relayCall{peerA: peerA}
	if call.a, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relayIP, 0))); err != nil {
		return nil, err
	}
	if call.b, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relayIP, 0))); err != nil {
		call.a.Close()
		return nil, err
	}
	r.mu.Lock()
	r.calls[c.index] = call
	r.mu.Unlock()
	r.wg.Go(func() { r.forward(call.a, call.b, func() netip.AddrPort { return call.peer(&call.peerB) }) })
	r.wg.Go(func() { r.forward(call.b, call.a, func() netip.AddrPort { return call.peer(&call.peerA) }) })
	return sdpFor(call.b.LocalAddr().(*net.UDPAddr).AddrPort(), uint64(c.index), ""), nil
}

func (r *dropRelay) answer(_ context.Context, c callRef, sdp []byte) ([]byte, error) {
	peerB, err := mediaAddr(sdp)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	call := r.calls[c.index]
	r.mu.Unlock()
	if call == nil {
		return nil, fmt.Errorf("answer for call %d without an offer", c.index)
	}
	call.mu.Lock()
	call.peerB = peerB
	call.mu.Unlock()
	return sdpFor(call.a.LocalAddr().(*net.UDPAddr).AddrPort(), uint64(c.index), ""), nil
}

func (c *relayCall) peer(p *netip.AddrPort) netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *p
}

// forward relays what arrives on in to dst() from out, until in is closed.
func (r *dropRelay) forward(in, out *net.UDPConn, dst func() netip.AddrPort) {
	buf := make([]byte, 2048)
	n := 0
	for {
		size, _, err := in.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		n++
		if r.every > 0 && n%r.every == 0 {
			r.dropped.Add(1)
			continue
		}
		if to := dst(); to.IsValid() {
			if _, err := out.WriteToUDPAddrPort(buf[:size], to); err == nil {
				r.forwarded.Add(1)
			}
		}
	}
}

func (r *dropRelay) delete(_ context.Context, c callRef) error {
	r.mu.Lock()
	call := r.calls[c.index]
	delete(r.calls, c.index)
	r.mu.Unlock()
	if call != nil {
		call.a.Close()
		call.b.Close()
	}
	return nil
}

func (r *dropRelay) stop(context.Context) (relayReport, error) {
	r.mu.Lock()
	for i, call := range r.calls {
		call.a.Close()
		call.b.Close()
		delete(r.calls, i)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return relayReport{Counted: true, Source: "drop-relay", Forwarded: r.forwarded.Load(), Dropped: r.dropped.Load()}, nil
}
