package sbc

import (
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// warning builds a Warning header (RFC 3261 §20.43) explaining a refusal.
func (s *Server) warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 `+s.publicIP+` "`+warnText(text)+`"`)
}

// warnText makes text safe inside a Warning's quoted string (RFC 3261
// §25.1): printable ASCII without quote or backslash, at most 200 bytes.
// Reasons may quote a peer's SDP.
func warnText(text string) string {
	b := []byte(strings.ReplaceAll(text, "§", "s."))
	if len(b) > 200 {
		b = append(b[:197], "..."...)
	}
	for i, c := range b {
		switch {
		case c == '"':
			b[i] = '\''
		case c == '\\' || c < 0x20 || c > 0x7e:
			b[i] = '?'
		}
	}
	return string(b)
}

// policyReason is what a refusal's Warning says: a media policy's reason
// (notAcceptable) as it is, else otherwise.
func policyReason(err error, otherwise string) string {
	var na *notAcceptable
	if errors.As(err, &na) {
		return err.Error()
	}
	return otherwise
}

// offerProblem says why an offer was refused, for a Warning.
func offerProblem(err error) string { return policyReason(err, "offer not usable: "+err.Error()) }

// answerProblem says what was wrong with an answer, for a Warning: the
// policy's reason, else that it was not SDP the SBC could use.
func answerProblem(err error) string { return policyReason(err, "malformed or not matching the offer") }
