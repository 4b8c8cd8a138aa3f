package sbc

import (
	"fmt"
	"strings"

	"sbc/codec"
	"sbc/media"
	"sbc/sbc/sdp"
)

// The SBC terminates the media of every audio m= line: it answers the
// offerer itself and makes its own offer to the other side, each under
// that side's MediaPolicy, and the relay bridges the two (SRTP, G.711
// law, telephone-event numbers). Other m= lines (video, T.38) are relayed
// as they came.

// notAcceptable is an offer or answer a media policy refuses. Its reason
// goes into the 488's Warning (RFC 3261 §20.43), so it never holds a key.
type notAcceptable struct{ reason string }

func (e *notAcceptable) Error() string { return e.reason }

func refuse(format string, args ...any) error {
	return &notAcceptable{fmt.Sprintf(format, args...)}
}

// lineOffer is what the SBC keeps of one audio m= line from the offer to
// its answer.
type lineOffer struct {
	// reject: a line the SBC declines (a non-audio line it cannot relay
	// under the policies); nothing else is set.
	reject bool
	proto  string      // the offerer's profile, echoed in our answer
	codecs []sdp.Codec // the offerer's formats the policy allows, in its order
	crypto *sdp.Crypto // the offerer's a=crypto chosen; nil: plain RTP
	suite  media.Suite
	ourKey []byte   // what we send to the offerer with; in our answer
	sent   sdp.Line // what we offered the answerer, with our keys
}

// secure says an RTP profile is SRTP's (RFC 3711 §12: RTP/SAVP, and its
// feedback variant RTP/SAVPF).
func secure(proto string) bool { return strings.Contains(proto, "SAVP") }

// encodingOf names what a format carries: its a=rtpmap, else the static
// payload type (RFC 3551 §6).
func encodingOf(c sdp.Codec) codec.Encoding {
	if c.Name != "" {
		e, _ := codec.ParseEncoding(c.Name)
		return e
	}
	return codec.StaticEncoding(c.PT)
}

// offerLine takes one audio m= line offered by the peer under policy from
// and makes the SBC's offer of it to the peer under policy to.
func offerLine(m sdp.Media, from, to *MediaPolicy) (*lineOffer, error) {
	switch m.Proto {
	case "RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF":
	default:
		return nil, refuse("audio profile %q not supported (RTP/AVP or RTP/SAVP with SDES)", m.Proto)
	}
	o := &lineOffer{proto: m.Proto}
	audio := false
	var offered []string
	for _, c := range m.Codecs {
		e := encodingOf(c)
		offered = append(offered, codecName(c))
		if e != codec.None && from.has(e) && !hasEncoding(o.codecs, e) {
			o.codecs = append(o.codecs, c)
			audio = audio || e.Audio()
		}
	}
	if !audio {
		return nil, refuse("no allowed codec: offered %s, allowed %s", strings.Join(offered, " "), strings.Join(from.Codecs, " "))
	}
	if err := o.chooseCrypto(m, from); err != nil {
		return nil, err
	}
	if o.crypto != nil {
		var err error
		if o.ourKey, err = o.suite.NewKey(); err != nil {
			return nil, err
		}
	}
	return o, o.makeOffer(to)
}

// chooseCrypto picks the offerer's first a=crypto the policy allows
// (RFC 4568 §7.1.2: the answerer selects one), or none.
func (o *lineOffer) chooseCrypto(m sdp.Media, p *MediaPolicy) error {
	if p.SRTP == SRTPOff {
		if secure(m.Proto) {
			return refuse("%s offered to a leg with srtp off", m.Proto)
		}
		return nil // a=crypto on RTP/AVP is a best-effort offer: declined
	}
	var seen []string
	for i := range m.Crypto {
		c := &m.Crypto[i]
		s, ok := media.ParseSuite(c.Suite)
		switch {
		case !ok:
			seen = append(seen, c.Suite+" (unknown suite)")
		case !p.allowsSuite(s):
			seen = append(seen, c.Suite+" (not in srtp_suites)")
		case c.Unsupported != "":
			seen = append(seen, c.Suite+" ("+c.Unsupported+" not supported)")
		case len(c.Key) != s.KeyLen():
			return refuse("a=crypto:%d %s has a key of %d bytes, want %d (RFC 4568 §6.2)", c.Tag, c.Suite, len(c.Key), s.KeyLen())
		default:
			o.crypto, o.suite = c, s
			return nil
		}
	}
	switch {
	case len(seen) > 0 && (secure(m.Proto) || p.SRTP == SRTPMandatory):
		return refuse("no usable a=crypto: %s", strings.Join(seen, ", "))
	case secure(m.Proto):
		return refuse("%s offered without a=crypto (only SDES keying is supported)", m.Proto)
	case p.SRTP == SRTPMandatory:
		return refuse("srtp is mandatory for this leg; the offer is plain %s", m.Proto)
	}
	return nil
}

// makeOffer writes what the SBC offers the answerer: its codecs in its
// policy's order (any G.711 law can be converted; telephone-event only if
// the offerer has it, else DTMF stays inband) and, unless srtp is off, a
// fresh key for each of its suites.
func (o *lineOffer) makeOffer(to *MediaPolicy) error {
	o.sent = sdp.Line{Proto: "RTP/AVP"}
	if to.SRTP == SRTPMandatory {
		o.sent.Proto = "RTP/SAVP"
	}
	for _, e := range to.encodings {
		if e == codec.TelephoneEvent {
			if te := findEncoding(o.codecs, e); te != nil {
				o.sent.Codecs = append(o.sent.Codecs, sdp.Codec{PT: te.PT, Name: "telephone-event/8000", Fmtp: te.Fmtp})
			}
			continue
		}
		o.sent.Codecs = append(o.sent.Codecs, sdp.Codec{PT: e.StaticPT(), Name: e.String() + "/8000"})
	}
	if to.SRTP == SRTPOff {
		return nil
	}
	for i, s := range to.suites {
		key, err := s.NewKey()
		if err != nil {
			return err
		}
		o.sent.Crypto = append(o.sent.Crypto, sdp.Crypto{Tag: i + 1, Suite: s.String(), Key: key})
	}
	return nil
}

// answerLine takes the answerer's answer (policy to) to what the SBC
// offered and returns what each leg negotiated and the SBC's answer to the
// offerer.
func (o *lineOffer) answerLine(m sdp.Media, to *MediaPolicy) (offerer, answerer media.LegMedia, answer *sdp.Line, err error) {
	if m.Proto != o.sent.Proto {
		return offerer, answerer, nil, refuse("answer profile %s to an offer of %s", m.Proto, o.sent.Proto)
	}
	for _, c := range m.Codecs {
		e := encodingOf(c)
		if e != codec.None && hasEncoding(o.sent.Codecs, e) && !hasFormat(answerer.Formats, e) {
			answerer.Formats = append(answerer.Formats, codec.Format{PT: uint8(c.PT), Encoding: e})
		}
	}
	first := firstAudio(answerer.Formats)
	if first == codec.None {
		return offerer, answerer, nil, refuse("answer has no codec the SBC offered")
	}
	if answerer.SRTP, err = o.answerCrypto(m, to); err != nil {
		return offerer, answerer, nil, err
	}

	// The offerer keeps the answerer's law when it has it (no conversion),
	// else its own first; telephone-event when both ends have it.
	answer = &sdp.Line{Proto: o.proto}
	pick := findEncoding(o.codecs, first)
	if pick == nil {
		pick = firstAudioCodec(o.codecs)
	}
	answer.Codecs = append(answer.Codecs, *pick)
	if te := findEncoding(o.codecs, codec.TelephoneEvent); te != nil && hasFormat(answerer.Formats, codec.TelephoneEvent) {
		answer.Codecs = append(answer.Codecs, *te)
	}
	for _, c := range answer.Codecs {
		offerer.Formats = append(offerer.Formats, codec.Format{PT: uint8(c.PT), Encoding: encodingOf(c)})
	}
	if o.crypto != nil {
		offerer.SRTP = &media.SRTP{Suite: o.suite, Recv: o.crypto.Key, Send: o.ourKey}
		answer.Crypto = []sdp.Crypto{{Tag: o.crypto.Tag, Suite: o.crypto.Suite, Key: o.ourKey}}
	}
	return offerer, answerer, answer, nil
}

// answerCrypto finds the answerer's key: its a=crypto must echo the tag
// and suite of one we offered (RFC 4568 §7.1.3).
func (o *lineOffer) answerCrypto(m sdp.Media, to *MediaPolicy) (*media.SRTP, error) {
	if len(o.sent.Crypto) == 0 {
		return nil, nil // none offered: any a=crypto in the answer means nothing
	}
	for _, c := range m.Crypto {
		for _, ours := range o.sent.Crypto {
			if c.Tag != ours.Tag {
				continue
			}
			s, _ := media.ParseSuite(ours.Suite)
			switch {
			case c.Suite != ours.Suite:
				return nil, refuse("answer a=crypto:%d suite %s, offered %s", c.Tag, c.Suite, ours.Suite)
			case c.Unsupported != "":
				return nil, refuse("answer a=crypto:%d: %s not supported", c.Tag, c.Unsupported)
			case len(c.Key) != s.KeyLen():
				return nil, refuse("answer a=crypto:%d %s has a key of %d bytes, want %d", c.Tag, c.Suite, len(c.Key), s.KeyLen())
			}
			return &media.SRTP{Suite: s, Recv: c.Key, Send: ours.Key}, nil
		}
	}
	switch {
	case len(m.Crypto) > 0:
		return nil, refuse("answer a=crypto matches no offered tag")
	case to.SRTP == SRTPMandatory || secure(m.Proto):
		return nil, refuse("answer without a=crypto to an SRTP offer")
	}
	return nil, nil // optional: the peer declined SRTP
}

func codecName(c sdp.Codec) string {
	if c.Name != "" {
		return c.Name
	}
	return fmt.Sprint(c.PT)
}

func findEncoding(cs []sdp.Codec, e codec.Encoding) *sdp.Codec {
	for i := range cs {
		if encodingOf(cs[i]) == e {
			return &cs[i]
		}
	}
	return nil
}

func hasEncoding(cs []sdp.Codec, e codec.Encoding) bool { return findEncoding(cs, e) != nil }

func firstAudioCodec(cs []sdp.Codec) *sdp.Codec {
	for i := range cs {
		if encodingOf(cs[i]).Audio() {
			return &cs[i]
		}
	}
	return nil
}

func hasFormat(fs []codec.Format, e codec.Encoding) bool {
	for _, f := range fs {
		if f.Encoding == e {
			return true
		}
	}
	return false
}

func firstAudio(fs []codec.Format) codec.Encoding {
	for _, f := range fs {
		if f.Encoding.Audio() {
			return f.Encoding
		}
	}
	return codec.None
}
