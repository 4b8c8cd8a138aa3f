package webhook

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// TestAllowed: the guard sees the resolved address, so a name pointing at
// loopback is refused like the address itself: no request reaches the
// receiver, and the refusal is final.
func TestAllowed(t *testing.T) {
	t.Parallel()
	noLoopback := func(a netip.Addr) bool { return !a.IsLoopback() }
	only127 := func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }
	tests := []struct {
		name    string
		host    string // replaces 127.0.0.1 in the receiver's URL
		allowed func(netip.Addr) bool
		deliver bool
	}{
		{"loopback address refused", "127.0.0.1", noLoopback, false},
		{"name resolving to loopback refused", "localhost", noLoopback, false},
		{"allowed address", "127.0.0.1", only127, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, nil)
			port := rc.Listener.Addr().(*net.TCPAddr).Port
			s := newTestSender(t, Options{Allowed: tc.allowed})
			s.Post(fmt.Sprintf("http://%s:%d/cb", tc.host, port), nil, "k", "tok")
			st := waitStats(t, s, "an end", func(st Stats) bool { return st.Pending == 0 })
			want := Stats{Posted: 1, Failed: 1}
			if tc.deliver {
				want = Stats{Posted: 1, Delivered: 1}
			}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			if n, want := len(rc.Hits()), st.Delivered; n != int(want) {
				t.Errorf("receiver saw %d requests, want %d", n, want)
			}
		})
	}
}
