// Package codec holds what the media relay needs to know about the audio it
// carries: G.711 µ-law and A-law (ITU-T G.711) with the direct conversion
// between them, RFC 4733 telephone events, and the per-payload-type plan of
// what happens to a packet between two legs. No sockets, no SDP text.
package codec

// Linear PCM here is 16-bit two's complement, the scale of Sun's reference
// g711.c: µ-law's 14-bit range shifted left by 2, A-law's 13-bit range by 3.

// UlawToLinear decodes a µ-law code word (G.711 §3.2, Table 2).
func UlawToLinear(u byte) int16 {
	u = ^u // transmitted inverted
	t := (int32(u&0x0f) << 3) + ulawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// AlawToLinear decodes an A-law code word (G.711 §3.1, Table 1).
func AlawToLinear(a byte) int16 {
	a ^= 0x55 // even bits inverted on the line
	t := int32(a&0x0f) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t = (t + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

const (
	ulawBias = 0x84 // 33 on the 14-bit scale, shifted by 2
	ulawClip = 8159 // largest magnitude µ-law encodes (14-bit scale)
)

// LinearToUlaw encodes a sample as µ-law: the segment is the position of
// the leading one of the biased magnitude, the step its next four bits.
func LinearToUlaw(pcm int16) byte {
	v := int32(pcm) / 4 // 14-bit; truncates toward zero like the reference
	mask := byte(0xff)
	if v < 0 {
		v, mask = -v, 0x7f
	}
	v = min(v, ulawClip) + ulawBias>>2
	seg := segment(v>>6, 8)
	if seg >= 8 {
		return 0x7f ^ mask
	}
	return (seg<<4 | byte(v>>(seg+1))&0x0f) ^ mask
}

// LinearToAlaw encodes a sample as A-law.
func LinearToAlaw(pcm int16) byte {
	v := int32(pcm) / 8 // 13-bit
	mask := byte(0xd5)
	if v < 0 {
		v, mask = -v-1, 0x55
	}
	seg := segment(v>>5, 8)
	if seg >= 8 {
		return 0x7f ^ mask
	}
	shift := max(seg, 1)
	return (seg<<4 | byte(v>>shift)&0x0f) ^ mask
}

// segment returns the number of significant bits of v (v>>6 for µ-law,
// v>>5 for A-law), that is the segment, capped at max.
func segment(v int32, max byte) byte {
	var s byte
	for v > 0 && s < max {
		v >>= 1
		s++
	}
	return s
}

// The direct conversions of G.711 (Tables 3 and 4), on magnitudes: index
// and value are a code word's seven low bits in natural order (segment,
// step), sign stripped. They are not decode-then-encode: the tables pick
// the level that keeps a µ-A-µ or A-µ-A tandem transparent.
var (
	ulawToAlawMag = [128]byte{
		0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
		8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
		24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
		45, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
		63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78,
		79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
		96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
		112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
	}
	alawToUlawMag = [128]byte{
		1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23,
		24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35,
		36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49,
		50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64,
		65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
		80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
		96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
		112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
	}
)

// Table maps every code word of one law to the other: transcoding G.711 is
// one lookup per byte.
type Table [256]byte

// UlawToAlaw converts a µ-law code word to A-law (G.711 Table 3).
func UlawToAlaw(u byte) byte {
	// µ-law's line code is the inverted magnitude with sign 1 = positive;
	// A-law's inverts the even bits (0x55), sign 1 = positive.
	if u&0x80 != 0 {
		return 0xd5 ^ ulawToAlawMag[0xff^u]
	}
	return 0x55 ^ ulawToAlawMag[0x7f^u]
}

// AlawToUlaw converts an A-law code word to µ-law (G.711 Table 4).
func AlawToUlaw(a byte) byte {
	if a&0x80 != 0 {
		return 0xff ^ alawToUlawMag[a^0xd5]
	}
	return 0x7f ^ alawToUlawMag[a^0x55]
}

// Convert rewrites the samples in b through t, in place. Eight at a time:
// one bounds check per eight lookups (a 160-sample packet: 56 ns instead of 80).
func (t *Table) Convert(b []byte) {
	for len(b) >= 8 {
		b[0], b[1], b[2], b[3] = t[b[0]], t[b[1]], t[b[2]], t[b[3]]
		b[4], b[5], b[6], b[7] = t[b[4]], t[b[5]], t[b[6]], t[b[7]]
		b = b[8:]
	}
	for i, c := range b {
		b[i] = t[c]
	}
}

func newTable(f func(byte) byte) *Table {
	var t Table
	for i := range t {
		t[i] = f(byte(i))
	}
	return &t
}
