//go:build linux

package main

import (
	"encoding/binary"
)

// The packets the generator sends: G.711-sized RTP (RFC 3550 §5.1 fixed
// header, payload type 8 = PCMA, 160 bytes = 20 ms at 8 kHz) whose payload
// carries what the receiver needs to account for it.
//
//	payload[0:4]   magic "sbcB"
//	payload[4:8]   stream id (big endian)
//	payload[8:12]  sequence number within the stream, from 0
//	payload[12:20] send time, ns on the harness's monotonic clock
//	payload[20:28] send time, ns of wall-clock (Unix) time, to compare with
//	               the kernel's receive timestamp (SO_TIMESTAMPNS)
//	payload[28:]   0xD5, A-law silence
const (
	rtpHeaderLen = 12
	payloadLen   = 160
	packetLen    = rtpHeaderLen + payloadLen
	payloadType  = 8   // PCMA
	samplesPer   = 160 // RTP timestamp step per packet
	alawSilence  = 0xD5
)

var magic = [4]byte{'s', 'b', 'c', 'B'}

// newPacket returns a packet buffer with the constant parts filled in;
// encode writes the rest for each send.
func newPacket() []byte {
	b := make([]byte, packetLen)
	b[0] = 0x80 // V=2, no padding, no extension, no CSRC
	b[1] = payloadType
	p := b[rtpHeaderLen:]
	copy(p, magic[:])
	for i := 28; i < payloadLen; i++ {
		p[i] = alawSilence
	}
	return b
}

// sendTime is when a packet was sent, on both clocks.
type sendTime struct {
	mono int64 // ns on the generator's monotonic clock
	wall int64 // Unix ns
}

// encode writes stream, seq and the send time into b, a buffer from
// newPacket. The RTP sequence number and timestamp follow seq so the
// packet is plausible RTP to anyone who looks; the SSRC is the stream id.
func encode(b []byte, stream, seq uint32, sent sendTime) {
	binary.BigEndian.PutUint16(b[2:4], uint16(seq))
	binary.BigEndian.PutUint32(b[4:8], seq*samplesPer)
	binary.BigEndian.PutUint32(b[8:12], stream+1)
	p := b[rtpHeaderLen:]
	binary.BigEndian.PutUint32(p[4:8], stream)
	binary.BigEndian.PutUint32(p[8:12], seq)
	binary.BigEndian.PutUint64(p[12:20], uint64(sent.mono))
	binary.BigEndian.PutUint64(p[20:28], uint64(sent.wall))
}

// decode reads a packet of ours; ok is false for anything else (wrong size,
// not RTP version 2, not PCMA, no magic).
func decode(b []byte) (stream, seq uint32, sent sendTime, ok bool) {
	if len(b) != packetLen || b[0]>>6 != 2 || b[1]&0x7f != payloadType {
		return 0, 0, sendTime{}, false
	}
	p := b[rtpHeaderLen:]
	if [4]byte(p[0:4]) != magic {
		return 0, 0, sendTime{}, false
	}
	sent = sendTime{mono: int64(binary.BigEndian.Uint64(p[12:20])), wall: int64(binary.BigEndian.Uint64(p[20:28]))}
	return binary.BigEndian.Uint32(p[4:8]), binary.BigEndian.Uint32(p[8:12]), sent, true
}
