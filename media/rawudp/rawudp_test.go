package rawudp

import (
	"encoding/binary"
	"testing"
)

// TestUDPChecksum compares with the textbook sum of 16-bit words (RFC 1071)
// and checks that a datagram with its checksum in place sums to all ones.
func TestUDPChecksum(t *testing.T) {
	src, dst := [4]byte{192, 0, 2, 1}, [4]byte{198, 51, 100, 7}
	for n := range 40 {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*37 + n)
		}
		got := Checksum(src, dst, 20000, 40002, payload)

		h := make([]byte, HeaderLen+n)
		PutHeaders(h, src, dst, 20000, 40002, payload)
		copy(h[HeaderLen:], payload)
		if c := binary.BigEndian.Uint16(h[26:]); c != got {
			t.Fatalf("len %d: header checksum %#x, Checksum %#x", n, c, got)
		}
		// pseudo header + UDP header with checksum + payload
		pseudo := append(append(append([]byte{}, src[:]...), dst[:]...), 0, 17, byte((8+n)>>8), byte(8+n))
		if s := sum16(append(append(pseudo, h[20:28]...), payload...)); s != 0xffff {
			t.Fatalf("len %d: datagram sums to %#x, want 0xffff", n, s)
		}
	}
}

func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestPutHeaders(t *testing.T) {
	h := make([]byte, HeaderLen)
	PutHeaders(h, [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 20000, 5004, make([]byte, 172))
	want := []byte{0x45, 0, 0, 200, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x4e, 0x20, 0x13, 0x8c, 0, 180}
	if string(h[:26]) != string(want) {
		t.Errorf("headers\n got % x\nwant % x", h[:26], want)
	}
}
