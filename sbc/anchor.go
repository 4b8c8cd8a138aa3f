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
// (RFC 3264 §6). An offer comes with the SBC's own offer of each audio line
// (offerLines); an answer is negotiated against the last one.
func (c *call) anchor(from media.Side, desc *sdp.Session, allowNew bool, pending []*lineOffer) ([]byte, error) {
	to := from.Other()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !allowNew && len(desc.Media) != c.offered {
		return nil, fmt.Errorf("answer has %d m= lines, offer had %d", len(desc.Media), c.offered)
	}
	if allowNew {
		if len(desc.Media) < c.offered {
			// RFC 3264 §8: m= lines are never removed, only rejected.
			return nil, fmt.Errorf("offer has %d m= lines, fewer than the %d before", len(desc.Media), c.offered)
		}
		c.pending, c.offerer = pending, from
		c.offered = len(desc.Media)
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
		if o := c.pending[i]; o != nil && o.reject {
			continue // declined: port 0 to the other side
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
		var line *sdp.Line
		if allowNew {
			if o := c.pending[i]; o != nil {
				line = &o.sent
			}
		} else if o := c.pending[i]; o != nil {
			var err error
			if line, err = c.negotiateAnswer(st, from, o, m); err != nil {
				return nil, fmt.Errorf("m= #%d: %w", i+1, err)
			}
		}
		p := peerOf(m)
		c.peers[i][from] = p
		st.SetRemote(from, p)
		rtp, rtcp := st.LocalPorts(to)
		anchors[i] = sdp.Anchor{RTP: rtp, RTCP: rtcp, Line: line}
	}
	return desc.Rewrite(c.s.relay.PublicIP(), anchors)
}

// policy is the media policy of a side's peer.
func (c *call) policy(side media.Side) *MediaPolicy {
	if side == media.SideA {
		return &c.from.MediaPolicy
	}
	return &c.to.MediaPolicy
}

// offerFrom is offerLines for an offer from side's peer in this call.
func (c *call) offerFrom(side media.Side, desc *sdp.Session) ([]*lineOffer, error) {
	return offerLines(desc, c.policy(side), c.policy(side.Other()))
}

// offerLines makes the SBC's offer of each audio line of an offer from a
// peer under policy from to a peer under policy to. It changes nothing, so
// that a refused offer leaves no state; the error wraps *notAcceptable.
func offerLines(desc *sdp.Session, from, to *MediaPolicy) ([]*lineOffer, error) {
	pending := make([]*lineOffer, len(desc.Media))
	for i, m := range desc.Media {
		if m.Port == 0 {
			continue
		}
		if m.Type != "audio" {
			// Relayed as it came, but never keys across (Rewrite drops
			// a=crypto), so never plain to a mandatory leg, nor SRTP.
			if secure(m.Proto) || from.SRTP == SRTPMandatory || to.SRTP == SRTPMandatory {
				pending[i] = &lineOffer{reject: true}
			}
			continue
		}
		o, err := offerLine(m, from, to)
		if err != nil {
			return nil, fmt.Errorf("m= #%d: %w", i+1, err)
		}
		pending[i] = o
	}
	return pending, nil
}

// negotiateAnswer applies the answer to one audio line: both legs' media
// to the relay, and the SBC's answer to the offerer; under c.mu.
func (c *call) negotiateAnswer(st *media.Stream, from media.Side, o *lineOffer, m sdp.Media) (*sdp.Line, error) {
	offerer, answerer, line, err := o.answerLine(m, c.policy(from))
	if err != nil {
		return nil, err
	}
	if err := st.SetMedia(from, answerer); err != nil {
		return nil, err
	}
	if err := st.SetMedia(c.offerer, offerer); err != nil {
		return nil, err
	}
	return line, nil
}

// mediaState is what a failed re-INVITE must put back.
type mediaState struct {
	peers   [][2]media.Peer
	offered int
	pending []*lineOffer
	offerer media.Side
}

// snapshot copies the signalled peers, to roll back a failed re-INVITE.
func (c *call) snapshot() mediaState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return mediaState{append([][2]media.Peer(nil), c.peers...), c.offered, c.pending, c.offerer}
}

// restore undoes anchor() after a refused offer (RFC 3264 §8: a failed
// re-INVITE leaves the session as it was). Streams the offer added stay
// allocated until the call ends (at most maxStreams).
func (c *call) restore(old mediaState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offered, c.pending, c.offerer = old.offered, old.pending, old.offerer
	for i, st := range c.streams {
		var want [2]media.Peer
		if i < len(old.peers) {
			want = old.peers[i]
		}
		for side := range want {
			if st != nil && want[side] != c.peers[i][side] {
				st.SetRemote(media.Side(side), want[side])
			}
		}
		c.peers[i] = want
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
