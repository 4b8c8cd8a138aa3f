package sdp

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/sdp")

const fixtureDir = "../../testdata/sdp"

var (
	sbc4 = netip.MustParseAddr("203.0.113.1")
	sbc6 = netip.MustParseAddr("2001:db8:ffff::1")
)

// wantMedia is Media with addresses as text, to keep the table readable.
type wantMedia struct {
	typ, proto, formats string
	port                int
	rtp, rtcp           string // "" for the zero AddrPort
	mux                 bool
	dir                 string
	hold                bool
}

var fixtures = []struct {
	name    string
	addr    netip.Addr
	anchors []Anchor
	want    []wantMedia
}{
	{"audio-basic", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0 8 101", 49170, "192.0.2.10:49170", "192.0.2.10:49171", false, SendRecv, false},
	}},
	{"rtcp-mux", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0 101", 50000, "192.0.2.20:50000", "192.0.2.20:50001", true, SendRecv, false},
	}},
	{"multi-rejected", sbc4, ports(30000, 30002, 30004), []wantMedia{
		{"audio", "RTP/AVP", "8 0", 40000, "198.51.100.5:40000", "198.51.100.5:40001", false, SendRecv, false},
		{"video", "RTP/AVP", "96", 0, "", "", false, SendRecv, false},
		{"audio", "RTP/AVP", "0", 40010, "198.51.100.5:40010", "198.51.100.5:40011", false, SendRecv, false},
	}},
	{"ipv6", sbc6, ports(30100), []wantMedia{
		{"audio", "RTP/AVP", "0", 30000, "[2001:db8:1::10]:30000", "[2001:db8:1::11]:30003", false, SendRecv, false},
	}},
	{"sendonly", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0 8", 20000, "192.0.2.30:20000", "192.0.2.30:20001", false, SendOnly, true},
	}},
	{"recvonly", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0 8", 20000, "192.0.2.30:20000", "192.0.2.30:20001", false, RecvOnly, false},
	}},
	{"inactive", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0 8", 20000, "192.0.2.30:20000", "192.0.2.30:20001", false, Inactive, true},
	}},
	{"session-direction", sbc4, ports(30000, 30002), []wantMedia{
		{"audio", "RTP/AVP", "0", 20002, "192.0.2.31:20002", "192.0.2.31:20003", false, SendOnly, true},
		{"audio", "RTP/AVP", "0", 20004, "192.0.2.31:20004", "192.0.2.31:20005", false, RecvOnly, false},
	}},
	{"hold-zero", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/AVP", "0", 3456, "0.0.0.0:3456", "0.0.0.0:3457", false, SendRecv, true},
	}},
	// The anchor's RTCP port is not RTP+1: a=rtcp carries it.
	{"rtcp-addr", sbc4, []Anchor{{RTP: 31000, RTCP: 31005}}, []wantMedia{
		{"audio", "RTP/AVP", "0", 49170, "192.0.2.50:49170", "198.51.100.50:53020", false, SendRecv, false},
	}},
	// Anchor RTCP 0 means RTP+1.
	{"rtcp-port", sbc4, []Anchor{{RTP: 32000}}, []wantMedia{
		{"audio", "RTP/AVP", "0 8", 16384, "192.0.2.120:16384", "192.0.2.120:16391", false, SendRecv, false},
	}},
	{"ice", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/SAVP", "0 101", 9000, "198.51.100.200:9000", "198.51.100.200:9001", false, SendRecv, false},
	}},
	// First anchor's RTCP is not RTP+1 and the input has no a=rtcp: one is added.
	{"session-c-only", sbc4, []Anchor{{RTP: 33000, RTCP: 33003}, {RTP: 33010, RTCP: 33011}}, []wantMedia{
		{"audio", "RTP/AVP", "0", 6000, "192.0.2.71:6000", "192.0.2.71:6001", false, SendRecv, false},
		{"video", "RTP/AVP", "96", 6002, "192.0.2.71:6002", "192.0.2.71:6003", false, SendRecv, false},
	}},
	{"media-c-only", sbc6, ports(30000, 30002), []wantMedia{
		{"audio", "RTP/AVP", "0", 7000, "192.0.2.81:7000", "192.0.2.81:7001", false, SendRecv, false},
		{"video", "RTP/AVP", "96", 7002, "198.51.100.82:7002", "198.51.100.82:7003", false, SendRecv, false},
	}},
	{"media-c-override", sbc4, ports(30000, 30002), []wantMedia{
		{"audio", "RTP/AVP", "0", 8000, "192.0.2.91:8000", "192.0.2.91:8001", false, SendRecv, false},
		{"audio", "RTP/AVP", "0", 8002, "0.0.0.0:8002", "0.0.0.0:8003", false, SendRecv, true},
	}},
	// pion alone rejects m=image and udptl.
	{"t38", sbc4, ports(30000, 30002), []wantMedia{
		{"image", "udptl", "t38", 4000, "192.0.2.100:4000", "192.0.2.100:4001", false, SendRecv, false},
		{"audio", "RTP/AVP", "0", 0, "", "", false, SendRecv, false},
	}},
	{"webrtc-mux", sbc4, ports(30000), []wantMedia{
		{"audio", "UDP/TLS/RTP/SAVPF", "111 0", 51000, "198.51.100.110:51000", "0.0.0.0:9", true, SendRecv, false},
	}},
	{"srtp", sbc4, ports(30000), []wantMedia{
		{"audio", "RTP/SAVP", "18 0 101", 49170, "192.0.2.50:49170", "192.0.2.50:49171", false, SendRecv, false},
	}},
	// An anchor of RTP 0 rejects the stream on the other side.
	{"audio-basic", sbc6, ports(0), []wantMedia{
		{"audio", "RTP/AVP", "0 8 101", 49170, "192.0.2.10:49170", "192.0.2.10:49171", false, SendRecv, false},
	}},
}

func TestFixtures(t *testing.T) {
	for _, tc := range fixtures {
		name := tc.name
		golden := name
		if tc.anchors[0].RTP == 0 {
			golden += "-anchor0"
		}
		t.Run(golden, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(fixtureDir, name+".sdp"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(s.Media) != len(tc.want) {
				t.Fatalf("%d m= lines, want %d", len(s.Media), len(tc.want))
			}
			for i, w := range tc.want {
				m := s.Media[i]
				got := wantMedia{m.Type, m.Proto, strings.Join(m.Formats, " "), m.Port,
					apString(m.RTP), apString(m.RTCP), m.RTCPMux, m.Direction, m.Hold}
				if got != w {
					t.Errorf("m= #%d:\n got %+v\nwant %+v", i+1, got, w)
				}
			}

			out, err := s.Rewrite(tc.addr, tc.anchors)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			checkRewrite(t, s, out, tc.addr, tc.anchors)
			for _, a := range addrsIn(in) {
				if !a.IsUnspecified() && bytes.Contains(out, []byte(a.String())) {
					t.Errorf("input address %v appears in the output", a)
				}
			}

			goldenPath := filepath.Join(fixtureDir, golden+".golden.sdp")
			if *update {
				if err := os.WriteFile(goldenPath, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s:\n got:\n%s\nwant:\n%s", goldenPath, out, want)
			}
		})
	}
}

// Every input fixture is in the table, so none is only a fuzz seed by mistake.
func TestFixturesCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tc := range fixtures {
		covered[tc.name] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sdp")
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		if !covered[name] {
			t.Errorf("fixture %s is not in the fixtures table", f)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
	const ok = head + "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	for _, tc := range []struct{ name, body, msg string }{
		{"empty", "", "empty body"},
		{"garbage", "hello world", "not a <type>=<value> line"},
		{"binary", "\x00\x01\x02", "NUL"},
		{"version only", "v=0\r\n", "no o= line"},
		{"no t=", head + "c=IN IP4 192.0.2.1\r\n", "no t= line"},
		{"no s=", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", "no s= line"},
		{"version 1", "v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", "want v=0"},
		{"empty version", "v=\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", "want v=0"},
		{"o= too short", "v=0\r\no=- 1\r\ns=-\r\nt=0 0\r\n", "o= needs"},
		{"empty t=", head + "t=\r\n", "t= needs"},
		{"t= overflow", head + "t=0 18446744073709551616\r\n", "64-bit"},
		{"o= before v=", "o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\ns=-\r\nt=0 0\r\n", "syntax error"},
		{"unknown type", ok + "x=1\r\n", "syntax error"},
		{"uppercase type", ok + "M=audio 1 RTP/AVP 0\r\n", "not a <type>=<value> line"},
		{"bare CR", ok + "m=audio 1 RTP/AVP 0\r\na=foo\rbar\r\n", "CR or NUL"},
		{"sess-id overflow", "v=0\r\no=- 99999999999999999999 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", "64-bit"},
		{"port not a number", ok + "m=audio abc RTP/AVP 0\r\n", `port "abc"`},
		{"port signed", ok + "m=audio +5 RTP/AVP 0\r\n", `port "+5"`},
		{"port too big", ok + "m=audio 70000 RTP/AVP 0\r\n", `port "70000"`},
		{"port count zero", ok + "m=audio 5000/0 RTP/AVP 0\r\n", "port count"},
		{"no formats", ok + "m=audio 5000 RTP/AVP\r\n", "at least one format"},
		{"bad media token", ok + "m=au\"dio 5000 RTP/AVP 0\r\n", "not a token"},
		{"missing c=", head + "t=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", "no c="},
		{"missing c= second m=", head + "t=0 0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5002 RTP/AVP 0\r\n", "m= #2: no c="},
		{"c= without address", head + "c=IN IP4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", "no address"},
		{"c= bad IPv4", head + "c=IN IP4 999.1.1.1\r\nt=0 0\r\n", "not an IP address"},
		{"c= FQDN", head + "c=IN IP4 pbx.example.com\r\nt=0 0\r\n", "not an IP address"},
		{"c= multicast TTL", head + "c=IN IP4 224.2.1.1/127\r\nt=0 0\r\n", "not an IP address"},
		{"c= multicast IPv6", head + "c=IN IP6 ff15::101\r\nt=0 0\r\n", "multicast"},
		{"c= IP4 with IPv6", head + "c=IN IP4 2001:db8::1\r\nt=0 0\r\n", "not an IP4 address"},
		{"c= IP6 with IPv4", head + "c=IN IP6 192.0.2.1\r\nt=0 0\r\n", "not an IP6 address"},
		{"c= zone", head + "c=IN IP6 fe80::1%eth0\r\nt=0 0\r\n", "zone"},
		{"c= net type", head + "c=ATM NSAP 47.0005\r\nt=0 0\r\n", "invalid value"},
		{"rtcp bad port", ok + "m=audio 5000 RTP/AVP 0\r\na=rtcp:x\r\n", "a=rtcp port"},
		{"rtcp bad address", ok + "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001 IN IP4 nowhere\r\n", "a=rtcp"},
		{"rtcp short", ok + "m=audio 5000 RTP/AVP 0\r\na=rtcp:5001 IN IP4\r\n", "RFC 3605"},
		{"session a= before t=", head + "a=sendrecv\r\nt=0 0\r\n", "syntax error"},
		{"bad bandwidth value", ok + "m=audio 5000 RTP/AVP 0\r\nb=AS:lots\r\n", "b=AS:lots"},
		{"too large", ok + strings.Repeat("a=x\r\n", maxBodySize/5+1), "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.body))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s.Media)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// Inputs that are not canonical but that a peer may well send.
func TestParseLenient(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"LF endings, no final newline",
			"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 5000 RTP/AVP 0\na=sendonly",
			"audio 192.0.2.1:5000 rtcp 192.0.2.1:5001 sendonly"},
		{"trailing blank line",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n\r\n",
			"audio 192.0.2.1:5000 rtcp 192.0.2.1:5001 sendrecv"},
		{"tabs and double spaces in m=",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio\t5000  RTP/AVP 0  8\r\n",
			"audio 192.0.2.1:5000 rtcp 192.0.2.1:5001 sendrecv"},
		{"unknown b= type ignored (RFC 4566 §5.8)",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nb=FOO:12\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\nb=BAR:1\r\n",
			"audio 192.0.2.1:5000 rtcp 192.0.2.1:5001 sendrecv"},
		{"port count",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5000/2 RTP/AVP 31\r\n",
			"video 192.0.2.1:5000 rtcp 192.0.2.1:5001 sendrecv"},
		{"rejected m= needs no c=",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
			"audio invalid AddrPort rtcp invalid AddrPort sendrecv"},
		{"port 65535 has no RTCP port+1",
			"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 65535 RTP/AVP 0\r\n",
			"audio 192.0.2.1:65535 rtcp invalid AddrPort sendrecv"},
		{"IPv4-mapped IPv6",
			"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::ffff:192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
			"audio [::ffff:192.0.2.1]:5000 rtcp [::ffff:192.0.2.1]:5001 sendrecv"},
		{"no m= line", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, m := range s.Media {
				got = append(got, m.Type+" "+m.RTP.String()+" rtcp "+m.RTCP.String()+" "+m.Direction)
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Errorf("got %q, want %q", g, tc.want)
			}
			anchors := make([]Anchor, len(s.Media))
			for i := range anchors {
				anchors[i] = Anchor{RTP: 40000 + 2*i, RTCP: 40001 + 2*i}
			}
			out, err := s.Rewrite(sbc4, anchors)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			checkRewrite(t, s, out, sbc4, anchors)
		})
	}
}

func apString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}

	return ap.String()
}
