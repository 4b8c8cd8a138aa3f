package digest

import (
	"fmt"
	"strings"
)

// MaxHeaderLen bounds the header values Parse reads: a credential is a
// few hundred bytes, and a flood must not make us scan megabytes.
const MaxHeaderLen = 4096

// Params are the parameters of a Digest header value, by lower-cased name
// (auth-param names are case-insensitive, RFC 7235 §2.1), unquoted.
type Params map[string]string

// Parse reads a Digest credential (Authorization, Proxy-Authorization) or
// challenge (WWW-Authenticate, Proxy-Authenticate) header value:
//
//	Digest name=token, name="quoted \"string\"", ...
//
// The scheme is case-insensitive, values are tokens or quoted-strings
// with backslash escapes (RFC 3261 §25.1), and whitespace may surround
// '=' and ','. A duplicate parameter is an error: which one to believe?
// Control characters (tab aside) are refused even when escaped: no
// Digest parameter holds one, and they would end up in logs.
func Parse(header string) (Params, error) {
	if len(header) > MaxHeaderLen {
		return nil, ErrTooLong
	}
	scheme, s := token(skipSpace(header))
	if !strings.EqualFold(scheme, "Digest") || s == "" || !isSpace(s[0]) {
		return nil, fmt.Errorf("%w: no Digest scheme", ErrMalformed)
	}
	p := Params{}
	for {
		var name, value string
		name, s = token(skipSpace(s))
		s = skipSpace(s)
		if name == "" || s == "" || s[0] != '=' {
			return nil, fmt.Errorf("%w: parameter name at byte %d", ErrMalformed, len(header)-len(s))
		}
		s = skipSpace(s[1:])
		if s != "" && s[0] == '"' {
			var err error
			if value, s, err = quoted(s); err != nil {
				return nil, err
			}
		} else if value, s = token(s); value == "" {
			return nil, fmt.Errorf("%w: value of %q", ErrMalformed, name)
		}
		name = strings.ToLower(name)
		if _, dup := p[name]; dup {
			return nil, fmt.Errorf("%w: duplicate %q", ErrMalformed, name)
		}
		p[name] = value
		s = skipSpace(s)
		if s == "" {
			return p, nil
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("%w: expected ',' at byte %d", ErrMalformed, len(header)-len(s))
		}
		s = s[1:]
	}
}

// quoted reads the quoted-string at the start of s (s[0] is '"') and
// returns its unescaped content and what follows it.
func quoted(s string) (value, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return b.String(), s[i+1:], nil
		}
		if c == '\\' {
			if i++; i == len(s) {
				break
			}
			c = s[i]
		}
		if isCtl(c) {
			break
		}
		b.WriteByte(c)
	}
	return "", "", fmt.Errorf("%w: bad quoted-string", ErrMalformed)
}

// quote writes v as a quoted-string.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// token splits the RFC 3261 token at the start of s from what follows.
func token(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// isSpace accepts CR and LF too: a folded header may reach us unfolded
// or not.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isCtl(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

func skipSpace(s string) string {
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}
