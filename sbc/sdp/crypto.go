package sdp

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Crypto is one a=crypto attribute (RFC 4568 §9.1) of an m= line:
//
//	a=crypto:<tag> <crypto-suite> inline:<key||salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]
//
// Only what the SBC can use is kept: one inline key. A line it cannot use
// (several keys, an MKI, session parameters, another key method) parses
// with Unsupported set, so that an offer's other lines can still be chosen
// (§5.1.1: the answerer picks one it supports). Errors never quote the key.
type Crypto struct {
	Tag   int    // 1-9 digits, unique per m= line; the answer echoes it
	Suite string // e.g. AES_CM_128_HMAC_SHA1_80; checked by the caller
	// Key is the master key followed by the master salt, decoded.
	Key []byte
	// Unsupported says why the line cannot be used even with a known
	// suite; "" when it can.
	Unsupported string
}

// Value formats c as the value of an a=crypto attribute, key included.
func (c Crypto) Value() string {
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:" + base64.StdEncoding.EncodeToString(c.Key)
}

// String shows c without its key, so that no log or error holds one.
func (c Crypto) String() string {
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:[redacted]"
}

// ParseCrypto parses the value of an a=crypto attribute. Errors wrap
// ErrMalformed.
func ParseCrypto(value string) (Crypto, error) {
	f := fields(value)
	if len(f) < 3 {
		return Crypto{}, malformed(0, "a=crypto needs <tag> <suite> <key-params> (RFC 4568 §9.1)")
	}
	var c Crypto
	if len(f[0]) > 9 || !digits(f[0]) {
		return Crypto{}, malformed(0, "a=crypto tag %q is not 1-9 digits", clip(f[0]))
	}
	c.Tag, _ = strconv.Atoi(f[0])
	if !suiteName(f[1]) {
		return Crypto{}, malformed(0, "a=crypto suite %q is not a name of letters, digits and _", clip(f[1]))
	}
	c.Suite = f[1]
	if len(f) > 3 {
		// Named, never quoted: a parameter's value may be a key
		// (FEC_KEY=inline:...), and the reason reaches logs and Warnings.
		names := make([]string, 0, len(f)-3)
		for _, p := range f[3:] {
			name, _, _ := strings.Cut(p, "=")
			if !suiteName(name) {
				name = "?"
			}
			names = append(names, clip(name))
		}
		c.Unsupported = "session parameters " + strings.Join(names, " ")
	}
	keys := strings.Split(f[2], ";")
	if len(keys) > 1 {
		c.Unsupported = "several keys"
	}
	method, info, ok := strings.Cut(keys[0], ":")
	if !ok {
		return Crypto{}, malformed(0, "a=crypto key-params is not <method>:<info>")
	}
	if method != "inline" {
		c.Unsupported = "key method " + clip(method)
		if !suiteName(method) {
			c.Unsupported = "a key method other than inline"
		}
		return c, nil
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return Crypto{}, malformed(0, "a=crypto inline key has %d |-separated parts, at most 3", len(parts))
	}
	// RFC 4568 §6.1 asks for base64 (RFC 3548), whose padding some
	// implementations leave out (rtpengine for a 28-byte GCM key).
	enc := base64.StdEncoding
	if len(parts[0])%4 != 0 {
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(parts[0])
	if err != nil || len(key) == 0 {
		return Crypto{}, malformed(0, "a=crypto inline key is not base64 (RFC 4568 §6.1)")
	}
	c.Key = key
	for _, p := range parts[1:] {
		switch {
		case strings.Contains(p, ":"): // MKI:length (§6.1)
			v, l, _ := strings.Cut(p, ":")
			n, err := strconv.Atoi(l)
			if !digits(v) || err != nil || n < 1 || n > 128 {
				return Crypto{}, malformed(0, "a=crypto MKI %q is not <value>:<length 1-128>", clip(p))
			}
			c.Unsupported = "an MKI"
		case !lifetime(p):
			return Crypto{}, malformed(0, "a=crypto lifetime %q is not a number or 2^n", clip(p))
		}
	}
	return c, nil
}

// lifetime checks a key lifetime: decimal or "2^" decimal (§6.1). It is
// not enforced: the SBC's packet counts stay far below any sane value, and
// pion refuses to go past the SRTP limit of 2^48.
func lifetime(s string) bool {
	return digits(strings.TrimPrefix(s, "2^"))
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func suiteName(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

// cryptoError names the m= line's crypto attribute an error is about.
func cryptoError(n int, err error) error {
	return fmt.Errorf("a=crypto #%d: %w", n, err)
}
