//go:build linux

package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"sbc/sbc/sbctest/netlab"
)

// tcWire is a veth pair in a lab's namespace, the TC program on the
// ingress of one end, and a packet socket on the other end that sends
// frames in as a NIC hands them to the stack: what a test run cannot
// make (a VLAN tag the kernel took off, headers not all linear).
type tcWire struct {
	f       *FastPath
	fd      int
	in, out int // the ends' interface indexes
}

// newTCWire loads the fast path as c says and attaches it to a wire in a
// lab of its own. Both ends have an MTU of 9000.
func newTCWire(t *testing.T, c FastPathConfig) *tcWire {
	t.Helper()
	lab := netlab.New(t)
	w := &tcWire{f: loadFastPath(t, c)}
	err := lab.SBC.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wire-in", MTU: 9000}, PeerName: "wire-out", PeerMTU: 9000}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		for _, name := range []string{"wire-in", "wire-out"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
			if name == "wire-in" {
				w.in = l.Attrs().Index
			} else {
				w.out = l.Attrs().Index
			}
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			l, err := netlink.LinkByIndex(w.in)
			if err != nil {
				return err
			}
			if l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("wire-in not up after 5 s")
			}
		}
		if err := w.f.AttachTC(w.in); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // sends only
		if err != nil {
			return err
		}
		w.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("the wire: %v", err)
	}
	t.Cleanup(func() { unix.Close(w.fd) })
	return w
}

// send sends frame in and waits (up to 2 s) until done says the program
// has counted it, given the counters and port's stats; it returns the
// counters then.
func (w *tcWire) send(t *testing.T, frame []byte, done func(Counters, PortStats) bool, port uint16) Counters {
	t.Helper()
	to := &unix.SockaddrLinklayer{Ifindex: w.out, Halen: 6}
	copy(to.Addr[:], frame[0:6])
	if err := unix.Sendto(w.fd, frame, 0, to); err != nil {
		t.Fatalf("send %d bytes: %v", len(frame), err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		c := counters(t, w.f)
		st, err := w.f.Stats(port)
		if err != nil {
			t.Fatal(err)
		}
		if done(c, st) || time.Now().After(deadline) {
			return c
		}
	}
}

// TestFastPathTCNonLinear: an IPv6 datagram of 5,000 bytes from a packet
// socket reaches TC with only its Ethernet header linear (the rest in a
// page, as a NIC or GRO may leave it); with 72 bytes of extension headers
// (hop-by-hop and destination options) its UDP header lies past what the
// program pulls at first, and it is judged by its port all the same:
// dropped to a closed media port, passed to an open one; a banned source's
// dropped at the SIP port.
func TestFastPathTCNonLinear(t *testing.T) {
	media6, peer := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:1::7")
	w := newTCWire(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP6: media6, SIPPorts: []uint16{5060}})
	if err := w.f.Open(20010, Pinhole{}); err != nil {
		t.Fatal(err)
	}
	if err := w.f.Ban(netip.MustParsePrefix("2001:db8:66::/64")); err != nil {
		t.Fatal(err)
	}
	big := func(src netip.Addr, dport uint16) []byte {
		return packet{src: src, dst: media6, sport: 4000, dport: dport, hopByHop: 64, ext6: 1,
			payload: make([]byte, 5000)}.bytes()
	}
	if c := w.send(t, big(peer, 20020), func(c Counters, _ PortStats) bool { return c.Closed > 0 }, 20020); c.Closed != 1 {
		t.Errorf("to a closed port: %d closed-port drops, want 1", c.Closed)
	}
	var st PortStats
	w.send(t, big(peer, 20010), func(_ Counters, s PortStats) bool { st = s; return s.Packets > 0 }, 20010)
	if st.Packets != 1 {
		t.Errorf("to an open port: %d packets let through, want 1", st.Packets)
	}
	if c := w.send(t, big(netip.MustParseAddr("2001:db8:66::1"), 5060), func(c Counters, _ PortStats) bool { return c.Banned > 0 }, 20010); c.Banned != 1 {
		t.Errorf("a banned source to the SIP port: %d dropped as banned, want 1", c.Banned)
	}
}

// TestFastPathTCVLAN: at TC the kernel has taken a frame's VLAN tag off
// before the program runs (skb->vlan_present); such a frame is filtered
// (a closed port dropped) but not forwarded: it goes to the stack, as a
// tagged frame whose tag the program sees does.
func TestFastPathTCVLAN(t *testing.T) {
	w := newTCWire(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP})
	fw := &Forward{From: netip.AddrPortFrom(mediaIP, 20012), To: netip.AddrPortFrom(customer, 5004),
		Via: &NextHop{Ifindex: w.out, Src: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Dst: net.HardwareAddr{2, 0, 0, 0, 0, 4}}}
	if err := w.f.Open(20010, Pinhole{Forward: fw}); err != nil {
		t.Fatal(err)
	}
	for _, tags := range [][]uint16{{100}, {200, 100}} {
		closed := packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20020, vlans: tags}.bytes()
		before := counters(t, w.f).Closed
		if c := w.send(t, closed, func(c Counters, _ PortStats) bool { return c.Closed > before }, 20020); c.Closed != before+1 {
			t.Errorf("%d tags, to a closed port: %d closed-port drops, want %d", len(tags), c.Closed, before+1)
		}
		var st PortStats
		open := packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, vlans: tags}.bytes()
		before2, _ := w.f.Stats(20010)
		w.send(t, open, func(_ Counters, s PortStats) bool { st = s; return s.Packets > before2.Packets }, 20010)
		if st.Packets != before2.Packets+1 || st.Forwarded != before2.Forwarded {
			t.Errorf("%d tags, to a forwarding port: %d packets let through, %d forwarded; want 1 and none forwarded", len(tags), st.Packets-before2.Packets, st.Forwarded-before2.Forwarded)
		}
	}
	// Untagged, the same port forwards: the wire works.
	var st PortStats
	w.send(t, packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}.bytes(), func(_ Counters, s PortStats) bool { st = s; return s.Forwarded > 0 }, 20010)
	if st.Forwarded != 1 {
		t.Errorf("untagged, to a forwarding port: %d forwarded, want 1", st.Forwarded)
	}
}

// TestFastPathCutExtensionHeaders: an IPv6 datagram to the media address
// cut short in its extension headers cannot be judged by its port: dropped,
// by both programs, as a longer chain than they walk is.
func TestFastPathCutExtensionHeaders(t *testing.T) {
	media6 := netip.MustParseAddr("2001:db8::10")
	f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP6: media6})
	if err := f.Open(20010, Pinhole{}); err != nil {
		t.Fatal(err)
	}
	full := packet{src: netip.MustParseAddr("2001:db8:1::7"), dst: media6, sport: 4000, dport: 20010, hopByHop: 64, ext6: 1}.bytes()
	for _, n := range []int{14 + 40 + 32, 14 + 40 + 64 + 4, 14 + 40 + 72 + 4} { // in either header, in UDP's
		for _, p := range programs {
			if got, _ := run(t, p.prog(f), full[:n]); got != p.drop {
				t.Errorf("%s: cut at %d bytes: verdict %d, want %d", p.name, n, got, p.drop)
			}
		}
	}
	for _, p := range programs {
		if got, _ := run(t, p.prog(f), full); got != p.pass {
			t.Errorf("%s: whole: verdict %d, want %d", p.name, got, p.pass)
		}
	}
}
