package freeport

import (
	"net/netip"
	"testing"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestUDPOutside(t *testing.T) {
	for _, r := range []struct{ lo, hi int }{
		{1030, 1039},  // the ephemeral port UDP picks is outside
		{2000, 65535}, // it is inside: one just below the range
	} {
		p, err := UDPOutside(loopback, r.lo, r.hi)
		if err != nil {
			t.Fatalf("UDPOutside(%d, %d): %v", r.lo, r.hi, err)
		}
		if p >= r.lo && p <= r.hi || !free(loopback, p, p) {
			t.Errorf("UDPOutside(%d, %d) = %d; want a free port outside", r.lo, r.hi, p)
		}
	}
}

func TestMedia(t *testing.T) {
	p, err := Media(loopback, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p%2 != 0 || !free(loopback, p, p+3) {
		t.Errorf("Media = %d; want an even port with it and the 3 above it free", p)
	}
}
