package codec

import "errors"

// Event is an RFC 4733 named telephone event (§2.3): a DTMF digit (codes
// 0-15) or another tone.
type Event struct {
	Code     uint8  // 0-9, * = 10, # = 11, A-D = 12-15 (§3.2)
	End      bool   // E bit: the last packets of the event carry it
	Volume   uint8  // power level, 0 to -63 dBm0 as 0..63
	Duration uint16 // in timestamp units since the event's start
}

// ErrShortEvent is returned for a payload shorter than an event.
var ErrShortEvent = errors.New("codec: telephone-event payload shorter than 4 bytes")

// ParseEvent reads the payload of a telephone-event packet (§2.3, Figure 1).
func ParseEvent(p []byte) (Event, error) {
	if len(p) < 4 {
		return Event{}, ErrShortEvent
	}
	return Event{
		Code:     p[0],
		End:      p[1]&0x80 != 0,
		Volume:   p[1] & 0x3f,
		Duration: uint16(p[2])<<8 | uint16(p[3]),
	}, nil
}

// Digit is the DTMF character of a code, or 0 when it is no DTMF digit.
func (e Event) Digit() byte {
	const digits = "0123456789*#ABCD"
	if int(e.Code) < len(digits) {
		return digits[e.Code]
	}
	return 0
}
