// Package sdp parses the SDP bodies peers send and rewrites them so that
// media is anchored on the SBC and no address of one side reaches the other
// (topology hiding). Pure functions: no sockets, no SIP.
//
// Parsing and marshalling use github.com/pion/sdp/v3; lines.go works around
// the places where it is too lax or too strict for SIP.
package sdp

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	pion "github.com/pion/sdp/v3"
)

// Direction attribute values (RFC 3264 §5.1, §6.1).
const (
	SendRecv = "sendrecv"
	SendOnly = "sendonly"
	RecvOnly = "recvonly"
	Inactive = "inactive"
)

// Media describes one m= line of a parsed SDP, in order.
type Media struct {
	Type      string         // "audio", "video", "image", ...
	Port      int            // 0 = rejected/disabled m= line (RFC 3264 §6, §8.2)
	Proto     string         // "RTP/AVP", "RTP/SAVP", "udptl", ...
	Formats   []string       // payload types as in the m= line
	RTP       netip.AddrPort // connection address (media-level c= overrides session-level c=) + Port; zero if rejected
	RTCP      netip.AddrPort // from a=rtcp (RFC 3605, port and optional address) else RTP port+1 on the same address; zero if rejected or Port is 65535
	RTCPMux   bool           // a=rtcp-mux present (RFC 5761); RTCP still holds the fallback in case the answer declines mux
	Direction string         // "sendrecv" (default when absent, session-level attribute inherited), "sendonly", "recvonly", "inactive"
	Hold      bool           // c= 0.0.0.0 (RFC 2543-style hold, or :: for IPv6) or Direction sendonly/inactive
	// Codecs are the formats with what a=rtpmap and a=fmtp say of them, in
	// m= line order; a static payload type without a=rtpmap has no Name.
	Codecs []Codec
	// Crypto are the a=crypto attributes (RFC 4568), in order.
	Crypto []Crypto
}

// Codec is one payload format of an m= line.
type Codec struct {
	PT   int    // payload type, 0-127
	Name string // a=rtpmap encoding: "PCMU/8000", "telephone-event/8000"; "" without a=rtpmap
	Fmtp string // a=fmtp parameters, "" when none
}

// Session is a parsed SDP. It is not modified after Parse, so Rewrite may be
// called on it concurrently (e.g. once per forked leg).
type Session struct {
	ID      uint64 // o= sess-id
	Version uint64 // o= sess-version; unchanged in a new offer means the SDP is unchanged (RFC 3264 §8)
	Media   []Media

	desc *pion.SessionDescription
}

// Parse parses an SDP body (RFC 4566) as received from a peer. Errors wrap
// ErrMalformed. An SDP with no m= line is accepted; the caller decides.
//
// Connection addresses must be unicast IP literals: an FQDN cannot be
// anchored without DNS, and multicast is not relayed.
func Parse(body []byte) (*Session, error) {
	text, mlines, err := prepare(body)
	if err != nil {
		return nil, err
	}
	desc := &pion.SessionDescription{}
	if err := desc.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(desc.MediaDescriptions) != len(mlines) {
		return nil, malformed(0, "found %d m= lines, pion parsed %d", len(mlines), len(desc.MediaDescriptions))
	}

	s := &Session{
		ID:      desc.Origin.SessionID,
		Version: desc.Origin.SessionVersion,
		Media:   make([]Media, len(mlines)),
		desc:    desc,
	}
	var sessionAddr netip.Addr
	if desc.ConnectionInformation != nil {
		if sessionAddr, err = connAddr(desc.ConnectionInformation); err != nil {
			return nil, malformed(0, "session c=: %v", err)
		}
	}
	sessionDir := direction(desc.Attributes, SendRecv)

	for i, md := range desc.MediaDescriptions {
		ml := mlines[i]
		md.MediaName.Media = ml.media
		md.MediaName.Protos = []string{ml.proto}
		m, err := parseMedia(md, sessionAddr, sessionDir)
		if err != nil {
			return nil, malformed(ml.line, "m= #%d: %v", i+1, err)
		}
		s.Media[i] = m
	}

	return s, nil
}

func parseMedia(md *pion.MediaDescription, sessionAddr netip.Addr, sessionDir string) (Media, error) {
	m := Media{
		Type:      md.MediaName.Media,
		Port:      md.MediaName.Port.Value,
		Proto:     md.MediaName.Protos[0],
		Formats:   slices.Clone(md.MediaName.Formats),
		Direction: direction(md.Attributes, sessionDir),
	}
	// RFC 4566 §5.7: a media-level c= overrides the session-level one.
	addr := sessionAddr
	if md.ConnectionInformation != nil {
		var err error
		if addr, err = connAddr(md.ConnectionInformation); err != nil {
			return Media{}, fmt.Errorf("c=: %w", err)
		}
	}
	rtcpPort, rtcpAddr, hasRTCP := 0, netip.Addr{}, false
	if isRTP(m.Proto) {
		for _, f := range m.Formats {
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				return Media{}, fmt.Errorf("format %q is not an RTP payload type 0-127", clip(f))
			}
			m.Codecs = append(m.Codecs, Codec{PT: pt})
		}
	}
	for _, a := range md.Attributes {
		switch strings.ToLower(a.Key) {
		case "rtpmap", "fmtp":
			pt, value, _ := strings.Cut(a.Value, " ")
			for i := range m.Codecs {
				c := &m.Codecs[i]
				if strconv.Itoa(c.PT) != pt {
					continue
				}
				switch rtpmap := strings.EqualFold(a.Key, "rtpmap"); {
				case rtpmap && c.Name == "":
					c.Name = strings.TrimSpace(value)
				case !rtpmap && c.Fmtp == "":
					c.Fmtp = strings.TrimSpace(value)
				}
			}
		case "crypto":
			c, err := ParseCrypto(a.Value)
			if err != nil {
				return Media{}, cryptoError(len(m.Crypto)+1, err)
			}
			m.Crypto = append(m.Crypto, c)
		case "rtcp-mux":
			m.RTCPMux = true
		case "rtcp":
			p, ra, err := parseRTCP(a.Value)
			if err != nil {
				return Media{}, err
			}
			if !hasRTCP {
				rtcpPort, rtcpAddr, hasRTCP = p, ra, true
			}
		}
	}
	m.Hold = m.Direction == SendOnly || m.Direction == Inactive

	if m.Port == 0 {
		return m, nil // rejected: no address needed (RFC 3264 §6)
	}
	if !addr.IsValid() {
		return Media{}, fmt.Errorf("no c= at media or session level (RFC 4566 §5.7)")
	}
	m.Hold = m.Hold || addr.IsUnspecified()
	m.RTP = netip.AddrPortFrom(addr, uint16(m.Port))
	switch {
	case hasRTCP:
		// RFC 3605 §2.1: without an address, RTCP goes to the RTP address.
		if !rtcpAddr.IsValid() {
			rtcpAddr = addr
		}
		m.RTCP = netip.AddrPortFrom(rtcpAddr, uint16(rtcpPort))
	case m.Port < 65535:
		m.RTCP = netip.AddrPortFrom(addr, uint16(m.Port+1)) // RFC 3550 §11
	}

	return m, nil
}

// isRTP says proto is an RTP profile (RTP/AVP, RTP/SAVP, RTP/AVPF,
// UDP/TLS/RTP/SAVPF...), whose formats are payload types (RFC 4566 §5.14).
func isRTP(proto string) bool {
	return strings.HasPrefix(proto, "RTP/") || strings.Contains(proto, "/RTP/")
}

// connAddr returns the address of a c= line, which must be a unicast IP
// literal of its address type.
func connAddr(c *pion.ConnectionInformation) (netip.Addr, error) {
	if c.Address == nil {
		return netip.Addr{}, fmt.Errorf("no address")
	}

	return parseAddr(c.AddressType, c.Address.Address)
}

func parseAddr(addrType, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%q is not an IP address (FQDN and multicast TTL are not supported)", clip(s))
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q: zone not allowed", clip(s))
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("%q: multicast not supported", clip(s))
	case addrType == "IP4" && !a.Is4(), addrType == "IP6" && !a.Is6():
		return netip.Addr{}, fmt.Errorf("%q is not an %s address", clip(s), addrType)
	}

	return a, nil
}

// parseRTCP parses the value of a=rtcp: "<port> [IN IP4|IP6 <address>]"
// (RFC 3605 §2.1). The address is invalid when absent.
func parseRTCP(value string) (int, netip.Addr, error) {
	f := fields(value)
	if len(f) != 1 && len(f) != 4 {
		return 0, netip.Addr{}, fmt.Errorf("a=rtcp:%q is not <port> [IN <addrtype> <address>] (RFC 3605)", clip(value))
	}
	port, ok := parsePort(f[0])
	if !ok {
		return 0, netip.Addr{}, fmt.Errorf("a=rtcp port %q is not a number in 0-65535", clip(f[0]))
	}
	if len(f) == 1 {
		return port, netip.Addr{}, nil
	}
	if f[1] != "IN" || (f[2] != "IP4" && f[2] != "IP6") {
		return 0, netip.Addr{}, fmt.Errorf("a=rtcp:%q: want IN IP4 or IN IP6", clip(value))
	}
	a, err := parseAddr(f[2], f[3])
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("a=rtcp: %w", err)
	}

	return port, a, nil
}

// direction returns the first direction attribute in attrs, else def: the
// session-level one applies to every m= line without its own (RFC 3264 §5.1).
func direction(attrs []pion.Attribute, def string) string {
	for _, a := range attrs {
		switch k := strings.ToLower(a.Key); k {
		case SendRecv, SendOnly, RecvOnly, Inactive:
			return k
		}
	}

	return def
}
