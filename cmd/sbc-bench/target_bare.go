//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"

	"sbc/cmd/sbc-bench/internal/bare"
)

// bareTarget is the yardstick of the kernel fast path (-netlab only): the
// bare XDP forwarder of internal/bare on the sbc namespace's veths, driven
// like rtpengine (offer and answer rewrite the SDP to its address, SIP goes
// from the UAC straight to the UAS). Per call it takes two ports on the
// sbc's address, one facing each side, and installs both directions once
// the answer is known. No process: the machine's CPU is what it costs.
type bareTarget struct {
	lab     *labInfo
	portMin int
	uas     netip.AddrPort
	fwd     *bare.Forwarder

	mu    sync.Mutex
	peers map[int]netip.AddrPort // call index -> the UAC's media address, from the offer
}

func newBareTarget(lab *labInfo, portMin int) *bareTarget {
	return &bareTarget{lab: lab, portMin: portMin}
}

func (*bareTarget) name() string { return "bare" }

// ports are call i's forwarder ports: facing the UAC, facing the UAS.
func (t *bareTarget) ports(i int) (a, b uint16) {
	p := t.portMin + 4*i
	return uint16(p), uint16(p + 2)
}

func (t *bareTarget) start(_ context.Context, e env) error {
	if t.portMin+4*e.calls > 65535 {
		return fmt.Errorf("%d calls need %d ports from %d, past 65535", e.calls, 4*e.calls, t.portMin)
	}
	t.uas, t.peers = e.uasAddr, map[int]netip.AddrPort{}
	f, err := bare.Load()
	if err != nil {
		return err
	}
	err = inNetnsThread(t.lab.SBCNetns, func() error {
		for _, k := range t.lab.Links {
			if err := f.Attach(k.Ifindex); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Close()
		return err
	}
	t.fwd = f
	return nil
}

func (t *bareTarget) sipAddr() netip.AddrPort { return t.uas }
func (*bareTarget) pid() int                  { return 0 }
func (*bareTarget) died() <-chan struct{}     { return nil }

// offer remembers where the UAC wants media and offers the UAS the port
// facing it.
func (t *bareTarget) offer(_ context.Context, c callRef, sdp []byte) ([]byte, error) {
	peer, err := mediaAddr(sdp)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.peers[c.index] = peer
	t.mu.Unlock()
	_, b := t.ports(c.index)
	return sdpFor(netip.AddrPortFrom(t.lab.SBC, b), uint64(c.index), ""), nil
}

// answer installs both directions and answers the UAC with the port facing
// it.
func (t *bareTarget) answer(_ context.Context, c callRef, sdp []byte) ([]byte, error) {
	uas, err := mediaAddr(sdp)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	uac, ok := t.peers[c.index]
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("bare: answer of call %d before its offer", c.index)
	}
	a, b := t.ports(c.index)
	for _, d := range []struct {
		port     uint16
		from, to netip.AddrPort
	}{
		{a, netip.AddrPortFrom(t.lab.SBC, b), uas}, // from the UAC, out towards the UAS
		{b, netip.AddrPortFrom(t.lab.SBC, a), uac}, // and back
	} {
		k, ok := t.lab.linkTo(d.to.Addr())
		if !ok {
			return nil, fmt.Errorf("bare: no lab link to %v", d.to)
		}
		if err := t.fwd.Put(d.port, bare.Entry{Src: d.from, Dst: d.to, Ifindex: k.Ifindex, SrcMAC: k.MAC, DstMAC: k.LeafMAC}); err != nil {
			return nil, err
		}
	}
	return sdpFor(netip.AddrPortFrom(t.lab.SBC, a), uint64(c.index), ""), nil
}

func (t *bareTarget) delete(_ context.Context, c callRef) error {
	a, b := t.ports(c.index)
	t.fwd.Delete(a)
	t.fwd.Delete(b)
	return nil
}

func (t *bareTarget) stop(context.Context) (relayReport, error) {
	if t.fwd == nil {
		return relayReport{}, nil
	}
	err := t.fwd.Close()
	t.fwd = nil
	return relayReport{}, err
}

// inNetnsThread runs f on a thread moved into the named network namespace,
// and moves it back.
func inNetnsThread(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		return fmt.Errorf("leave netns %s: %w", name, err)
	}
	return ferr
}
