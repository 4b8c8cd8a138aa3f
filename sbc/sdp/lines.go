package sdp

import (
	"strconv"
	"strings"
)

// maxBodySize bounds the work one SDP body can cost. A SIP message over UDP
// cannot exceed 64 KiB, and no real offer comes near it.
const maxBodySize = 64 << 10

// Placeholders handed to pion for every m= line: its parser accepts only the
// media types and transport protocols it knows, while RFC 4566 §5.14 allows
// any token, and "m=image 49170 udptl t38" (T.38 fax) is common on SIP trunks.
// The real tokens are put back after pion has parsed the body.
const (
	placeholderMedia = "audio"
	placeholderProto = "RTP/AVP"
)

// mline is what the pre-pass keeps of one m= line.
type mline struct {
	media, proto string
	line         int // 1-based line number in the input
}

// prepare checks the body line by line and returns the text to hand to pion.
// It works around where pion is too lax or too strict for SIP use:
//   - pion accepts "" or "v=0" alone as a complete SDP: v=, o=, s= and t=
//     are required here (RFC 4566 §5);
//   - pion's readLine fails on a last line without a newline and counts every
//     CR of a line as part of the line end (so a bare CR inside a value
//     truncates it): lines are split on LF, one trailing CR removed, any other
//     CR or NUL rejected (RFC 4566 §5: text fields exclude CR, LF, NUL), and
//     the text handed on always ends in CRLF;
//   - pion rejects unknown b= types where RFC 4566 §5.8 says a parser MUST
//     ignore them: such lines are dropped;
//   - pion takes an empty v= for v=0, an empty number in o= or t= for 0,
//     and wraps a number beyond 64 bits silently, which would change the
//     o= sess-id and sess-version we promise to keep: all rejected;
//   - pion rejects m= media types and protocols it does not know: see
//     placeholderMedia; the m= line is parsed here and handed on canonical.
func prepare(body []byte) (string, []mline, error) {
	if len(body) == 0 {
		return "", nil, malformed(0, "empty body")
	}
	if len(body) > maxBodySize {
		return "", nil, malformed(0, "body of %d bytes exceeds %d", len(body), maxBodySize)
	}

	var (
		out    strings.Builder
		mlines []mline
		seen   [4]bool // v, o, s, t
	)
	out.Grow(len(body) + 32)
	rest := string(body)
	for n := 1; rest != ""; n++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue // pion skips blank lines too; some stacks end the body with one
		}
		if strings.ContainsAny(line, "\r\x00") {
			return "", nil, malformed(n, "CR or NUL inside a line")
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return "", nil, malformed(n, "%q is not a <type>=<value> line", clip(line))
		}
		value := line[2:]
		switch line[0] {
		case 'v':
			seen[0] = true
			if value != "0" {
				return "", nil, malformed(n, "v=%q, want v=0 (RFC 4566 §5.1)", clip(value))
			}
		case 'o':
			seen[1] = true
			f := fields(value)
			if len(f) < 3 {
				return "", nil, malformed(n, "o= needs username, sess-id and sess-version")
			}
			if err := uint64s(n, "o=", f[1:3]); err != nil {
				return "", nil, err
			}
		case 's':
			seen[2] = true
		case 't':
			seen[3] = true
			f := fields(value)
			if len(f) != 2 {
				return "", nil, malformed(n, "t= needs start and stop time")
			}
			if err := uint64s(n, "t=", f); err != nil {
				return "", nil, err
			}
		case 'b':
			if !knownBandwidth(value) {
				continue
			}
		case 'm':
			ml, canonical, err := parseMLine(n, value)
			if err != nil {
				return "", nil, err
			}
			mlines = append(mlines, ml)
			line = canonical
		}
		out.WriteString(line)
		out.WriteString("\r\n")
	}
	for i, t := range []string{"v=", "o=", "s=", "t="} {
		if !seen[i] {
			return "", nil, malformed(0, "no %s line", t)
		}
	}

	return out.String(), mlines, nil
}

// uint64s checks that numeric fields fit pion's uint64: it reads an empty
// field as 0 and wraps an overflow silently.
func uint64s(n int, typ string, f []string) error {
	for _, v := range f {
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return malformed(n, "%s field %q is not a 64-bit unsigned number", typ, clip(v))
		}
	}

	return nil
}

// parseMLine parses "<media> <port>[/<count>] <proto> <fmt> ..." (RFC 4566
// §5.14) and returns the line to hand to pion.
func parseMLine(n int, value string) (mline, string, error) {
	f := fields(value)
	if len(f) < 4 {
		return mline{}, "", malformed(n, "m= needs media, port, proto and at least one format")
	}
	if !isToken(f[0]) {
		return mline{}, "", malformed(n, "m= media %q is not a token", clip(f[0]))
	}
	portStr, count, hasCount := strings.Cut(f[1], "/")
	if _, ok := parsePort(portStr); !ok {
		return mline{}, "", malformed(n, "m= port %q is not a number in 0-65535", clip(portStr))
	}
	if hasCount {
		if c, ok := parsePort(count); !ok || c < 1 {
			return mline{}, "", malformed(n, "m= port count %q is not a positive number", clip(count))
		}
	}
	for p := range strings.SplitSeq(f[2], "/") {
		if !isToken(p) {
			return mline{}, "", malformed(n, "m= proto %q is not a token", clip(f[2]))
		}
	}
	for _, fm := range f[3:] {
		if !isToken(fm) {
			return mline{}, "", malformed(n, "m= format %q is not a token", clip(fm))
		}
	}
	canonical := "m=" + placeholderMedia + " " + f[1] + " " + placeholderProto + " " + strings.Join(f[3:], " ")

	return mline{media: f[0], proto: f[2], line: n}, canonical, nil
}

// knownBandwidth reports whether pion can parse the b= value's type; the
// others are dropped (RFC 4566 §5.8). A known type with a bad value is left
// for pion to reject.
func knownBandwidth(value string) bool {
	typ, _, _ := strings.Cut(value, ":")
	switch typ {
	case "CT", "AS", "TIAS", "RS", "RR":
		return true
	}

	return strings.HasPrefix(typ, "X-")
}

// parsePort parses a decimal port in 0-65535, digits only (strconv.Atoi
// would take a sign).
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	p := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		p = p*10 + int(s[i]-'0')
	}

	return p, p <= 65535
}

// fields splits on SP and HTAB only, as pion's lexer does.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
}

// isToken reports whether s is an RFC 4566 §9 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`{|}~", c) >= 0:
		default:
			return false
		}
	}

	return true
}

// clip shortens peer-supplied text quoted in an error.
func clip(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}

	return s
}
