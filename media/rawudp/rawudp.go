// Package rawudp writes the IPv4 and UDP headers of datagrams sent from a
// raw socket (IPPROTO_RAW, IP_HDRINCL): the only way for one socket to send
// from many ports, which the steered media relay and the load harness's
// generator need.
package rawudp

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HeaderLen is the IPv4 (20 bytes, no options) and UDP (8) header that goes
// in front of a datagram's payload.
const HeaderLen = 28

// PutHeaders writes the IPv4 and UDP headers of a datagram carrying payload
// from src to dst into h[:HeaderLen]. The kernel fills in the IP total
// length, identification and header checksum (raw(7), IP_HDRINCL); the UDP
// checksum is ours.
func PutHeaders(h []byte, src, dst [4]byte, sport, dport uint16, payload []byte) {
	_ = h[HeaderLen-1]
	n := len(payload)
	h[0] = 0x45 // IPv4, 5-word header
	h[1] = 0    // DSCP/ECN, as the per-port sockets send
	binary.BigEndian.PutUint16(h[2:], uint16(HeaderLen+n))
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
	binary.BigEndian.PutUint16(h[26:], Checksum(src, dst, sport, dport, payload))
}

// Checksum is the UDP checksum over the IPv4 pseudo header, the UDP
// header and payload (RFC 768). A computed 0 is sent as 0xffff, since 0
// means "no checksum".
func Checksum(src, dst [4]byte, sport, dport uint16, payload []byte) uint16 {
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

// MaxBatch is the most datagrams a Batch holds.
const MaxBatch = 64

// Batch is a reusable sendmmsg(2) vector of datagrams, headers included,
// for a raw socket. The zero value is ready; it does not allocate.
type Batch struct {
	msgs [MaxBatch]unix.Mmsghdr
	iovs [MaxBatch]unix.Iovec
	dsts [MaxBatch]unix.RawSockaddrInet4
}

// Set makes datagram i of the batch d (IPv4 and UDP headers, then the
// payload) to dst. d must stay unchanged until it is sent.
func (b *Batch) Set(i int, d []byte, dst [4]byte) {
	b.iovs[i].Base = &d[0]
	b.iovs[i].SetLen(len(d))
	b.dsts[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst}
	h := &b.msgs[i].Hdr
	h.Name = (*byte)(unsafe.Pointer(&b.dsts[i]))
	h.Namelen = unix.SizeofSockaddrInet4
	h.Iov = &b.iovs[i]
	h.Iovlen = 1
}

// Send sends datagrams from..to-1 on fd with one non-blocking sendmmsg and
// returns how many the kernel took, from the first, or the error that
// stopped it at the first. The caller decides what a refused datagram costs.
func (b *Batch) Send(fd, from, to int) (int, unix.Errno) {
	// RawSyscall: MSG_DONTWAIT, so the call never blocks.
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[from])), uintptr(to-from), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
