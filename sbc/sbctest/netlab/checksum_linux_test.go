package netlab

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLeavesSendFullChecksums captures, on the sbc's carrier-side interface,
// a datagram from the carrier and checks its UDP checksum: an XDP program
// sees these bytes and must be able to forward them as they are.
func TestLeavesSendFullChecksums(t *testing.T) {
	lab := New(t)
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"v4", lab.CarrierLink.Leaf.IPv4, lab.CarrierLink.SBC.IPv4},
		{"v6", lab.CarrierLink.Leaf.IPv6, lab.CarrierLink.SBC.IPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := capture(t, lab.SBC, lab.CarrierLink.SBC.Index)
			const port = 40002
			if _, _, err := send(t, lab.Carrier, tc.src, lab.SBC, netip.AddrPortFrom(tc.dst, port), 2*time.Second); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			for {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					t.Fatalf("capture on %s: %v (the datagram to port %d never seen)", lab.CarrierLink.SBC.Name, err, port)
				}
				pseudo, udp, ok := udpOf(buf[:n])
				if !ok || binary.BigEndian.Uint16(udp[2:]) != port {
					continue
				}
				if sum := checksum(pseudo, udp); sum != 0xffff {
					t.Errorf("%v -> %v: UDP checksum %#04x does not verify (sum %#04x)", tc.src, tc.dst, binary.BigEndian.Uint16(udp[6:]), sum)
				}
				return
			}
		})
	}
}

// capture opens a packet socket on interface index of ns that returns IP
// packets (no link header) and times out after 2 s.
func capture(t *testing.T, ns *Namespace, index int) int {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	var fd int
	err := ns.Do(func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index})
	})
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpOf returns the UDP checksum's pseudo-header and the UDP header and
// payload of an IPv4 or IPv6 packet (no extension headers), if it is UDP.
func udpOf(p []byte) (pseudo, udp []byte, ok bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP:
		udp = p[int(p[0]&0xf)*4:]
		pseudo = append(append([]byte{}, p[12:20]...), 0, unix.IPPROTO_UDP, byte(len(udp)>>8), byte(len(udp)))
	case len(p) >= 40 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP:
		udp = p[40:]
		pseudo = append(append([]byte{}, p[8:40]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, unix.IPPROTO_UDP)
	default:
		return nil, nil, false
	}
	return pseudo, udp, len(udp) >= 8
}

// checksum is the ones' complement sum of the given bytes (RFC 1071); over
// a packet with a correct checksum in it, it is 0xffff.
func checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, b := range parts {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
