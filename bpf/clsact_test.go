//go:build linux

package bpf

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"sbc/sbc/sbctest/netlab"
)

// TestClsact attaches the TC program the way kernels without tcx need (a
// clsact filter), on this kernel: it filters (a datagram to a closed media
// port is dropped and counted), a second attach replaces the filter rather
// than adding one, and Close removes it; an XDP attach removes one an
// earlier run left.
func TestClsact(t *testing.T) {
	lab := netlab.New(t)
	ifindex := lab.CarrierLink.SBC.Index
	sbcIP := lab.CarrierLink.SBC.IPv4
	c := FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: sbcIP}
	filters := func() int {
		t.Helper()
		n := 0
		if err := lab.SBC.Do(func() error {
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			l, err := h.LinkByIndex(ifindex)
			if err != nil {
				return err
			}
			fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if err != nil {
				return err
			}
			for _, f := range fs {
				if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == clsactPrio {
					n++
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	attach := func() *FastPath {
		t.Helper()
		f, err := LoadFastPath(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.SBC.Do(func() error { return f.attachClsact(ifindex) }); err != nil {
			f.Close()
			t.Fatal(err)
		}
		return f
	}
	probe := func() {
		t.Helper()
		conn, err := lab.Carrier.ListenUDP(netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.WriteToUDP([]byte("probe"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(sbcIP, portMin))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	first := attach()
	second := attach() // as a restarted daemon would: replaces it
	if n := filters(); n != 1 {
		t.Fatalf("%d filters of ours after two attaches, want 1", n)
	}
	probe()
	if got := counters(t, second).Closed; got != 1 {
		t.Errorf("closed-port drops by the second program %d, want 1", got)
	}
	if got := counters(t, first).Closed; got != 0 {
		t.Errorf("the replaced program still counts: %d", got)
	}
	first.clsact = nil // its filter is the second's now
	first.Close()
	if err := lab.SBC.Do(second.Close); err != nil {
		t.Fatal(err)
	}
	if n := filters(); n != 0 {
		t.Errorf("%d filters of ours after Close, want 0", n)
	}

	// One left behind (a killed run), then XDP on the same interface.
	left := attach()
	left.clsact = nil
	left.Close()
	if n := filters(); n != 1 {
		t.Fatalf("%d filters left behind, want 1", n)
	}
	x, err := LoadFastPath(c)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.SBC.Do(x.Close)
	if err := lab.SBC.Do(func() error { return x.AttachXDP(ifindex, XDPGeneric) }); err != nil {
		t.Fatal(err)
	}
	if n := filters(); n != 0 {
		t.Errorf("%d old TC filters beside the new XDP program, want 0", n)
	}

	// One left behind, then a run without the fast path.
	gone := attach()
	gone.clsact = nil
	gone.Close()
	var removed int
	if err := lab.SBC.Do(func() error {
		var err error
		removed, err = DropClsactExcept(nil)
		return err
	}); err != nil || removed != 1 {
		t.Fatalf("DropClsactExcept = %d, %v; want 1", removed, err)
	}
	if n := filters(); n != 0 {
		t.Errorf("%d filters after DropClsactExcept, want 0", n)
	}
}
