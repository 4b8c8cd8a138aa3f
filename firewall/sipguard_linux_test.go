package firewall

import (
	"net"
	"net/netip"
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
