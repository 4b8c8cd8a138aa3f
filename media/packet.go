package media

import "encoding/binary"

// hdrRoom is the IPv4 (20 bytes, no options) and UDP (8) header that the
// steered relay writes in front of a datagram's payload to send it from a
// raw socket: the only way for one socket to send from every media port.
const hdrRoom = 28

// putHeaders writes the IPv4 and UDP headers of a datagram carrying payload
// from src to dst into h[:hdrRoom]. The kernel fills in the IP total
// length, identification and header checksum (raw(7), IP_HDRINCL); the UDP
// checksum is ours.
func putHeaders(h []byte, src, dst [4]byte, sport, dport uint16, payload []byte) {
	_ = h[hdrRoom-1]
	n := len(payload)
	h[0] = 0x45 // IPv4, 5-word header
	h[1] = 0    // DSCP/ECN, as the per-port sockets send
	binary.BigEndian.PutUint16(h[2:], uint16(hdrRoom+n))
	h[4], h[5] = 0, 0    // identification: kernel
	h[6], h[7] = 0x40, 0 // don't fragment
	h[8] = 64            // TTL
	h[9] = 17            // UDP
	h[10], h[11] = 0, 0  // header checksum: kernel
	copy(h[12:16], src[:])
	copy(h[16:20], dst[:])
	binary.BigEndian.PutUint16(h[20:], sport)
	binary.BigEndian.PutUint16(h[22:], dport)
	binary.BigEndian.PutUint16(h[24:], uint16(8+n))
	binary.BigEndian.PutUint16(h[26:], udpChecksum(src, dst, sport, dport, payload))
}

// udpChecksum is the UDP checksum over the IPv4 pseudo header, the UDP
// header and payload (RFC 768). A computed 0 is sent as 0xffff, since 0
// means "no checksum".
func udpChecksum(src, dst [4]byte, sport, dport uint16, payload []byte) uint16 {
	ulen := uint64(8 + len(payload))
	s := uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) +
		17 + 2*ulen + uint64(sport) + uint64(dport) // length twice: pseudo header and UDP header
	b := payload
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>32 + v&0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	if c := ^uint16(s); c != 0 {
		return c
	}
	return 0xffff
}
