package sbc

import (
	"fmt"
	"net/netip"

	"sbc/media"
	"sbc/sbc/sdp"
)

// anchor applies an SDP that arrived from side `from` to the call's media
// and returns it rewritten for the other side, pointing at our ports. An
// offer (allowNew) may add streams; an answer must match the offer's lines
// (RFC 3264 §6).
func (c *call) anchor(from media.Side, desc *sdp.Session, allowNew bool) ([]byte, error) {
	to := media.SideB
	if from == media.SideB {
		to = media.SideA
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !allowNew && len(desc.Media) != len(c.streams) {
		return nil, fmt.Errorf("answer has %d m= lines, offer had %d", len(desc.Media), len(c.streams))
	}
	anchors := make([]sdp.Anchor, len(desc.Media))
	for i, m := range desc.Media {
		if i >= len(c.streams) {
			c.streams = append(c.streams, nil)
			c.peers = append(c.peers, [2]media.Peer{})
		}
		if m.Port == 0 {
			continue // rejected stays rejected
		}
		st := c.streams[i]
		if st == nil {
			if !allowNew {
				continue // the answer cannot revive a line the offer rejected
			}
			var err error
			if st, err = c.sess.AddStream(); err != nil {
				return nil, fmt.Errorf("add stream %d: %w", i, err)
			}
			c.streams[i] = st
		}
		p := peerOf(m)
		c.peers[i][from] = p
		st.SetRemote(from, p)
		rtp, rtcp := st.LocalPorts(to)
		anchors[i] = sdp.Anchor{RTP: rtp, RTCP: rtcp}
	}
	return desc.Rewrite(c.s.relay.PublicIP(), anchors)
}

// snapshotPeers copies the signalled peers, to roll back a failed re-INVITE.
func (c *call) snapshotPeers() [][2]media.Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][2]media.Peer(nil), c.peers...)
}

// restorePeers undoes anchor() after a refused offer (RFC 3264 §8: a failed
// re-INVITE leaves the session as it was).
func (c *call) restorePeers(old [][2]media.Peer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, st := range c.streams {
		if st == nil || i >= len(old) {
			continue
		}
		for side := range old[i] {
			if old[i][side] != c.peers[i][side] {
				st.SetRemote(media.Side(side), old[i][side])
			}
		}
		c.peers[i] = old[i]
	}
}

// peerOf turns an m= line into where the peer wants media. A hold with the
// unspecified address (c=0.0.0.0) means "send nothing": no destination.
func peerOf(m sdp.Media) media.Peer {
	p := media.Peer{RTP: m.RTP, RTCP: m.RTCP, Mux: m.RTCPMux}
	if !m.RTP.Addr().IsValid() || m.RTP.Addr().IsUnspecified() {
		p.RTP, p.RTCP = netip.AddrPort{}, netip.AddrPort{}
	}
	return p
}
