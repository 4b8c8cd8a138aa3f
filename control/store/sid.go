package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// SID prefixes, as the CPaaS API names its resources.
const (
	PrefixAccount = "AC"
	PrefixCall    = "CA"
	PrefixNumber  = "PN"
	PrefixUser    = "CL" // a SIP credential
	PrefixMessage = "SM"
	PrefixAudit   = "AU"
	PrefixAdmin   = "AD"
)

// NewSID is prefix and 32 random hex digits.
func NewSID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ValidSID reports whether s is prefix and 32 lower-case hex digits.
func ValidSID(prefix, s string) bool {
	if len(s) != len(prefix)+32 || s[:len(prefix)] != prefix {
		return false
	}
	for _, c := range s[len(prefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// NewToken is a fresh secret: 32 random hex digits (128 bits).
func NewToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HashToken is what the store keeps of a token. Tokens are random 128-bit
// values, so one SHA-256 is enough (no dictionary to slow down).
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// TokenMatches compares a presented token with a stored hash in constant
// time.
func TokenMatches(token, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(hash)) == 1
}
