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
		{"peer-identifying lines stripped", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\ni=alice's phone\r\nu=http://192.0.2.1/\r\ne=alice@192.0.2.1\r\np=+14155550100\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=tool:baresip 1.0.0\r\n" +
			"m=audio 5000 RTP/AVP 0\r\na=ssrc:1234 cname:sip:alice@192.0.2.1\r\na=ssrc-group:FID 1 2\r\na=rtpmap:0 PCMU/8000\r\n", sbc4, ports(40000),
			[]string{"a=rtpmap:0 PCMU/8000"}, []string{"alice", "192.0.2.1", "baresip", "ssrc", "+1415", "i=", "u=", "e="}},
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

// TestRewriteLine: with a Line the m= line carries the SBC's profile,
// formats and keys, and nothing of the peer's: no format, a=rtpmap, a=fmtp
// or a=crypto of its own. Other attributes stay.
func TestRewriteLine(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(fixtureDir, "srtp.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	if len(m.Codecs) != 3 || m.Codecs[0] != (Codec{18, "G729/8000", "annexb=no"}) || m.Codecs[1] != (Codec{0, "PCMU/8000", ""}) {
		t.Errorf("codecs %+v", m.Codecs)
	}
	if len(m.Crypto) != 3 || m.Crypto[0].Unsupported != "an MKI" || m.Crypto[1].Unsupported != "" || len(m.Crypto[2].Key) != 28 {
		for _, c := range m.Crypto {
			t.Errorf("crypto %v: unsupported %q, %d key bytes", c, c.Unsupported, len(c.Key))
		}
	}
	key := []byte("0123456789abcdef0123456789abcd")
	line := &Line{Proto: "RTP/SAVP", Codecs: []Codec{{8, "PCMA/8000", ""}, {96, "telephone-event/8000", "0-15"}},
		Crypto: []Crypto{{Tag: 2, Suite: "AES_CM_128_HMAC_SHA1_32", Key: key}}}
	out, err := s.Rewrite(sbc4, []Anchor{{RTP: 30000, Line: line}})
	if err != nil {
		t.Fatal(err)
	}
	want := "m=audio 30000 RTP/SAVP 8 96\r\na=ptime:20\r\na=sendrecv\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNk\r\n"
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("rewritten:\n%s\nwant it to end with:\n%s", out, want)
	}
	for _, peer := range []string{"G729", "annexb", "WVNfX19", "NzB4d1B", "a2tra2", "0-16"} {
		if strings.Contains(string(out), peer) {
			t.Errorf("the peer's %q reaches the other side:\n%s", peer, out)
		}
	}
	back, err := Parse(out)
	if err != nil || len(back.Media[0].Crypto) != 1 || string(back.Media[0].Crypto[0].Key) != string(key) {
		t.Errorf("the output does not parse back to our key: %v", err)
	}
}

func TestParseCrypto(t *testing.T) {
	tests := []struct {
		value       string
		err         string
		unsupported string
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31", "", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32", "", "an MKI"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTCP", "", "session parameters UNENCRYPTED_SRTCP"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19z;inline:WVNfX19z", "", "several keys"},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19z FEC_KEY=inline:WVNfSECRET", "", "session parameters FEC_KEY"},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/k", "", "key method uri"},
		{"AES_CM_128_HMAC_SHA1_80 inline:WVNf", "needs <tag> <suite> <key-params>", ""},
		{"x AES_CM_128_HMAC_SHA1_80 inline:WVNf", "tag", ""},
		{"1234567890 AES_CM_128_HMAC_SHA1_80 inline:WVNf", "tag", ""},
		{"1 AES-CM inline:WVNf", "suite", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:***", "not base64", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:", "not base64", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNf|forever", "lifetime", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNf|1:999", "MKI", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:WVNf|1|2|3", "parts", ""},
		{"1 AES_CM_128_HMAC_SHA1_80 WVNf", "key-params", ""},
	}
	for _, tc := range tests {
		c, err := ParseCrypto(tc.value)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrMalformed)):
			t.Errorf("ParseCrypto(%q) = %v, want an ErrMalformed saying %q", tc.value, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParseCrypto(%q): %v", tc.value, err)
		case tc.err == "" && c.Unsupported != tc.unsupported:
			t.Errorf("ParseCrypto(%q).Unsupported = %q, want %q", tc.value, c.Unsupported, tc.unsupported)
		}
		if err != nil && strings.Contains(err.Error(), "WVNf") {
			t.Errorf("error shows the key: %v", err)
		}
	}
}
