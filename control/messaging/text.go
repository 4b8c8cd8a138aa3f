// Package messaging is the control plane's SMS: what a message's text
// means (opt-out keywords), how many segments it takes and how it is
// split, the delivery statuses and the carriers' reports (status.go), and
// the outbound queue with its per-account rate (queue.go). It knows
// nothing of SIP: the SBC carries messages as SIP MESSAGE requests behind
// the Sender interface.
package messaging

import (
	"strings"
	"unicode/utf16"
)

// Keyword is what an inbound message's text asks of the sender's
// subscription.
type Keyword int

const (
	NoKeyword Keyword = iota
	OptOut            // STOP and its kin: no more messages from the account
	OptIn             // START, UNSTOP: messages again
)

func (k Keyword) String() string {
	switch k {
	case OptOut:
		return "opt-out"
	case OptIn:
		return "opt-in"
	}
	return ""
}

// optOut and optIn are the keywords carriers and CPaaS platforms honour
// (CTIA's STOP, CANCEL, QUIT, STOPALL, UNSUBSCRIBE, END; START, UNSTOP).
var (
	optOut = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
	optIn  = []string{"START", "UNSTOP"}
)

// KeywordOf is the keyword body is: exactly one of them, in any case,
// with any spaces around it. "Stop it" is no keyword.
func KeywordOf(body string) Keyword {
	w := strings.TrimSpace(body)
	for _, k := range optOut {
		if strings.EqualFold(w, k) {
			return OptOut
		}
	}
	for _, k := range optIn {
		if strings.EqualFold(w, k) {
			return OptIn
		}
	}
	return NoKeyword
}

// The GSM 03.38 default alphabet: each character one septet; those of its
// extension table two (an escape, then the character).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

// Encoding is how a text travels over SMS.
type Encoding string

const (
	GSM7 Encoding = "GSM-7" // 160 septets in one message, 153 per part of a longer one
	UCS2 Encoding = "UCS-2" // 70 UTF-16 units in one message, 67 per part
)

// gsmLatin and gsmOther are each GSM character's length in septets (1
// basic, 2 extension; 0 not GSM): a table for Latin-1, where texts mostly
// are, a map for the Greek capitals and the euro sign.
var gsmLatin, gsmOther = func() ([256]uint8, map[rune]uint8) {
	var latin [256]uint8
	other := map[rune]uint8{}
	for k, set := range []string{gsmBasic, gsmExtension} {
		for _, r := range set {
			if r < 256 {
				latin[r] = uint8(k + 1)
			} else {
				other[r] = uint8(k + 1)
			}
		}
	}
	return latin, other
}()

func gsmSeptets(r rune) int {
	if r >= 0 && r < 256 {
		return int(gsmLatin[r])
	}
	return int(gsmOther[r])
}

// septets is the length of s in the GSM default alphabet, and false when
// a character is not in it.
func septets(s string) (int, bool) {
	n := 0
	for _, r := range s {
		k := gsmSeptets(r)
		if k == 0 {
			return 0, false
		}
		n += k
	}
	return n, true
}

// Segments is how many SMS body takes, and in which encoding: GSM-7 when
// every character is in the GSM default alphabet, else UCS-2 (a single
// emoji makes a message UCS-2). A long text's count is that of its parts
// (Split), which a character never straddles.
func Segments(body string) (int, Encoding) {
	parts, enc := split(body)
	return len(parts), enc
}

// Split cuts body into the parts of a concatenated SMS, each within a
// part's size in body's encoding, never inside a character (an extension
// character's two septets, a surrogate pair). One part when it fits one
// message.
func Split(body string) []string {
	parts, _ := split(body)
	return parts
}

func split(body string) ([]string, Encoding) {
	enc, single, n := GSM7, 160, 0
	if s, ok := septets(body); ok {
		n = s
	} else {
		enc, single = UCS2, 70
		for _, r := range body {
			n += utf16.RuneLen(r)
		}
	}
	if n <= single {
		return []string{body}, enc
	}
	size := func(r rune) int { // in septets or UTF-16 units
		if enc == UCS2 {
			return utf16.RuneLen(r)
		}
		return gsmSeptets(r)
	}
	limit := 153
	if enc == UCS2 {
		limit = 67
	}
	var out []string
	start, used := 0, 0
	for i, r := range body {
		if used+size(r) > limit {
			out = append(out, body[start:i])
			start, used = i, 0
		}
		used += size(r)
	}
	return append(out, body[start:]), enc
}
