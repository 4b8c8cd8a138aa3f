//go:build linux

package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"

	"github.com/pion/srtp/v3"
)

// With -srtp SUITE the caller's leg (A) is SRTP, keyed with SDES (RFC
// 4568): the UAC offers RTP/SAVP with one a=crypto line of a fresh key per
// call, encrypts what its A ends send and decrypts what they receive with
// the key of the answer. The callee's leg stays plain RTP, so the relay
// bridges SRTP and RTP: what issue 5's relay-level figures measure. The
// harness uses pion/srtp directly, not the daemon's code.

// srtpSuites are the suites -srtp takes: profile and key+salt length.
var srtpSuites = map[string]struct {
	profile srtp.ProtectionProfile
	keyLen  int
}{
	"AES_CM_128_HMAC_SHA1_80": {srtp.ProtectionProfileAes128CmHmacSha1_80, 30},
	"AES_CM_128_HMAC_SHA1_32": {srtp.ProtectionProfileAes128CmHmacSha1_32, 30},
	"AEAD_AES_128_GCM":        {srtp.ProtectionProfileAeadAes128Gcm, 28},
}

// srtpOverhead is the most SRTP adds to a packet (the GCM tag).
const srtpOverhead = 16

// sdesKey is one side's key for suite: what goes in its a=crypto line.
type sdesKey struct {
	suite string
	key   []byte
}

func newSDESKey(suite string) (sdesKey, error) {
	s, ok := srtpSuites[suite]
	if !ok {
		return sdesKey{}, fmt.Errorf("srtp suite %q", suite)
	}
	k := make([]byte, s.keyLen)
	if _, err := rand.Read(k); err != nil {
		return sdesKey{}, err
	}
	return sdesKey{suite, k}, nil
}

// line is the value of its a=crypto attribute, tag 1.
func (k sdesKey) line() string {
	return "1 " + k.suite + " inline:" + base64.StdEncoding.EncodeToString(k.key)
}

// context makes an SRTP context of the key; with replay protection when it
// decrypts.
func (k sdesKey) context(decrypt bool) (*srtp.Context, error) {
	s := srtpSuites[k.suite]
	var opts []srtp.ContextOption
	if decrypt {
		opts = append(opts, srtp.SRTPReplayProtection(128))
	}
	return srtp.CreateContext(k.key[:16], k.key[16:], s.profile, opts...)
}

var cryptoLine = regexp.MustCompile(`(?m)^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/]+={0,2})`)

// answerKey finds the key of an SDP answer's a=crypto line for suite.
func answerKey(body []byte, suite string) (sdesKey, error) {
	for _, m := range cryptoLine.FindAllSubmatch(body, -1) {
		if string(m[2]) != suite {
			continue
		}
		enc := base64.StdEncoding
		if len(m[3])%4 != 0 {
			enc = base64.RawStdEncoding
		}
		key, err := enc.DecodeString(string(m[3]))
		if err != nil || len(key) != srtpSuites[suite].keyLen {
			return sdesKey{}, fmt.Errorf("answer a=crypto:%s %s: key of %d bytes, want %d", m[1], suite, len(key), srtpSuites[suite].keyLen)
		}
		return sdesKey{suite, key}, nil
	}
	return sdesKey{}, fmt.Errorf("answer has no a=crypto with %s", strconv.Quote(suite))
}

// offerSRTP makes call i's key for an offer and the context its A end
// encrypts with.
func (g *generator) offerSRTP(i int, suite string) (sdesKey, error) {
	key, err := newSDESKey(suite)
	if err != nil {
		return key, err
	}
	g.srtpTx[i], err = key.context(false)
	return key, err
}

// answerSRTP takes the relay's key from call i's answer (never ours back)
// into the context its A end decrypts with.
func (g *generator) answerSRTP(i int, ours sdesKey, answer []byte) error {
	theirs, err := answerKey(answer, ours.suite)
	if err != nil {
		return err
	}
	if string(theirs.key) == string(ours.key) {
		return fmt.Errorf("the relay answered with our own SRTP key")
	}
	g.srtpRx[i], err = theirs.context(true)
	return err
}
