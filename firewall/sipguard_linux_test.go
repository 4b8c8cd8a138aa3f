package firewall

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sbc/sbc/sbctest/netlab"
)

// TestSIPGuard: with the nftables guard in the SBC's namespace, a trunk
// sends to the SIP port without limit, another source gets its burst
// through and loses the rest; after Close both get everything through.
func TestSIPGuard(t *testing.T) {
	lab := netlab.New(t)
	sip := netip.AddrPortFrom(lab.CarrierLink.SBC.IPv4, 5060)
	rx := listen(t, lab.SBC, sip)
	var g *SIPGuard
	if err := lab.SBC.Do(func() error {
		var err error
		g, err = StartSIPGuard(Config{SIPPorts: []uint16{5060}, SIPRate: 50, SIPBurst: 100,
			Trusted: []netip.Prefix{netip.PrefixFrom(lab.CarrierLink.Leaf.IPv4, 32)}})
		return err
	}); err != nil {
		t.Fatalf("start the nftables SIP guard (root and nf_tables are required): %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			g.Close()
		}
	}()
	send := func(ns *netlab.Namespace, src netip.Addr, n int) int {
		t.Helper()
		c, err := ns.ListenUDP(netip.AddrPortFrom(src, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := make(chan int)
		go func() { got <- drain(rx) }() // as they come: the socket's buffer holds a few hundred
		for i := range n {
			if _, err := c.WriteToUDP([]byte("OPTIONS sip:x SIP/2.0\r\n\r\n"), net.UDPAddrFromAddrPort(sip)); err != nil {
				t.Fatal(err)
			}
			if i%50 == 49 {
				time.Sleep(time.Millisecond)
			}
		}
		return <-got
	}
	if got := send(lab.Carrier, lab.CarrierLink.Leaf.IPv4, 1000); got != 1000 {
		t.Errorf("the trunk got %d of 1000 through, want all", got)
	}
	got := send(lab.Customer, lab.CustomerLink.Leaf.IPv4, 1000)
	if got < 100 || got > 200 {
		t.Errorf("a source that is no trunk got %d of 1000 through in a burst, want its burst of 100 (and the rate's share)", got)
	}
	if d, err := g.Dropped(); err != nil || d < 800 || d+uint64(got) != 1000 {
		t.Errorf("Dropped = %d, %v; want the %d the source lost", d, err, 1000-got)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if got := send(lab.Customer, lab.CustomerLink.Leaf.IPv4, 1000); got != 1000 {
		t.Errorf("after Close the source got %d of 1000 through, want all", got)
	}
}

// TestSIPGuardIPv6AndBans: an IPv6 source is limited by its /64 (a second
// address of it shares the bucket); a ban drops what an IPv4 address or an
// IPv6 /64 sends to the SIP port, nothing else, until lifted or expired.
func TestSIPGuardIPv6AndBans(t *testing.T) {
	lab := netlab.New(t)
	sip6 := netip.AddrPortFrom(lab.CustomerLink.SBC.IPv6, 5060)
	sip4 := netip.AddrPortFrom(lab.CustomerLink.SBC.IPv4, 5060)
	other := netip.AddrPortFrom(sip6.Addr(), 5062) // no SIP port
	rx6, rx4, rxOther := listen(t, lab.SBC, sip6), listen(t, lab.SBC, sip4), listen(t, lab.SBC, other)
	leaf6, leaf4 := lab.CustomerLink.Leaf.IPv6, lab.CustomerLink.Leaf.IPv4
	other6 := leaf6.Next() // the same /64
	if out, err := lab.Customer.Command("ip", "-6", "addr", "add", other6.String()+"/64", "dev", lab.CustomerLink.Leaf.Name, "nodad").CombinedOutput(); err != nil {
		t.Fatalf("add a second IPv6 address: %v\n%s", err, out)
	}
	start := func(c Config) *SIPGuard {
		t.Helper()
		var g *SIPGuard
		if err := lab.SBC.Do(func() error {
			var err error
			g, err = StartSIPGuard(c)
			return err
		}); err != nil {
			t.Fatalf("start the nftables SIP guard: %v", err)
		}
		return g
	}
	send := func(src netip.Addr, dst netip.AddrPort, rx *net.UDPConn, n int) int {
		t.Helper()
		c, err := lab.Customer.ListenUDP(netip.AddrPortFrom(src, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := make(chan int)
		go func() { got <- drain(rx) }()
		for i := range n {
			c.WriteToUDP([]byte("OPTIONS sip:x SIP/2.0\r\n\r\n"), net.UDPAddrFromAddrPort(dst))
			if i%50 == 49 {
				time.Sleep(time.Millisecond)
			}
		}
		return <-got
	}

	limited := start(Config{SIPPorts: []uint16{5060}, SIPRate: 50, SIPBurst: 100})
	if got := send(leaf6, sip6, rx6, 100); got != 100 {
		t.Errorf("the first address of the /64 got %d of its burst of 100 through", got)
	}
	if got := send(other6, sip6, rx6, 100); got > 20 {
		t.Errorf("a second address of the same /64 got %d of 100 through; want the bucket shared (the rate's share only)", got)
	}
	if err := limited.Close(); err != nil {
		t.Fatal(err)
	}

	g := start(Config{SIPPorts: []uint16{5060}, Bans: true})
	defer g.Close()
	ban6 := netip.MustParsePrefix(leaf6.String() + "/64").Masked()
	ban4 := netip.PrefixFrom(leaf4, 32)
	for _, p := range []netip.Prefix{ban6, ban4} {
		if err := g.Ban(p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		what string
		src  netip.Addr
		dst  netip.AddrPort
		rx   *net.UDPConn
		want int
	}{
		{"banned IPv4 to SIP", leaf4, sip4, rx4, 0},
		{"another address of the banned /64 to SIP", other6, sip6, rx6, 0},
		{"the banned /64 to another port", other6, other, rxOther, 10},
	} {
		if got := send(c.src, c.dst, c.rx, 10); got != c.want {
			t.Errorf("%s: %d of 10 through, want %d", c.what, got, c.want)
		}
	}
	if d, err := g.Dropped(); err != nil || d != 20 {
		t.Errorf("Dropped = %d, %v; want the 20 banned", d, err)
	}
	for _, p := range []netip.Prefix{ban6, ban4, ban4} { // twice: no error
		if err := g.Unban(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := send(leaf4, sip4, rx4, 10); got != 10 {
		t.Errorf("after Unban the IPv4 source got %d of 10 through, want all", got)
	}
	if got := send(other6, sip6, rx6, 10); got != 10 {
		t.Errorf("after Unban the /64 got %d of 10 through, want all", got)
	}
	if err := g.Ban(netip.MustParsePrefix("2001:db8::/48"), time.Minute); err == nil {
		t.Error("a /48 ban was taken; want IPv4 addresses and IPv6 /64s only")
	}
	// A ban expires by itself in nftables.
	if err := g.Ban(ban4, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := send(leaf4, sip4, rx4, 10); got != 0 {
		t.Errorf("banned for a second: %d of 10 through, want 0", got)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := send(leaf4, sip4, rx4, 10); got != 10 {
		t.Errorf("after the ban's time the IPv4 source got %d of 10 through, want all", got)
	}
}

// TestSIPGuardConcurrentBans: bans and unbans from several goroutines,
// unbans of elements already gone among them, lose no ban.
func TestSIPGuardConcurrentBans(t *testing.T) {
	lab := netlab.New(t)
	var g *SIPGuard
	if err := lab.SBC.Do(func() error {
		var err error
		g, err = StartSIPGuard(Config{SIPPorts: []uint16{5060}, Bans: true})
		return err
	}); err != nil {
		t.Fatalf("start the nftables SIP guard: %v", err)
	}
	defer g.Close()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			errs <- g.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32), time.Minute)
		})
		wg.Go(func() {
			errs <- g.Unban(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 32)) // never banned
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	elems, err := g.conn.GetSetElements(g.banned[false])
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != n {
		t.Errorf("%d bans in the set, want %d", len(elems), n)
	}
}
