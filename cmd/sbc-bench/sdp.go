//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/pion/sdp/v3"
)

// sdpFor is the SDP the harness's UAC offers and its UAS answers: one
// G.711 A-law audio stream at addr (RFC 4566, RFC 3264); with crypto (the
// value of an a=crypto line), RTP/SAVP keyed with it (RFC 4568).
func sdpFor(addr netip.AddrPort, sessID uint64, crypto string) []byte {
	ip := addr.Addr().String()
	proto, extra := "RTP/AVP", ""
	if crypto != "" {
		proto, extra = "RTP/SAVP", "a=crypto:"+crypto+"\r\n"
	}
	return fmt.Appendf(nil, "v=0\r\n"+
		"o=bench %d 1 IN IP4 %s\r\n"+
		"s=sbc-bench\r\n"+
		"c=IN IP4 %s\r\n"+
		"t=0 0\r\n"+
		"m=audio %d %s 8\r\n"+
		"a=rtpmap:8 PCMA/8000\r\n"+
		"a=ptime:20\r\n"+
		"a=sendrecv\r\n%s", sessID, ip, ip, addr.Port(), proto, extra)
}

// mediaAddr returns where the first audio stream of an SDP body wants its
// RTP: the m= port at the media-level c= address, or the session's.
func mediaAddr(body []byte) (netip.AddrPort, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse sdp: %w", err)
	}
	for _, m := range s.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		c := s.ConnectionInformation
		if m.ConnectionInformation != nil {
			c = m.ConnectionInformation
		}
		if c == nil || c.Address == nil {
			return netip.AddrPort{}, fmt.Errorf("sdp: audio stream without a c= address")
		}
		ip, err := netip.ParseAddr(c.Address.Address)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("sdp: c= address %q: %w", c.Address.Address, err)
		}
		port := m.MediaName.Port.Value
		if port <= 0 || port > 65535 {
			return netip.AddrPort{}, fmt.Errorf("sdp: audio port %s rejected or invalid", strconv.Itoa(port))
		}
		return netip.AddrPortFrom(ip, uint16(port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("sdp: no audio stream")
}
