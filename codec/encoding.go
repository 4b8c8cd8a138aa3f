package codec

import (
	"fmt"
	"strings"
)

// Encoding is an audio encoding the SBC relays and converts.
type Encoding uint8

const (
	None Encoding = iota // not audio the SBC knows (video, another codec)
	PCMU                 // G.711 µ-law, static payload type 0 (RFC 3551 §6)
	PCMA                 // G.711 A-law, static payload type 8
	// TelephoneEvent is RFC 4733 DTMF and tone events, a dynamic payload
	// type at 8000 Hz.
	TelephoneEvent
)

// ClockRate of every encoding here (RFC 3551 §4.5.14, RFC 4733 §2.5.1.1).
const ClockRate = 8000

var names = [...]string{None: "", PCMU: "PCMU", PCMA: "PCMA", TelephoneEvent: "telephone-event"}

// String is the encoding name of an a=rtpmap line.
func (e Encoding) String() string {
	if int(e) < len(names) {
		return names[e]
	}
	return fmt.Sprintf("Encoding(%d)", e)
}

// Audio says e carries G.711 samples.
func (e Encoding) Audio() bool { return e == PCMU || e == PCMA }

// StaticPT is e's static payload type (RFC 3551 Table 4), or -1.
func (e Encoding) StaticPT() int {
	switch e {
	case PCMU:
		return 0
	case PCMA:
		return 8
	}
	return -1
}

// ParseEncoding reads a codec as configured or signalled: "PCMU",
// "PCMU/8000", "PCMA", "PCMA/8000", "telephone-event/8000" (names compare
// case-insensitively, RFC 4855 §3). Another clock rate or channel count is
// not one of ours.
func ParseEncoding(s string) (Encoding, bool) {
	name, rest, _ := strings.Cut(s, "/")
	if rest != "" && rest != "8000" && rest != "8000/1" {
		return None, false
	}
	for e, n := range names {
		if n != "" && strings.EqualFold(name, n) {
			return Encoding(e), true
		}
	}
	return None, false
}

// StaticEncoding is the encoding of a static payload type used without
// a=rtpmap (RFC 3551 §6): 0 and 8 are ours.
func StaticEncoding(pt int) Encoding {
	switch pt {
	case 0:
		return PCMU
	case 8:
		return PCMA
	}
	return None
}

// Conversion returns the table converting from's samples to to's, nil when
// none is needed (same encoding) or none exists.
func Conversion(from, to Encoding) *Table {
	switch {
	case from == PCMU && to == PCMA:
		return ulawToAlaw
	case from == PCMA && to == PCMU:
		return alawToUlaw
	}
	return nil
}

// The conversion tables, built once and never written again.
var (
	ulawToAlaw = newTable(UlawToAlaw)
	alawToUlaw = newTable(AlawToUlaw)
)
