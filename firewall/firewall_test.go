//go:build linux

package firewall

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"sbc/bpf"
	"sbc/media"
	"sbc/sbc/sbctest/netlab"
)

// TestFirewallOnAVeth sends real datagrams from the carrier's namespace to
// the SBC's, where the fast path is attached to the carrier-facing veth.
func TestFirewallOnAVeth(t *testing.T) {
	for _, mode := range []string{media.FastPathXDP, media.FastPathTC} {
		t.Run(mode, func(t *testing.T) {
			lab := netlab.New(t)
			sbcIP := lab.CarrierLink.SBC.IPv4
			var fw *Firewall
			err := lab.SBC.Do(func() error {
				var err error
				var off string
				fw, off, err = Start(Config{Mode: mode, BindIP: sbcIP, PortMin: 30000, PortMax: 30099,
					SIPPorts: []uint16{5060}, SIPRate: 50, SIPBurst: 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err == nil && fw == nil {
					t.Errorf("Start returned neither a firewall nor an error (off: %s)", off)
				}
				return err
			})
			if err != nil || fw == nil {
				t.Fatalf("start the fast path in %s mode: %v", mode, err)
			}
			t.Cleanup(func() { fw.Close() })
			if want := lab.CarrierLink.SBC.Name + " (" + mode + ")"; len(fw.Attached()) != 1 || fw.Attached()[0] != want {
				t.Errorf("attached %v, want [%s]", fw.Attached(), want)
			}

			media := listen(t, lab.SBC, netip.AddrPortFrom(sbcIP, 30010))
			sip := listen(t, lab.SBC, netip.AddrPortFrom(sbcIP, 5060))
			from, err := lab.Carrier.ListenUDP(netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			send := func(to *net.UDPConn, n int) int {
				t.Helper()
				dst := to.LocalAddr().(*net.UDPAddr)
				for range n {
					if _, err := from.WriteToUDP([]byte("rtp"), dst); err != nil {
						t.Fatal(err)
					}
				}
				return drain(to)
			}

			if got := send(media, 3); got != 0 {
				t.Errorf("a media port of no call received %d datagrams", got)
			}
			if c, _ := fw.Counters(); c.Closed != 3 {
				t.Errorf("closed-port drops %d, want 3", c.Closed)
			}
			if err := fw.Open(30010); err != nil {
				t.Fatal(err)
			}
			if got := send(media, 3); got != 3 {
				t.Errorf("an open media port received %d of 3 datagrams", got)
			}
			if err := fw.Shut(30010); err != nil {
				t.Fatal(err)
			}
			if got := send(media, 3); got != 0 {
				t.Errorf("a shut media port received %d datagrams", got)
			}

			// A flood to SIP: the burst gets through, the rest dies in the kernel.
			if got := send(sip, 200); got < 20 || got > 40 {
				t.Errorf("SIP flood: %d of 200 datagrams reached the listener, want about the burst of 20", got)
			}
			if c, _ := fw.Counters(); c.RateLimited < 160 {
				t.Errorf("rate-limited %d, want at least 160 of 200", c.RateLimited)
			}

			// A banned source loses everything, open ports included.
			if err := fw.Open(30010); err != nil {
				t.Fatal(err)
			}
			if err := fw.Deny(netip.PrefixFrom(lab.CarrierLink.Leaf.IPv4, 32)); err != nil {
				t.Fatal(err)
			}
			if got := send(media, 3); got != 0 {
				t.Errorf("a banned source reached an open port %d times", got)
			}
		})
	}
}

func TestStartOffAndAuto(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fw, off, err := Start(Config{Mode: media.FastPathOff}, log)
	if fw != nil || err != nil || off == "" {
		t.Errorf("off: %v, %q, %v; want nil, a reason, nil", fw, off, err)
	}
	// The media address on loopback: auto stays off and says why.
	fw, off, err = Start(Config{Mode: media.FastPathAuto, BindIP: netip.MustParseAddr("127.0.0.1"), PortMin: 30000, PortMax: 30099}, log)
	if fw != nil || err != nil || off == "" {
		t.Errorf("auto on loopback: %v, %q, %v; want nil, a reason, nil", fw, off, err)
	}
	// An address no interface holds: auto stays off and says why; asked
	// for explicitly, it is an error.
	fw, off, err = Start(Config{Mode: media.FastPathAuto, BindIP: netip.MustParseAddr("192.0.2.254"), PortMin: 30000, PortMax: 30099}, log)
	if fw != nil || err != nil || !strings.Contains(off, "no interface holds") {
		t.Errorf("auto with an address no interface holds: %v, %q, %v; want nil, the reason, nil", fw, off, err)
	}
	_, _, err = Start(Config{Mode: media.FastPathTC, BindIP: netip.MustParseAddr("192.0.2.254"), PortMin: 30000, PortMax: 30099}, log)
	if err == nil {
		t.Error("tc with an address no interface holds: no error")
	}
	_, _, err = Start(Config{Mode: media.FastPathXDP, Interfaces: []string{"nosuchif0"}, PortMin: 30000, PortMax: 30099}, log)
	if err == nil {
		t.Error("xdp on a missing interface: no error")
	}
}

func listen(t *testing.T, ns *netlab.Namespace, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := ns.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// drain counts what arrives until 200 ms pass without a datagram.
func drain(c *net.UDPConn) int {
	buf := make([]byte, 2048)
	n := 0
	for {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			return n
		}
		n++
	}
}

// TestFirewallForwards has the kernel relay datagrams from the carrier to
// the customer across the SBC's namespace, where forwarding is off: they
// arrive from the SBC's customer-side address and port, whole (the
// customer's stack checks their checksums), and never wake a socket in the
// SBC's namespace.
func TestFirewallForwards(t *testing.T) {
	for _, mode := range []string{media.FastPathTC, media.FastPathXDP} {
		t.Run(mode, func(t *testing.T) {
			lab := netlab.New(t)
			sbcIP := lab.CarrierLink.SBC.IPv4
			var fw *Firewall
			err := lab.SBC.Do(func() error {
				var err error
				fw, _, err = Start(Config{Mode: mode, BindIP: sbcIP, PortMin: 30000, PortMax: 30099,
					Interfaces: []string{lab.CarrierLink.SBC.Name, lab.CustomerLink.SBC.Name}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
				return err
			})
			if err != nil || fw == nil {
				t.Fatalf("start the fast path in %s mode: %v", mode, err)
			}
			t.Cleanup(func() { fw.Close() })

			phone := netip.AddrPortFrom(lab.CustomerLink.Leaf.IPv4, 5004)
			relaySrc := netip.AddrPortFrom(lab.CustomerLink.SBC.IPv4, 30012)
			rx := listen(t, lab.Customer, phone)
			sbcSock := listen(t, lab.SBC, netip.AddrPortFrom(sbcIP, 30010)) // the userspace relay's socket
			if err := fw.Open(30010); err != nil {
				t.Fatal(err)
			}
			// The phone's MAC is learnt the usual way: the SBC sends to it.
			out := listen(t, lab.SBC, relaySrc)
			deadline := time.Now().Add(3 * time.Second)
			for {
				out.WriteToUDPAddrPort([]byte("hello"), phone)
				err := fw.Forward(30010, netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 4000), relaySrc, phone, true)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNoNeighbour) || time.Now().After(deadline) {
					t.Fatalf("forward: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			drain(rx) // the hellos

			from, err := lab.Carrier.ListenUDP(netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 4000))
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			for i := range 10 {
				if _, err := from.WriteToUDPAddrPort([]byte{'r', 't', 'p', byte(i)}, netip.AddrPortFrom(sbcIP, 30010)); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 64)
			for i := range 10 {
				rx.SetReadDeadline(time.Now().Add(time.Second))
				n, src, err := rx.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d of 10 did not reach the customer: %v (counters %+v)", i, err, counters(t, fw))
				}
				if src != relaySrc || n != 4 || buf[3] != byte(i) {
					t.Errorf("got %q from %v; want datagram %d from %v", buf[:n], src, i, relaySrc)
				}
			}
			if got := drain(sbcSock); got != 0 {
				t.Errorf("the userspace socket got %d datagrams the kernel should have forwarded", got)
			}
			st, err := fw.PortStats(30010)
			if err != nil {
				t.Fatal(err)
			}
			if st.Forwarded != 10 {
				t.Errorf("port stats %+v; want 10 forwarded", st)
			}

			// The phone's MAC changes: the generation moves, and a Forward
			// again resolves the new next hop.
			neigh := func(mac string) {
				t.Helper()
				g := fw.Generation()
				if out, err := lab.SBC.Command("ip", "neigh", "replace", phone.Addr().String(), "lladdr", mac,
					"dev", lab.CustomerLink.SBC.Name, "nud", "permanent").CombinedOutput(); err != nil {
					t.Fatalf("ip neigh: %v\n%s", err, out)
				}
				for deadline := time.Now().Add(2 * time.Second); fw.Generation() == g; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("the generation did not move when the next hop's MAC became %s", mac)
					}
				}
				if err := fw.Forward(30010, netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv4, 4000), relaySrc, phone, true); err != nil {
					t.Fatal(err)
				}
			}
			neigh("02:00:00:00:00:99") // nobody's: the phone's stack ignores the frames
			from.WriteToUDPAddrPort([]byte("rtp"), netip.AddrPortFrom(sbcIP, 30010))
			if got := drain(rx); got != 0 {
				t.Errorf("with the next hop's MAC changed the phone still got %d datagrams", got)
			}
			neigh(lab.CustomerLink.Leaf.MAC.String())
			from.WriteToUDPAddrPort([]byte("rtp"), netip.AddrPortFrom(sbcIP, 30010))
			if got := drain(rx); got != 1 {
				t.Errorf("with the phone's MAC back the phone got %d datagrams; want 1", got)
			}

			// Back to userspace: the socket gets them again.
			if err := fw.Unforward(30010); err != nil {
				t.Fatal(err)
			}
			from.WriteToUDPAddrPort([]byte("rtp"), netip.AddrPortFrom(sbcIP, 30010))
			if got := drain(sbcSock); got != 1 {
				t.Errorf("after Unforward the userspace socket got %d datagrams; want 1", got)
			}
		})
	}
}

// TestFirewallForwards6: the same over IPv6, whose next hop comes from the
// IPv6 neighbour table; the customer's stack checks each UDP checksum.
func TestFirewallForwards6(t *testing.T) {
	for _, mode := range []string{media.FastPathTC, media.FastPathXDP} {
		t.Run(mode, func(t *testing.T) {
			lab := netlab.New(t)
			sbcIP := lab.CarrierLink.SBC.IPv6
			var fw *Firewall
			err := lab.SBC.Do(func() error {
				var err error
				fw, _, err = Start(Config{Mode: mode, BindIP: sbcIP, PortMin: 30000, PortMax: 30099,
					Interfaces: []string{lab.CarrierLink.SBC.Name, lab.CustomerLink.SBC.Name}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
				return err
			})
			if err != nil || fw == nil {
				t.Fatalf("start the fast path in %s mode: %v", mode, err)
			}
			t.Cleanup(func() { fw.Close() })
			phone := netip.AddrPortFrom(lab.CustomerLink.Leaf.IPv6, 5004)
			relaySrc := netip.AddrPortFrom(lab.CustomerLink.SBC.IPv6, 30012)
			caller := netip.AddrPortFrom(lab.CarrierLink.Leaf.IPv6, 4000)
			rx := listen(t, lab.Customer, phone)
			sbcSock := listen(t, lab.SBC, netip.AddrPortFrom(sbcIP, 30010))
			if err := fw.Open(30010); err != nil {
				t.Fatal(err)
			}
			out := listen(t, lab.SBC, relaySrc)
			deadline := time.Now().Add(3 * time.Second)
			for {
				out.WriteToUDPAddrPort([]byte("hello"), phone)
				err := fw.Forward(30010, caller, relaySrc, phone, true)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNoNeighbour) || time.Now().After(deadline) {
					t.Fatalf("forward: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			drain(rx)
			from, err := lab.Carrier.ListenUDP(caller)
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			for i := range 10 {
				if _, err := from.WriteToUDPAddrPort([]byte{'r', 't', 'p', byte(i)}, netip.AddrPortFrom(sbcIP, 30010)); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 64)
			for i := range 10 {
				rx.SetReadDeadline(time.Now().Add(time.Second))
				n, src, err := rx.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d of 10 did not reach the customer: %v (counters %+v)", i, err, counters(t, fw))
				}
				if src != relaySrc || n != 4 || buf[3] != byte(i) {
					t.Errorf("got %q from %v; want datagram %d from %v", buf[:n], src, i, relaySrc)
				}
			}
			if got := drain(sbcSock); got != 0 {
				t.Errorf("the userspace socket got %d datagrams the kernel should have forwarded", got)
			}
			if st, _ := fw.PortStats(30010); st.Forwarded != 10 {
				t.Errorf("port stats %+v; want 10 forwarded", st)
			}
		})
	}
}

func counters(t *testing.T, fw *Firewall) bpf.Counters {
	c, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
