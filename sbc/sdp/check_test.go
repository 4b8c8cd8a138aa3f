package sdp

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	pion "github.com/pion/sdp/v3"
)

// checkRewrite asserts what must hold for every rewrite of a parsed SDP, the
// fixtures' and the fuzzer's alike: out re-parses, keeps the shape of the
// input, carries the anchors and no address but addr (or an unspecified one
// for a hold), and has no ICE attribute left.
func checkRewrite(t testing.TB, in *Session, out []byte, addr netip.Addr, anchors []Anchor) {
	t.Helper()
	if !bytes.HasSuffix(out, []byte("\r\n")) || bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
		t.Errorf("output lines do not all end in CRLF:\n%q", out)
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatalf("output does not parse again: %v\n%s", err, out)
	}

	o := got.desc.Origin
	wantType := "IP4"
	if addr.Is6() {
		wantType = "IP6"
	}
	if o.Username != "-" || o.SessionID != in.ID || o.SessionVersion != in.Version ||
		o.AddressType != wantType || o.UnicastAddress != addr.String() {
		t.Errorf("o= = %+v, want - %d %d IN %s %s", o, in.ID, in.Version, wantType, addr)
	}

	if len(got.Media) != len(in.Media) {
		t.Fatalf("output has %d m= lines, input %d", len(got.Media), len(in.Media))
	}
	for i, m := range in.Media {
		g := got.Media[i]
		if g.Type != m.Type || g.Proto != m.Proto || !slices.Equal(g.Formats, m.Formats) ||
			g.Direction != m.Direction || g.RTCPMux != m.RTCPMux {
			t.Errorf("m= #%d changed shape: got %+v, input %+v", i+1, g, m)
		}
		wantPort := anchors[i].RTP
		if m.Port == 0 {
			wantPort = 0 // RFC 3264 §6: a rejected stream stays rejected
		}
		if g.Port != wantPort {
			t.Errorf("m= #%d port = %d, want %d", i+1, g.Port, wantPort)
		}
		if wantPort == 0 {
			continue
		}
		wantAddr := addr
		if m.RTP.Addr().IsUnspecified() {
			wantAddr = m.RTP.Addr() // a c=0.0.0.0 hold stays a hold
		}
		if g.RTP != netip.AddrPortFrom(wantAddr, uint16(wantPort)) {
			t.Errorf("m= #%d RTP = %v, want %v:%d", i+1, g.RTP, wantAddr, wantPort)
		}
		wantRTCP := anchors[i].RTCP
		if wantRTCP == 0 {
			wantRTCP = wantPort + 1
		}
		if g.RTCP.Port() != uint16(wantRTCP) || (g.RTCP.Addr() != addr && g.RTCP.Addr() != wantAddr) {
			t.Errorf("m= #%d RTCP = %v, want port %d on %v", i+1, g.RTCP, wantRTCP, addr)
		}
		if m.Hold && !g.Hold {
			t.Errorf("m= #%d: hold lost", i+1)
		}
	}

	// Every a= line but ICE, rtcp and those identifying the peer (ssrc,
	// tool) is kept, in order, at its level; at
	// session level a=crypto goes too (RFC 4568 defines it per m= line).
	if w, g := plainAttrs(in.desc.Attributes, "crypto"), plainAttrs(got.desc.Attributes); !slices.Equal(w, g) {
		t.Errorf("session attributes = %q, want %q", g, w)
	}
	for i := range in.desc.MediaDescriptions {
		w, g := plainAttrs(in.desc.MediaDescriptions[i].Attributes, "crypto"), plainAttrs(got.desc.MediaDescriptions[i].Attributes)
		if !slices.Equal(w, g) {
			t.Errorf("m= #%d attributes = %q, want %q", i+1, g, w)
		}
	}
	for line := range strings.SplitSeq(string(out), "\r\n") {
		if k, ok := strings.CutPrefix(line, "a="); ok {
			k, _, _ = strings.Cut(k, ":")
			if isICE(strings.ToLower(k)) {
				t.Errorf("ICE attribute left in output: %q", line)
			}
		}
	}

	// Every address Rewrite writes is addr or unspecified. Free text (s=,
	// i=, unknown attributes) is the peer's and may look like anything; the
	// fixture test checks it holds none of the input's addresses.
	for line := range strings.SplitSeq(string(out), "\r\n") {
		if !strings.HasPrefix(line, "o=") && !strings.HasPrefix(line, "c=") && !strings.HasPrefix(strings.ToLower(line), "a=rtcp:") {
			continue
		}
		for _, a := range addrsIn([]byte(line)) {
			if a != addr && !a.IsUnspecified() {
				t.Errorf("output carries address %v in %q", a, line)
			}
		}
	}
}

// plainAttrs lists attributes as "key:value", leaving out the ones Rewrite
// removes or changes.
func plainAttrs(attrs []pion.Attribute, drop ...string) []string {
	var out []string
	for _, a := range attrs {
		k := strings.ToLower(a.Key)
		if isICE(k) || identifying(k) || k == "rtcp" || slices.Contains(drop, k) {
			continue
		}
		out = append(out, a.Key+":"+a.Value)
	}

	return out
}

// addrsIn finds every IP address literal in text: runs of hex digits, dots
// and colons that parse as an address. The rest of SDP (payload types,
// fingerprints, keys, times) does not.
func addrsIn(text []byte) []netip.Addr {
	var out []netip.Addr
	isAddrByte := func(r rune) bool {
		return r == '.' || r == ':' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F')
	}
	for _, tok := range strings.FieldsFunc(string(text), func(r rune) bool { return !isAddrByte(r) }) {
		// "a=rtcp:9" or "c=IN" glue a key to a value with ':'; try the pieces too.
		for _, cand := range append([]string{tok}, strings.Split(tok, ":")...) {
			if a, err := netip.ParseAddr(strings.Trim(cand, ".:")); err == nil && (strings.Contains(cand, ".") || strings.Count(cand, ":") >= 2) {
				out = append(out, a)
			}
		}
	}

	return out
}

func ports(rtp ...int) []Anchor {
	out := make([]Anchor, len(rtp))
	for i, p := range rtp {
		out[i] = Anchor{RTP: p, RTCP: p + 1}
	}

	return out
}
