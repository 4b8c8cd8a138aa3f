package media

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/srtp/v3"
)

// Suite is an SRTP crypto suite negotiated with SDES (RFC 4568 §6.2,
// RFC 7714 §14.2).
type Suite uint8

const (
	AES_CM_128_HMAC_SHA1_80 Suite = iota + 1 //nolint:revive // the RFC's names
	AES_CM_128_HMAC_SHA1_32
	AEAD_AES_128_GCM
)

var suites = [...]struct {
	name    string
	profile srtp.ProtectionProfile
	keyLen  int // master key + master salt
}{
	AES_CM_128_HMAC_SHA1_80: {"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16 + 14},
	AES_CM_128_HMAC_SHA1_32: {"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16 + 14},
	AEAD_AES_128_GCM:        {"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16 + 12},
}

// Suites lists every suite the relay supports, in its default order of
// preference.
func Suites() []Suite {
	return []Suite{AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_32}
}

// ParseSuite returns the suite of an SDP name, case-sensitively as RFC 4568
// §9.2 registers them.
func ParseSuite(name string) (Suite, bool) {
	for s := range suites {
		if s != 0 && suites[s].name == name {
			return Suite(s), true
		}
	}
	return 0, false
}

func (s Suite) valid() bool { return s != 0 && int(s) < len(suites) }

func (s Suite) String() string {
	if s.valid() {
		return suites[s].name
	}
	return fmt.Sprintf("Suite(%d)", uint8(s))
}

// KeyLen is the length of the suite's master key followed by its salt, as
// an a=crypto inline key carries them.
func (s Suite) KeyLen() int {
	if s.valid() {
		return suites[s].keyLen
	}
	return 0
}

// NewKey returns fresh key material for s from crypto/rand: a new one per
// leg and per call, never the peer's.
func (s Suite) NewKey() ([]byte, error) {
	if !s.valid() {
		return nil, fmt.Errorf("new SRTP key: %w", ErrBadSuite)
	}
	k := make([]byte, s.KeyLen())
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new SRTP key: %w", err)
	}
	return k, nil
}

// SRTP is a leg's SDES keying: what the peer encrypts with, and what the
// relay encrypts with towards it. Its String never shows a key.
type SRTP struct {
	Suite Suite
	Recv  []byte // the peer's key||salt: decrypts what it sends
	Send  []byte // our key||salt: encrypts what it receives
}

func (k *SRTP) String() string {
	if k == nil {
		return "RTP"
	}
	return "SRTP " + k.Suite.String()
}

// replayWindow is how far back an SRTP or SRTCP index may be and still be
// accepted once (RFC 3711 §3.3.2 asks for at least 64).
const replayWindow = 128

// newContext makes the SRTP/SRTCP context of one key; with replay
// protection for the receiving side.
func (s Suite) newContext(key []byte, receive bool) (*srtp.Context, error) {
	if !s.valid() {
		return nil, ErrBadSuite
	}
	if len(key) != s.KeyLen() {
		return nil, fmt.Errorf("%w: %s takes %d bytes of key and salt, got %d", ErrBadKey, s, s.KeyLen(), len(key))
	}
	var opts []srtp.ContextOption
	if receive {
		opts = append(opts, srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	}
	c, err := srtp.CreateContext(key[:16], key[16:], suites[s].profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return c, nil
}

// srtpFailure tells an authentication failure from a replay in an error
// of pion/srtp, whose replay error is not exported.
func srtpFailure(err error) (auth, replay bool) {
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		return true, false
	}
	return false, strings.Contains(err.Error(), "duplicated")
}
