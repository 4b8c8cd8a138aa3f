package sbc

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestTrunkMatch(t *testing.T) {
	c, err := ParseConfig(base + `
[[trunk]]
name = "narrow"
address = "192.0.2.5:5060"
sources = ["192.0.2.5", "2001:db8::/32"]
`)
	if err != nil {
		t.Fatal(err)
	}
	tab := newTrunkTable(c.Trunks)
	tests := []struct{ ip, want string }{
		{"192.0.2.10", "a"},
		{"192.0.2.11", "b"},     // inside b's /28
		{"192.0.2.5", "narrow"}, // /32 beats b's /28
		{"::ffff:192.0.2.10", "a"},
		{"2001:db8::1", "narrow"},
		{"198.51.100.1", ""},
	}
	for _, tt := range tests {
		got := tab.match(netip.MustParseAddr(tt.ip))
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != tt.want {
			t.Errorf("match(%s) = %q; want %q", tt.ip, name, tt.want)
		}
	}
}

func TestSplitHeaderValues(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"<sip:a;lr>", []string{"<sip:a;lr>"}},
		{"<sip:a;lr>, <sip:b;lr>", []string{"<sip:a;lr>", "<sip:b;lr>"}},
		{`"x, y" <sip:a?h=1,2;lr>,<sip:b>`, []string{`"x, y" <sip:a?h=1,2;lr>`, "<sip:b>"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := splitHeaderValues(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitHeaderValues(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRouteHostPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<sip:192.0.2.1:5070;lr>", "192.0.2.1:5070"},
		{"<sip:proxy.example.com;lr;transport=tcp>", "proxy.example.com:5060"},
		{"<sip:[2001:db8::1]:5062;lr>", "[2001:db8::1]:5062"},
		{"garbage", ""},
		{"<>", ""},
	}
	for _, tt := range tests {
		if got := routeHostPort(tt.in); got != tt.want {
			t.Errorf("routeHostPort(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestURIHost: an IPv6 address is bracketed as a URI host (RFC 3261
// §25.1), so that sipgo's host:port of it parses.
func TestURIHost(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":        "192.0.2.1",
		"2001:db8::1":      "[2001:db8::1]",
		"::ffff:192.0.2.1": "[::ffff:192.0.2.1]",
		"sbc.example.net":  "sbc.example.net",
		"[2001:db8::1]":    "[2001:db8::1]",
	} {
		if got := uriHost(in); got != want {
			t.Errorf("uriHost(%q) = %q, want %q", in, got, want)
		}
	}
}
