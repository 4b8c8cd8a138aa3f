package media

import "encoding/binary"

// rtpHeader is what the relay reads of an RTP packet (RFC 3550 §5.1).
type rtpHeader struct {
	pt   uint8
	seq  uint16
	ts   uint32
	ssrc uint32
	len  int // fixed header, CSRCs and header extension
	pad  int // padding bytes at the end (P bit), 0 without
}

// parseRTP reads b's header; false when b is too short for what its
// header says.
func parseRTP(b []byte) (rtpHeader, bool) {
	if len(b) < minRTP {
		return rtpHeader{}, false
	}
	h := rtpHeader{
		pt:   b[1] & 0x7f,
		seq:  binary.BigEndian.Uint16(b[2:]),
		ts:   binary.BigEndian.Uint32(b[4:]),
		ssrc: binary.BigEndian.Uint32(b[8:]),
		len:  minRTP + 4*int(b[0]&0x0f),
	}
	if b[0]&0x10 != 0 { // extension: 16-bit profile, 16-bit length in words
		if len(b) < h.len+4 {
			return rtpHeader{}, false
		}
		h.len += 4 + 4*int(binary.BigEndian.Uint16(b[h.len+2:]))
	}
	if len(b) < h.len {
		return rtpHeader{}, false
	}
	if b[0]&0x20 != 0 {
		h.pad = int(b[len(b)-1])
		if h.pad == 0 || h.len+h.pad > len(b) {
			return rtpHeader{}, false
		}
	}
	return h, true
}

// payload is b's payload without padding.
func (h *rtpHeader) payload(b []byte) []byte { return b[h.len : len(b)-h.pad] }

// setRTP writes the payload type (keeping the marker), sequence number,
// timestamp and SSRC into b's header.
func setRTP(b []byte, pt uint8, seq uint16, ts, ssrc uint32) {
	b[1] = b[1]&0x80 | pt&0x7f
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
