package sdp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRewrite: Parse never panics; whatever it accepts, Rewrite turns
// into SDP that Parse accepts again with the anchors and address in place,
// and rewriting that output again changes nothing.
func FuzzParseRewrite(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(fixtureDir, "*.sdp"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=video 5000/2 RTP/AVP 31\na=rtcp:5001"))

	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Parse(body)
		if err != nil {
			return
		}
		addr := sbc4
		if len(body)%2 == 1 {
			addr = sbc6
		}
		anchors := make([]Anchor, len(s.Media))
		for i := range anchors {
			anchors[i] = Anchor{RTP: 20000 + 2*i, RTCP: 20001 + 2*i}
		}
		out, err := s.Rewrite(addr, anchors)
		if err != nil {
			t.Fatalf("Rewrite of a parsed SDP: %v", err)
		}
		checkRewrite(t, s, out, addr, anchors)

		s2, err := Parse(out)
		if err != nil {
			t.Fatal(err) // checkRewrite has said it already
		}
		out2, err := s2.Rewrite(addr, anchors)
		if err != nil {
			t.Fatalf("second Rewrite: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Errorf("Rewrite is not stable:\n%q\nthen\n%q", out, out2)
		}
	})
}
