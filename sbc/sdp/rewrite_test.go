package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustParse(t *testing.T, body string) *Session {
	t.Helper()
	s, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	return s
}

func TestRewriteErrors(t *testing.T) {
	s := mustParse(t, "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"+
		"m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n")
	for _, tc := range []struct {
		name    string
		addr    netip.Addr
		anchors []Anchor
		msg     string
	}{
		{"too few anchors", sbc4, ports(30000), "1 anchors for 2 m= lines"},
		{"too many anchors", sbc4, ports(30000, 30002, 30004), "3 anchors for 2 m= lines"},
		{"no anchors", sbc4, nil, "0 anchors for 2 m= lines"},
		{"negative port", sbc4, []Anchor{{RTP: -2}, {}}, "out of range"},
		{"port too big", sbc4, []Anchor{{RTP: 30000, RTCP: 65536}, {}}, "out of range"},
		{"65535 without RTCP", sbc4, []Anchor{{RTP: 65535}, {}}, "explicit RTCP"},
		{"zero address", netip.Addr{}, ports(30000, 30002), "not a unicast address"},
		{"unspecified address", netip.IPv4Unspecified(), ports(30000, 30002), "not a unicast address"},
		{"multicast address", netip.MustParseAddr("239.1.1.1"), ports(30000, 30002), "not a unicast address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Rewrite(tc.addr, tc.anchors)
			if err == nil {
				t.Fatalf("Rewrite succeeded:\n%s", out)
			}
			if !errors.Is(err, ErrBadRewrite) {
				t.Errorf("error %v does not wrap ErrBadRewrite", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// Rewrite returns exactly these lines for the inputs below; the fixtures'
// golden files cover the common cases.
func TestRewriteLines(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name    string
		body    string
		addr    netip.Addr
		anchors []Anchor
		want    []string // lines that must be present
		absent  []string // substrings that must not be
	}{
		{"port count dropped", head + "m=video 5000/2 RTP/AVP 31\r\n", sbc4, ports(40000),
			[]string{"m=video 40000 RTP/AVP 31"}, []string{"/2"}},
		{"rejected line loses a=rtcp", head + "m=audio 0 RTP/AVP 0\r\na=rtcp:5001 IN IP4 192.0.2.9\r\na=rtpmap:0 PCMU/8000\r\n", sbc4, ports(40000),
			[]string{"m=audio 0 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"}, []string{"a=rtcp", "192.0.2.9"}},
		{"anchor 0 rejects and drops a=rtcp", head + "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001\r\n", sbc4, ports(0),
			[]string{"m=audio 0 RTP/AVP 0"}, []string{"a=rtcp"}},
		{"session-level a=rtcp dropped (RFC 3605 is media-level)", head + "a=rtcp:5001 IN IP4 192.0.2.9\r\nm=audio 5000 RTP/AVP 0\r\n", sbc4, ports(40000),
			[]string{"m=audio 40000 RTP/AVP 0"}, []string{"a=rtcp", "192.0.2.9"}},
		{"a=rtcp not added for RTP+1", head + "m=audio 5000 RTP/AVP 0\r\n", sbc4, []Anchor{{RTP: 40000, RTCP: 40001}},
			nil, []string{"a=rtcp"}},
		{"a=rtcp added when RTCP is elsewhere", head + "m=audio 5000 RTP/AVP 0\r\n", sbc6, []Anchor{{RTP: 40000, RTCP: 41000}},
			[]string{"a=rtcp:41000 IN IP6 2001:db8:ffff::1"}, nil},
		{"IPv6 hold :: kept", "v=0\r\no=- 1 1 IN IP6 2001:db8::9\r\ns=-\r\nc=IN IP6 ::\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", sbc6, ports(40000),
			[]string{"c=IN IP6 ::", "o=- 1 1 IN IP6 2001:db8:ffff::1", "m=audio 40000 RTP/AVP 0"}, []string{"2001:db8::9"}},
		{"IPv4 hold kept for an IPv6 side", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", sbc6, ports(40000),
			[]string{"c=IN IP4 0.0.0.0", "o=- 1 1 IN IP6 2001:db8:ffff::1"}, []string{"192.0.2.1"}},
		{"IPv4-mapped address written as IPv4", head + "m=audio 5000 RTP/AVP 0\r\n", netip.MustParseAddr("::ffff:203.0.113.1"), ports(40000),
			[]string{"c=IN IP4 203.0.113.1", "o=- 1 1 IN IP4 203.0.113.1"}, []string{"::ffff"}},
		{"capitalised ICE attributes stripped", head + "m=audio 5000 RTP/AVP 0\r\na=Candidate:1 1 UDP 1 192.0.2.7 5000 typ host\r\na=ICE-UFRAG:x\r\na=ice-mismatch\r\n", sbc4, ports(40000),
			nil, []string{"andidate", "192.0.2.7", "UFRAG", "ice-"}},
		{"o= username and session kept", "v=0\r\no=Bob-PBX 123456789 987654321 IN IP4 192.0.2.1\r\ns=Bob's PBX\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n", sbc4, nil,
			[]string{"o=- 123456789 987654321 IN IP4 203.0.113.1", "s=Bob's PBX"}, []string{"Bob-PBX"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.body)
			out, err := s.Rewrite(tc.addr, tc.anchors)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			lines := strings.Split(string(out), "\r\n")
			for _, w := range tc.want {
				if !contains(lines, w) {
					t.Errorf("no line %q in\n%s", w, out)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(string(out), a) {
					t.Errorf("%q present in\n%s", a, out)
				}
			}
			checkRewrite(t, s, out, tc.addr.Unmap(), tc.anchors)
		})
	}
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}

	return false
}

// A Session is read-only after Parse: rewriting it for several legs at once,
// as forking does, gives each the same answer as rewriting it alone.
func TestRewriteConcurrent(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(fixtureDir, "ice.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	want4, err := s.Rewrite(sbc4, ports(30000))
	if err != nil {
		t.Fatal(err)
	}
	want6, err := s.Rewrite(sbc6, ports(30100))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			addr, anchors, want := sbc4, ports(30000), want4
			if i%2 == 1 {
				addr, anchors, want = sbc6, ports(30100), want6
			}
			got, err := s.Rewrite(addr, anchors)
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("concurrent rewrite differs:\n%s\nwant\n%s", got, want)
			}
		})
	}
	wg.Wait()
	again, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.desc.MediaDescriptions[0].Attributes) != len(s.desc.MediaDescriptions[0].Attributes) {
		t.Errorf("Rewrite changed the parsed session's attributes")
	}
}
