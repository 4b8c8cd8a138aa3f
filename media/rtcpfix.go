package media

import "encoding/binary"

// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611).
const (
	rtcpSR    = 200
	rtcpRR    = 201
	rtcpSDES  = 202
	rtcpBYE   = 203
	rtcpAPP   = 204
	rtcpRTPFB = 205
	rtcpPSFB  = 206
)

// ssrcMap is how a peer's RTCP must change for the other leg when the relay
// rewrites RTP: the SSRC, sequence numbers and timestamps of what the peer
// sends (sender) and of what it receives (media: the other peer's stream as
// the relay sent it to this one).
type ssrcMap struct {
	sender ssrcShift // the direction from this peer
	media  ssrcShift // the direction towards this peer, inverted
}

// ssrcShift is one direction's rewrite: in is the source's SSRC, out the
// one the relay sends with, seq and ts what it adds.
type ssrcShift struct {
	set     bool
	in, out uint32
	seq     uint16
	ts      uint32
}

// fixRTCP rewrites, in place, the SSRCs of a (decrypted) compound RTCP
// packet from a peer so that they name the streams the other peer knows:
// its own stream's SSRC becomes the relay's, an SR's RTP timestamp moves
// with the timestamps, and report blocks about the stream the relay sent
// it name the other peer's SSRC with its sequence numbers. It stops at the
// first malformed packet, leaving the rest as it is.
func fixRTCP(b []byte, m *ssrcMap) {
	for len(b) >= 4 {
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if b[0]>>6 != 2 || n > len(b) {
			return
		}
		p, count := b[:n], int(b[0]&0x1f)
		switch p[1] {
		case rtcpSR:
			if len(p) < 28 {
				return
			}
			m.sender.fix(p[4:])
			if m.sender.set && binary.BigEndian.Uint32(p[4:]) == m.sender.out {
				binary.BigEndian.PutUint32(p[16:], binary.BigEndian.Uint32(p[16:])+m.sender.ts)
			}
			fixBlocks(p[28:], count, m)
		case rtcpRR:
			if len(p) < 8 {
				return
			}
			m.sender.fix(p[4:])
			fixBlocks(p[8:], count, m)
		case rtcpSDES:
			fixSDES(p[4:], count, m)
		case rtcpBYE:
			// Left alone: the relay's SSRC goes on (the peer's next
			// source continues it), so the other side must not hear it
			// leave; the peer's own SSRC means nothing to it.
		case rtcpAPP:
			if len(p) >= 8 {
				m.sender.fix(p[4:])
			}
		case rtcpRTPFB, rtcpPSFB: // sender SSRC, then the media source's
			if len(p) >= 12 {
				m.sender.fix(p[4:])
				m.media.unfix(p[8:])
			}
		}
		b = b[n:]
	}
}

// fix replaces the SSRC at b[0:4] with the relay's when it is the source's.
func (s *ssrcShift) fix(b []byte) {
	if s.set && binary.BigEndian.Uint32(b) == s.in {
		binary.BigEndian.PutUint32(b, s.out)
	}
}

// unfix maps an SSRC the relay sent with back to its source's; false when
// b names another.
func (s *ssrcShift) unfix(b []byte) bool {
	if s.set && binary.BigEndian.Uint32(b) == s.out {
		binary.BigEndian.PutUint32(b, s.in)
		return true
	}
	return false
}

// fixBlocks rewrites report blocks (RFC 3550 §6.4.1): the SSRC they report
// on and its extended highest sequence number.
func fixBlocks(b []byte, count int, m *ssrcMap) {
	for i := 0; i < count && len(b) >= 24; i++ {
		if m.media.unfix(b) {
			// The low 16 bits are the sequence number, shifted; the cycles
			// above them are the receiver's count and stay.
			ext := binary.BigEndian.Uint32(b[8:])
			binary.BigEndian.PutUint32(b[8:], ext&0xffff0000|uint32(uint16(ext)-m.media.seq))
		}
		b = b[24:]
	}
}

// fixSDES rewrites the SSRC of each SDES chunk (RFC 3550 §6.5): an SSRC,
// then items up to a zero byte, padded to 32 bits.
func fixSDES(b []byte, count int, m *ssrcMap) {
	for range count {
		if len(b) < 4 {
			return
		}
		m.sender.fix(b)
		i := 4
		for i < len(b) && b[i] != 0 {
			if i+1 >= len(b) {
				return
			}
			i += 2 + int(b[i+1])
		}
		i = (i + 4) &^ 3 // the terminating zero, then pad to 32 bits
		if i > len(b) {
			return
		}
		b = b[i:]
	}
}
