package sbc

import (
	"fmt"
	"strings"

	"sbc/codec"
	"sbc/media"
)

// SRTP modes of a leg's media policy.
const (
	SRTPOff       = "off"       // plain RTP/AVP only; an RTP/SAVP offer is refused
	SRTPOptional  = "optional"  // SRTP when the peer offers or accepts it (RTP/AVP with a=crypto), else plain
	SRTPMandatory = "mandatory" // RTP/SAVP only; a plain offer or answer is refused
)

// MediaPolicy is what one leg's peer may use: a [[trunk]]'s srtp, codecs
// and srtp_suites keys (and, with the registrar, a registered user's).
type MediaPolicy struct {
	SRTP   string   `toml:"srtp"`        // SRTPOff, SRTPOptional, SRTPMandatory
	Codecs []string `toml:"codecs"`      // in preference order: "PCMU", "PCMA", "telephone-event"
	Suites []string `toml:"srtp_suites"` // SDES suites, in preference order

	encodings []codec.Encoding
	suites    []media.Suite
}

// Default media policy: plain RTP, both G.711 laws with µ-law first (the
// North American default; A-law carriers list PCMA first), DTMF as RFC 4733
// events, and every SDES suite with the widest supported first.
var (
	defaultCodecs = []string{"PCMU", "PCMA", "telephone-event"}
)

func (p *MediaPolicy) setDefaults() {
	if p.SRTP == "" {
		p.SRTP = SRTPOff
	}
	if p.Codecs == nil {
		p.Codecs = append([]string(nil), defaultCodecs...)
	}
	if p.Suites == nil {
		for _, s := range media.Suites() {
			p.Suites = append(p.Suites, s.String())
		}
	}
}

// validate checks the policy under key (e.g. "trunk[0]") and resolves its
// names.
func (p *MediaPolicy) validate(key string) []error {
	var errs []error
	bad := func(k string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s.%s: %q is invalid; want %s", key, k, fmt.Sprint(val), want))
	}
	switch p.SRTP {
	case SRTPOff, SRTPOptional, SRTPMandatory:
	default:
		bad("srtp", p.SRTP, `"off", "optional" or "mandatory"`)
	}
	p.encodings = p.encodings[:0]
	audio := false
	for i, name := range p.Codecs {
		e, ok := codec.ParseEncoding(name)
		switch {
		case !ok:
			bad(fmt.Sprintf("codecs[%d]", i), name, `"PCMU", "PCMA" or "telephone-event" (G.711 and RFC 4733 DTMF are what the relay handles)`)
			continue
		case p.has(e):
			bad(fmt.Sprintf("codecs[%d]", i), name, "each codec once")
			continue
		}
		audio = audio || e.Audio()
		p.encodings = append(p.encodings, e)
	}
	if !audio {
		bad("codecs", strings.Join(p.Codecs, ","), `at least one of "PCMU", "PCMA"`)
	}
	p.suites = p.suites[:0]
	for i, name := range p.Suites {
		s, ok := media.ParseSuite(name)
		if !ok {
			bad(fmt.Sprintf("srtp_suites[%d]", i), name, `"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32" or "AEAD_AES_128_GCM"`)
			continue
		}
		p.suites = append(p.suites, s)
	}
	if len(p.suites) == 0 && p.SRTP != SRTPOff {
		bad("srtp_suites", strings.Join(p.Suites, ","), "at least one suite when srtp is not \"off\"")
	}
	return errs
}

func (p *MediaPolicy) has(e codec.Encoding) bool {
	for _, x := range p.encodings {
		if x == e {
			return true
		}
	}
	return false
}

func (p *MediaPolicy) allowsSuite(s media.Suite) bool {
	for _, x := range p.suites {
		if x == s {
			return true
		}
	}
	return false
}
