package sbc

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"sbc/codec"
	"sbc/media"
	"sbc/sbc/sdp"
)

const (
	key80 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" // 30 bytes
	key28 = "a2tra2tra2tra2tra2tra2tra2tra2tra2traw==" // 28 bytes
)

func policy(t *testing.T, srtp string, codecs ...string) *MediaPolicy {
	t.Helper()
	p := &MediaPolicy{SRTP: srtp, Codecs: codecs}
	p.setDefaults()
	if errs := p.validate("test"); len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// audioLine parses an SDP with one m=audio line and the given lines after it.
func audioLine(t *testing.T, mline string, attrs ...string) sdp.Media {
	t.Helper()
	body := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" + mline + "\r\n"
	for _, a := range attrs {
		body += a + "\r\n"
	}
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatalf("parse %q: %v", body, err)
	}
	return s.Media[0]
}

func TestOfferRefused(t *testing.T) {
	plain, opt, mand := policy(t, "off", "PCMU", "PCMA", "telephone-event"), policy(t, "optional", "PCMU", "PCMA"), policy(t, "mandatory", "PCMU")
	tests := []struct {
		name   string
		m      sdp.Media
		from   *MediaPolicy
		reason string
	}{
		{"only G.729", audioLine(t, "m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000"), plain, "no allowed codec: offered G729/8000"},
		{"only an event", audioLine(t, "m=audio 4000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000"), plain, "no allowed codec"},
		{"PCMA not allowed", audioLine(t, "m=audio 4000 RTP/AVP 8"), mand, "no allowed codec: offered 8, allowed PCMU"},
		{"SAVP to srtp off", audioLine(t, "m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key80), plain, "RTP/SAVP offered to a leg with srtp off"},
		{"plain to mandatory", audioLine(t, "m=audio 4000 RTP/AVP 0"), mand, "srtp is mandatory"},
		{"key too short", audioLine(t, "m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key28), opt, "has a key of 28 bytes, want 30"},
		{"GCM key too long", audioLine(t, "m=audio 4000 RTP/SAVP 0", "a=crypto:1 AEAD_AES_128_GCM inline:"+key80), opt, "has a key of 30 bytes, want 28"},
		{"unknown suite", audioLine(t, "m=audio 4000 RTP/SAVP 0", "a=crypto:1 F8_128_HMAC_SHA1_80 inline:"+key80), opt, "no usable a=crypto: F8_128_HMAC_SHA1_80 (unknown suite)"},
		{"MKI", audioLine(t, "m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key80+"|2^20|1:4"), opt, "an MKI not supported"},
		{"SAVP without crypto", audioLine(t, "m=audio 4000 RTP/SAVP 0"), opt, "without a=crypto"},
		{"DTLS", audioLine(t, "m=audio 4000 UDP/TLS/RTP/SAVPF 0"), opt, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := offerLine(tc.m, tc.from, plain)
			var na *notAcceptable
			if !errors.As(err, &na) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("offerLine = %v, want a refusal saying %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), key80) || strings.Contains(err.Error(), key28) {
				t.Errorf("the reason shows the key: %v", err)
			}
		})
	}
}

// TestNegotiate runs an offer and its answer through the SBC and checks
// what each leg negotiated and what each peer is told.
func TestNegotiate(t *testing.T) {
	off := policy(t, "off", "PCMA", "PCMU", "telephone-event")
	opt := policy(t, "optional", "PCMU", "PCMA", "telephone-event")
	mand := policy(t, "mandatory", "PCMU", "telephone-event")

	t.Run("SRTP caller, plain A-law carrier", func(t *testing.T) {
		offer := audioLine(t, "m=audio 4000 RTP/SAVP 0 101",
			"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
			"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"+key80,
			"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"+key80)
		o, err := offerLine(offer, opt, off)
		if err != nil {
			t.Fatal(err)
		}
		if o.sent.Proto != "RTP/AVP" || len(o.sent.Crypto) != 0 {
			t.Errorf("offer to a plain carrier: %+v", o.sent)
		}
		if got := fmtCodecs(o.sent.Codecs); got != "8 PCMA/8000,0 PCMU/8000,101 telephone-event/8000 0-15" {
			t.Errorf("offered codecs %s", got)
		}
		ans := audioLine(t, "m=audio 5000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000")
		a, b, line, err := o.answerLine(ans, off)
		if err != nil {
			t.Fatal(err)
		}
		if b.SRTP != nil || fmtFormats(b.Formats) != "8 PCMA,101 telephone-event" {
			t.Errorf("carrier leg: %s %v", fmtFormats(b.Formats), b.SRTP)
		}
		if a.SRTP == nil || a.SRTP.Suite != media.AES_CM_128_HMAC_SHA1_32 || fmtFormats(a.Formats) != "0 PCMU,101 telephone-event" {
			t.Errorf("caller leg: %s %v", fmtFormats(a.Formats), a.SRTP)
		}
		if line.Proto != "RTP/SAVP" || len(line.Crypto) != 1 || line.Crypto[0].Tag != 1 || line.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_32" {
			t.Errorf("answer to the caller: %+v", line)
		}
		if bytes.Equal(line.Crypto[0].Key, a.SRTP.Recv) || !bytes.Equal(line.Crypto[0].Key, a.SRTP.Send) {
			t.Error("the SBC must answer with a key of its own, and send with it")
		}
	})

	t.Run("plain carrier, mandatory SRTP phone", func(t *testing.T) {
		offer := audioLine(t, "m=audio 4000 RTP/AVP 8")
		o, err := offerLine(offer, off, mand)
		if err != nil {
			t.Fatal(err)
		}
		if o.sent.Proto != "RTP/SAVP" || len(o.sent.Crypto) != 3 {
			t.Fatalf("offer to a mandatory leg: %+v", o.sent)
		}
		keys := map[string]bool{}
		for _, c := range o.sent.Crypto {
			if s, _ := media.ParseSuite(c.Suite); len(c.Key) != s.KeyLen() || keys[string(c.Key)] {
				t.Errorf("crypto %d %s: key of %d bytes, or reused", c.Tag, c.Suite, len(c.Key))
			}
			keys[string(c.Key)] = true
		}
		if got := fmtCodecs(o.sent.Codecs); got != "0 PCMU/8000" {
			t.Errorf("offered %s: want PCMU only, no telephone-event (the carrier has none)", got)
		}
		// The phone picks tag 2 (GCM).
		ans := audioLine(t, "m=audio 5000 RTP/SAVP 0", "a=crypto:2 AEAD_AES_128_GCM inline:"+key28)
		a, b, line, err := o.answerLine(ans, mand)
		if err != nil {
			t.Fatal(err)
		}
		if b.SRTP == nil || b.SRTP.Suite != media.AEAD_AES_128_GCM || !bytes.Equal(b.SRTP.Send, o.sent.Crypto[1].Key) {
			t.Errorf("phone leg SRTP %v", b.SRTP)
		}
		if a.SRTP != nil || line.Proto != "RTP/AVP" || fmtCodecs(line.Codecs) != "8" {
			t.Errorf("carrier answer %+v (want its A-law kept, transcoded)", line)
		}
		if p := codec.NewPlan(a.Formats, b.Formats); p.Action(8).Conv == nil {
			t.Error("A-law to µ-law needs a conversion")
		}
	})

	t.Run("answers refused", func(t *testing.T) {
		offer := audioLine(t, "m=audio 4000 RTP/AVP 0")
		for name, tc := range map[string]struct {
			to  *MediaPolicy
			ans sdp.Media
		}{
			"no offered codec":    {opt, audioLine(t, "m=audio 5000 RTP/AVP 18")},
			"tag not offered":     {opt, audioLine(t, "m=audio 5000 RTP/AVP 0", "a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:"+key80)},
			"suite changed":       {opt, audioLine(t, "m=audio 5000 RTP/AVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"+key80)},
			"mandatory, plain":    {mand, audioLine(t, "m=audio 5000 RTP/SAVP 0")},
			"profile changed":     {mand, audioLine(t, "m=audio 5000 RTP/AVP 0")},
			"short key in answer": {opt, audioLine(t, "m=audio 5000 RTP/AVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key28)},
		} {
			o, err := offerLine(offer, off, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			var na *notAcceptable
			if _, _, _, err := o.answerLine(tc.ans, tc.to); !errors.As(err, &na) {
				t.Errorf("%s: answerLine = %v, want a refusal", name, err)
			}
		}
	})

	t.Run("optional, declined", func(t *testing.T) {
		o, err := offerLine(audioLine(t, "m=audio 4000 RTP/AVP 0"), off, opt)
		if err != nil {
			t.Fatal(err)
		}
		if o.sent.Proto != "RTP/AVP" || len(o.sent.Crypto) != 3 {
			t.Errorf("optional offers SDES on RTP/AVP: %+v", o.sent)
		}
		_, b, _, err := o.answerLine(audioLine(t, "m=audio 5000 RTP/AVP 0"), opt)
		if err != nil || b.SRTP != nil {
			t.Errorf("a plain answer to an optional offer: %v %v", b.SRTP, err)
		}
	})
}

func fmtCodecs(cs []sdp.Codec) string {
	var s []string
	for _, c := range cs {
		s = append(s, strings.TrimSpace(strings.Join([]string{itoa(c.PT), c.Name, c.Fmtp}, " ")))
	}
	return strings.Join(s, ",")
}

func fmtFormats(fs []codec.Format) string {
	var s []string
	for _, f := range fs {
		s = append(s, itoa(int(f.PT))+" "+f.Encoding.String())
	}
	return strings.Join(s, ",")
}

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzNegotiate: any offer and answer, under each policy, either negotiate
// or are refused; never a panic, and the SBC's keys are never the peer's.
func FuzzNegotiate(f *testing.F) {
	f.Add("m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key80,
		"m=audio 5000 RTP/AVP 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key80)
	f.Add("m=audio 4000 RTP/AVP 8 0\r\n", "m=audio 5000 RTP/SAVP 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=crypto:2 AEAD_AES_128_GCM inline:"+key28)
	policies := []*MediaPolicy{}
	for _, mode := range []string{SRTPOff, SRTPOptional, SRTPMandatory} {
		p := &MediaPolicy{SRTP: mode}
		p.setDefaults()
		p.validate("fuzz")
		policies = append(policies, p)
	}
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	f.Fuzz(func(t *testing.T, offer, answer string) {
		o, err := sdp.Parse([]byte(head + offer))
		if err != nil || len(o.Media) == 0 || o.Media[0].Type != "audio" || o.Media[0].Port == 0 {
			return
		}
		a, err := sdp.Parse([]byte(head + answer))
		if err != nil || len(a.Media) == 0 {
			return
		}
		for _, from := range policies {
			for _, to := range policies {
				lo, err := offerLine(o.Media[0], from, to)
				if err != nil {
					continue
				}
				off, ans, line, err := lo.answerLine(a.Media[0], to)
				if err != nil {
					continue
				}
				for _, c := range o.Media[0].Crypto {
					for _, ours := range append(line.Crypto, lo.sent.Crypto...) {
						if bytes.Equal(c.Key, ours.Key) {
							t.Fatal("the SBC sends with the peer's key")
						}
					}
				}
				if len(off.Formats) == 0 || len(ans.Formats) == 0 {
					t.Fatalf("negotiated without formats: %v %v", off.Formats, ans.Formats)
				}
			}
		}
	})
}
