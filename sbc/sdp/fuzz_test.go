package sdp

import (
	"bytes"
	"errors"
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

// FuzzParseCrypto: ParseCrypto never panics, never quotes the key in an
// error, and a usable line formats back to the same tag, suite and key.
func FuzzParseCrypto(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
		"2 AEAD_AES_128_GCM inline:a2tra2tra2tra2tra2tra2tra2tra2traw",
		"3 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj KDR=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := ParseCrypto(value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if c.Unsupported != "" || c.Key == nil {
			return
		}
		back, err := ParseCrypto(c.Value())
		if err != nil || back.Tag != c.Tag || back.Suite != c.Suite || !bytes.Equal(back.Key, c.Key) {
			t.Fatalf("%q formats as %q, which parses as %+v, %v", value, c.Value(), back, err)
		}
	})
}
