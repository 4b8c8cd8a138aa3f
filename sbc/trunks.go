package sbc

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Trunk is one [[trunk]] entry: a peer the SBC exchanges calls with.
type Trunk struct {
	Name      string   `toml:"name"`
	Address   string   `toml:"address"`   // host:port calls are sent to
	Transport string   `toml:"transport"` // udp, tcp, tls
	Sources   []string `toml:"sources"`   // IPs or CIDRs it may send from
	// TLSCA is a PEM file of the CAs the trunk's certificate must chain
	// to when the SBC connects to it over TLS; empty: the system's roots.
	// TLSName is the name the certificate must carry (DNS or IP SAN);
	// empty: the host of Address.
	TLSCA   string `toml:"tls_ca"`
	TLSName string `toml:"tls_name"`
	// TLSClientCA makes the trunk mutual TLS: its requests must come over
	// TLS with a client certificate chaining to these CAs (PEM file) and
	// naming one of TLSClientNames (subject common name, DNS or URI SAN).
	TLSClientCA    string   `toml:"tls_client_ca"`
	TLSClientNames []string `toml:"tls_client_names"`
	// TLSOnly refuses the trunk's requests over UDP and TCP.
	TLSOnly bool `toml:"tls_only"`
	// SMSLong is what a text longer than one SMS becomes towards the
	// trunk: "split" (default: one MESSAGE per part, in order, each after
	// the last one's answer), "whole" (one MESSAGE, the carrier splits) or
	// "refuse" (the message fails before it is sent).
	SMSLong string `toml:"sms_long"`
	// Account is the control-plane account that owns the trunk (a
	// customer's PBX): its calls are that account's, under its limits and
	// class of restriction. Empty for a carrier's trunk, whose calls
	// belong to the account owning the number called.
	Account string `toml:"account"`
	// Media is the trunk's media policy: srtp, codecs, srtp_suites.
	MediaPolicy

	prefixes []netip.Prefix
	device   *device // a registered user's device, not a configured trunk
}

// Route is one [[route]] entry of the dial plan.
type Route struct {
	From   string `toml:"from"`   // trunk name; empty = any trunk
	Prefix string `toml:"prefix"` // Request-URI user prefix; empty = everything
	To     string `toml:"to"`     // trunk name
}

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
