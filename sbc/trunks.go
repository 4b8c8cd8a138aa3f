package sbc

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// trunkTable finds the trunk a request came from by its source address.
type trunkTable struct {
	trunks []*Trunk
	byName map[string]*Trunk
}

func newTrunkTable(trunks []Trunk) *trunkTable {
	t := &trunkTable{byName: make(map[string]*Trunk, len(trunks))}
	for i := range trunks {
		tr := &trunks[i]
		t.trunks = append(t.trunks, tr)
		t.byName[tr.Name] = tr
	}
	return t
}

// match returns the trunk whose sources contain ip, preferring the most
// specific prefix when several trunks overlap; nil when none does.
func (t *trunkTable) match(ip netip.Addr) *Trunk {
	ip = ip.Unmap()
	var best *Trunk
	bestBits := -1
	for _, tr := range t.trunks {
		for _, p := range tr.prefixes {
			if p.Contains(ip) && p.Bits() > bestBits {
				best, bestBits = tr, p.Bits()
			}
		}
	}
	return best
}

func (t *trunkTable) get(name string) *Trunk { return t.byName[name] }

// contains tells whether ip is among the trunk's sources.
func (t *Trunk) contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// uriHost is h as the host of a SIP URI or Via (RFC 3261 §25.1): an IPv6
// address in brackets. sipgo's URIs hold their host that way.
func uriHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + h + "]"
	}
	return h
}

// splitHostPort splits "host:port" and insists on a numeric port.
func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("bad host:port %q", hp)
	}
	return host, port, nil
}

// sourceIP extracts the IP of a transport source address "ip:port".
func sourceIP(src string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
