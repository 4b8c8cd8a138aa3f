package bpf

import (
	"net/netip"
	"testing"
)

// TestFastPathMediaFamilies: UDP to the media range is filtered towards the
// media address of its family, towards every address when none is named
// (a wildcard bind), and not at all in a family the relay has no address
// in: an IPv6 media address alone leaves IPv4 alone, and the other way
// round.
func TestFastPathMediaFamilies(t *testing.T) {
	media6, other6 := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::11")
	peer6 := netip.MustParseAddr("2001:db8:1::7")
	for _, c := range []struct {
		name         string
		ip4, ip6     netip.Addr
		to4, to6     netip.Addr
		drop4, drop6 bool // a closed port's datagram dropped
	}{
		{"IPv4 address", mediaIP, netip.Addr{}, mediaIP, media6, true, false},
		{"IPv4 address, another destination", mediaIP, netip.Addr{}, customer, media6, false, false},
		{"IPv6 address", netip.Addr{}, media6, mediaIP, media6, false, true},
		{"IPv6 address, another destination", netip.Addr{}, media6, mediaIP, other6, false, false},
		{"both", mediaIP, media6, mediaIP, media6, true, true},
		{"none (wildcard)", netip.Addr{}, netip.Addr{}, customer, other6, true, true},
	} {
		for _, p := range programs {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: c.ip4, IP6: c.ip6})
			for _, pk := range []struct {
				pk   packet
				drop bool
			}{
				{packet{src: carrier, dst: c.to4, sport: 4000, dport: 20020}, c.drop4},
				{packet{src: peer6, dst: c.to6, sport: 4000, dport: 20020}, c.drop6},
			} {
				want := p.pass
				if pk.drop {
					want = p.drop
				}
				if got, _ := run(t, p.prog(f), pk.pk.bytes()); got != want {
					t.Errorf("%s, %s: to %v's closed port: verdict %d, want %d", c.name, p.name, pk.pk.dst, got, want)
				}
			}
			f.Close()
		}
	}
}
