package sdp

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	pion "github.com/pion/sdp/v3"
)

// Anchor is where the SBC receives one media stream on the side the
// rewritten SDP is sent to.
type Anchor struct {
	RTP  int // RTP port; 0 keeps the m= line rejected
	RTCP int // RTCP port (RTP+1 normally); 0 means RTP+1
	// Line, when set, replaces the m= line's profile, formats and their
	// a=rtpmap, a=fmtp and a=crypto: the SBC terminates the media and
	// offers or answers its own. Nil keeps them (the line is relayed as it
	// came).
	Line *Line
}

// Line is what the SBC offers or answers on one m= line.
type Line struct {
	Proto  string // "RTP/AVP" or "RTP/SAVP"
	Codecs []Codec
	Crypto []Crypto
}

// Rewrite returns the SDP rewritten for the other side, with media anchored
// on addr: one Anchor per m= line, in order. Errors wrap ErrBadRewrite.
//
//   - o=: username "-" and addr; sess-id and sess-version kept, so the
//     version increases exactly when the peer's does (RFC 3264 §8).
//   - c= (session and media level): addr, except that an unspecified address
//     (c=0.0.0.0, RFC 2543 hold) stays as it is: a hold must not turn active.
//   - m=: port from the anchor; a rejected line (port 0) stays rejected
//     (RFC 3264 §6) and so does an anchor with RTP 0. A port count
//     ("49170/2") is dropped: an anchor is one port pair.
//   - a=rtcp (RFC 3605): rewritten to the anchor's RTCP port on addr; dropped
//     on rejected lines and at session level, where it is not defined. It is
//     added only when the anchor's RTCP port is not RTP+1, since without it
//     the peer sends RTCP to RTP+1 (RFC 3605 §1).
//   - a=crypto (RFC 4568) is removed: the peer's keys never reach the
//     other side; Line brings the SBC's own.
//   - ICE attributes (RFC 8839) are removed: they carry the peer's addresses
//     and the SBC terminates the media path, not ICE.
//   - Everything else is kept in order.
//
// The output has CRLF line endings and parses again with Parse.
func (s *Session) Rewrite(addr netip.Addr, anchors []Anchor) ([]byte, error) {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
		return nil, badRewrite("address %v is not a unicast address", addr)
	}
	if len(anchors) != len(s.desc.MediaDescriptions) {
		return nil, badRewrite("%d anchors for %d m= lines", len(anchors), len(s.desc.MediaDescriptions))
	}
	addrType := "IP4"
	if addr.Is6() {
		addrType = "IP6"
	}

	d := *s.desc // shallow copy: everything changed below is replaced, not mutated
	d.Origin = pion.Origin{
		Username:       "-",
		SessionID:      s.desc.Origin.SessionID,
		SessionVersion: s.desc.Origin.SessionVersion,
		NetworkType:    "IN",
		AddressType:    addrType,
		UnicastAddress: addr.String(),
	}
	d.ConnectionInformation = rewriteConn(s.desc.ConnectionInformation, addr, addrType)
	// i=, u=, e= and p= describe the peer, not the media: they stay home.
	d.SessionInformation, d.URI, d.EmailAddress, d.PhoneNumber = nil, nil, nil, nil
	d.Attributes = keepAttributes(s.desc.Attributes, "rtcp", "crypto")

	d.MediaDescriptions = make([]*pion.MediaDescription, len(anchors))
	for i, orig := range s.desc.MediaDescriptions {
		rtp, rtcp, err := anchorPorts(i, anchors[i])
		if err != nil {
			return nil, err
		}
		if orig.MediaName.Port.Value == 0 {
			rtp = 0
		}
		md := *orig
		md.MediaName.Port = pion.RangedPort{Value: rtp}
		md.ConnectionInformation = rewriteConn(orig.ConnectionInformation, addr, addrType)
		// A peer's keys never cross: a line the SBC terminates gets its
		// own (Line), one it relays as it came gets none.
		md.Attributes = keepAttributes(orig.Attributes, "crypto")
		if l := anchors[i].Line; l != nil && rtp != 0 {
			md.MediaName.Protos = []string{l.Proto}
			md.MediaName.Formats = make([]string, len(l.Codecs))
			for j, c := range l.Codecs {
				md.MediaName.Formats[j] = strconv.Itoa(c.PT)
			}
			md.Attributes = append(keepAttributes(md.Attributes, "rtpmap", "fmtp", "crypto"), l.attributes()...)
		}

		rtcpLine := strconv.Itoa(rtcp) + " IN " + addrType + " " + addr.String()
		hadRTCP := false
		for j := range md.Attributes {
			if strings.EqualFold(md.Attributes[j].Key, "rtcp") {
				md.Attributes[j].Value = rtcpLine
				hadRTCP = true
			}
		}
		switch {
		case rtp == 0:
			md.Attributes = keepAttributes(md.Attributes, "rtcp")
		case !hadRTCP && rtcp != rtp+1:
			md.Attributes = append(md.Attributes, pion.Attribute{Key: "rtcp", Value: rtcpLine})
		}
		d.MediaDescriptions[i] = &md
	}

	out, err := d.Marshal()
	if err != nil {
		return nil, badRewrite("marshal: %v", err)
	}

	return out, nil
}

// anchorPorts validates an anchor and fills in the default RTCP port.
func anchorPorts(i int, a Anchor) (rtp, rtcp int, err error) {
	if a.RTP < 0 || a.RTP > 65535 || a.RTCP < 0 || a.RTCP > 65535 {
		return 0, 0, badRewrite("anchor %d: ports %d/%d out of range", i, a.RTP, a.RTCP)
	}
	rtcp = a.RTCP
	if rtcp == 0 && a.RTP != 0 {
		if a.RTP == 65535 {
			return 0, 0, badRewrite("anchor %d: RTP port 65535 needs an explicit RTCP port", i)
		}
		rtcp = a.RTP + 1
	}

	return a.RTP, rtcp, nil
}

// rewriteConn returns a new c= for addr; an unspecified address (hold) is
// kept.
func rewriteConn(c *pion.ConnectionInformation, addr netip.Addr, addrType string) *pion.ConnectionInformation {
	if c == nil {
		return nil
	}
	if c.Address != nil {
		// Parse validated every c= line, so the error cannot happen.
		if a, err := netip.ParseAddr(c.Address.Address); err == nil && a.IsUnspecified() {
			return &pion.ConnectionInformation{NetworkType: "IN", AddressType: c.AddressType, Address: &pion.Address{Address: a.String()}}
		}
	}

	return &pion.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &pion.Address{Address: addr.String()}}
}

// attributes are l's a=rtpmap, a=fmtp and a=crypto lines.
func (l *Line) attributes() []pion.Attribute {
	var out []pion.Attribute
	for _, c := range l.Codecs {
		pt := strconv.Itoa(c.PT)
		if c.Name != "" {
			out = append(out, pion.Attribute{Key: "rtpmap", Value: pt + " " + c.Name})
		}
		if c.Fmtp != "" {
			out = append(out, pion.Attribute{Key: "fmtp", Value: pt + " " + c.Fmtp})
		}
	}
	for _, c := range l.Crypto {
		out = append(out, pion.Attribute{Key: "crypto", Value: c.Value()})
	}
	return out
}

// keepAttributes returns a copy of attrs without ICE attributes and without
// those named in drop. Keys compare case-insensitively so that no
// capitalisation lets a candidate through.
func keepAttributes(attrs []pion.Attribute, drop ...string) []pion.Attribute {
	out := make([]pion.Attribute, 0, len(attrs))
	for _, a := range attrs {
		k := strings.ToLower(a.Key)
		if isICE(k) || identifying(k) || slices.Contains(drop, k) {
			continue
		}
		out = append(out, a)
	}

	return out
}

// identifying reports whether a lower-case attribute name tells the other
// side about the peer rather than the media: a=ssrc (its cname is often
// user@host, RFC 5576), a=ssrc-group, a=tool (the peer's software). The
// SBC terminates the media and sends its own, so none of it is needed.
func identifying(key string) bool {
	return key == "ssrc" || key == "ssrc-group" || key == "tool"
}

// isICE reports whether a lower-case attribute name belongs to ICE (RFC 8839
// §5): candidate, remote-candidates, end-of-candidates and every ice-*
// (ice-ufrag, ice-pwd, ice-options, ice-lite, ice-mismatch, ice-pacing).
func isICE(key string) bool {
	switch key {
	case "candidate", "remote-candidates", "end-of-candidates":
		return true
	}

	return strings.HasPrefix(key, "ice-")
}
