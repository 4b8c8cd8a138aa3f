//go:build linux

package firewall

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"sbc/media"
	"sbc/sbc/sbctest/netlab"
)

// TestNextHopBySource: the next hop is the route the kernel takes from the
// relay's source address, so a source-based rule (ip rule from) counts,
// and the cache keeps one answer per source and peer: from the SBC's
// customer-side address the customer is on its link; from a second address
// whose rule routes it through the carrier, the carrier is the next hop.
func TestNextHopBySource(t *testing.T) {
	lab := netlab.New(t)
	var fw *Firewall
	if err := lab.SBC.Do(func() error {
		var err error
		fw, _, err = Start(Config{Mode: media.FastPathTC, BindIP: lab.CarrierLink.SBC.IPv4, PortMin: 30000, PortMax: 30099},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		return err
	}); err != nil || fw == nil {
		t.Fatalf("start the fast path: %v", err)
	}
	t.Cleanup(func() { fw.Close() })
	carrier, cust := lab.CarrierLink, lab.CustomerLink
	other := netip.MustParseAddr("198.51.100.200")
	for _, cmd := range [][]string{
		{"addr", "add", other.String() + "/24", "dev", carrier.SBC.Name},
		{"rule", "add", "from", other.String(), "lookup", "100"},
		{"route", "add", cust.Prefix4.String(), "via", carrier.Leaf.IPv4.String(), "dev", carrier.SBC.Name, "table", "100"},
		{"neigh", "replace", carrier.Leaf.IPv4.String(), "lladdr", carrier.Leaf.MAC.String(), "dev", carrier.SBC.Name, "nud", "permanent"},
		{"neigh", "replace", cust.Leaf.IPv4.String(), "lladdr", cust.Leaf.MAC.String(), "dev", cust.SBC.Name, "nud", "permanent"},
	} {
		if out, err := lab.SBC.Command("ip", cmd...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", cmd, err, out)
		}
	}
	for _, c := range []struct {
		src     netip.Addr
		ifindex int
		mac     net.HardwareAddr
	}{
		{cust.SBC.IPv4, cust.SBC.Index, cust.Leaf.MAC},
		{other, carrier.SBC.Index, carrier.Leaf.MAC},
		{cust.SBC.IPv4, cust.SBC.Index, cust.Leaf.MAC}, // from the cache
	} {
		hop, err := fw.nextHop(c.src, cust.Leaf.IPv4)
		if err != nil {
			t.Fatalf("from %v: %v", c.src, err)
		}
		if hop.Ifindex != c.ifindex || !bytes.Equal(hop.Dst, c.mac) {
			t.Errorf("from %v to %v: out of %d to %v; want out of %d to %v", c.src, cust.Leaf.IPv4, hop.Ifindex, hop.Dst, c.ifindex, c.mac)
		}
	}
}

// TestNeighbourChangedByLink: a neighbour handed out as a next hop is known
// by link and address: fe80::1 changing its MAC on another link, or going
// away there, leaves the generation alone; on its own link it moves it.
func TestNeighbourChangedByLink(t *testing.T) {
	gw := netip.MustParseAddr("fe80::1")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	f := &Firewall{used: map[neighKey]string{{2, gw}: mac.String()}}
	for _, c := range []struct {
		what string
		u    netlink.NeighUpdate
		bump bool
	}{
		{"another MAC on another link", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH,
			Neigh: netlink.Neigh{LinkIndex: 3, IP: gw.AsSlice(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}, State: netlink.NUD_REACHABLE}}, false},
		{"gone on another link", netlink.NeighUpdate{Type: unix.RTM_DELNEIGH,
			Neigh: netlink.Neigh{LinkIndex: 3, IP: gw.AsSlice()}}, false},
		{"the same MAC on its link", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH,
			Neigh: netlink.Neigh{LinkIndex: 2, IP: gw.AsSlice(), HardwareAddr: mac, State: netlink.NUD_STALE}}, false},
		{"another MAC on its link", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH,
			Neigh: netlink.Neigh{LinkIndex: 2, IP: gw.AsSlice(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}, State: netlink.NUD_REACHABLE}}, true},
		{"gone on its link", netlink.NeighUpdate{Type: unix.RTM_DELNEIGH,
			Neigh: netlink.Neigh{LinkIndex: 2, IP: gw.AsSlice()}}, true},
	} {
		before := f.Generation()
		f.neighbourChanged(c.u)
		if bumped := f.Generation() != before; bumped != c.bump {
			t.Errorf("%s: generation moved %v, want %v", c.what, bumped, c.bump)
		}
	}
}
