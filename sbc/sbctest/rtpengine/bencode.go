//go:build linux

package rtpengine

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
)

// Bencoding (BEP 3), the ng protocol's dictionary format: byte strings
// "4:spam", integers "i42e", lists "l...e", dictionaries "d...e" with byte
// string keys. A small codec of our own: the maintained Go ones either are
// not served by the module proxy here or come inside a BitTorrent module with
// a hundred dependencies.

// Dict is a bencoded dictionary as the client sends and receives it.
// Decoded values are string, int64, []any and Dict.
type Dict = map[string]any

// maxDepth bounds the nesting the decoder follows: rtpengine's deepest reply
// (query: tags, medias, streams, stats) is 7 levels.
const maxDepth = 32

// appendBencode appends the encoding of v, which is a string, []byte, int,
// int64, uint64, []string, []any or Dict. Dictionary keys go out sorted, as
// BEP 3 requires (rtpengine does not care).
func appendBencode(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...), nil
	case []byte:
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(b, ':'), v...), nil
	case int:
		return append(strconv.AppendInt(append(b, 'i'), int64(v), 10), 'e'), nil
	case int64:
		return append(strconv.AppendInt(append(b, 'i'), v, 10), 'e'), nil
	case uint64:
		return append(strconv.AppendUint(append(b, 'i'), v, 10), 'e'), nil
	case []string:
		b = append(b, 'l')
		for _, s := range v {
			b, _ = appendBencode(b, s)
		}
		return append(b, 'e'), nil
	case []any:
		b = append(b, 'l')
		for _, e := range v {
			var err error
			if b, err = appendBencode(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case Dict:
		b = append(b, 'd')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b, _ = appendBencode(b, k)
			var err error
			if b, err = appendBencode(b, v[k]); err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
		}
		return append(b, 'e'), nil
	}
	return nil, fmt.Errorf("bencode: cannot encode %T", v)
}

// decodeBencode decodes the one value that b holds; trailing bytes are an
// error.
func decodeBencode(b []byte) (any, error) {
	v, rest, err := decodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("bencode: %d bytes after the value", len(rest))
	}
	return v, nil
}

// decodeValue decodes the value at the start of b and returns the rest.
func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("bencode: unexpected end")
	}
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("bencode: nested deeper than %d", maxDepth)
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, fmt.Errorf("bencode: integer without its 'e'")
		}
		n, err := parseInt(b[1:end])
		if err != nil {
			return nil, nil, err
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		return decodeString(b)
	case c == 'l':
		list := []any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			var v any
			var err error
			if v, b, err = decodeValue(b, depth+1); err != nil {
				return nil, nil, err
			}
			list = append(list, v)
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("bencode: list without its 'e'")
		}
		return list, b[1:], nil
	case c == 'd':
		d := Dict{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			var k string
			var v any
			var err error
			if k, b, err = decodeString(b); err != nil {
				return nil, nil, fmt.Errorf("bencode: dictionary key: %w", err)
			}
			if v, b, err = decodeValue(b, depth+1); err != nil {
				return nil, nil, err
			}
			d[k] = v
		}
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("bencode: dictionary without its 'e'")
		}
		return d, b[1:], nil
	default:
		return nil, nil, fmt.Errorf("bencode: unexpected byte %q", c)
	}
}

// decodeString decodes "<length>:<bytes>" at the start of b.
func decodeString(b []byte) (string, []byte, error) {
	colon := bytes.IndexByte(b, ':')
	if colon < 1 {
		return "", nil, fmt.Errorf("bencode: string without its length")
	}
	n, err := parseInt(b[:colon])
	if err != nil || n < 0 {
		return "", nil, fmt.Errorf("bencode: string length %q", b[:colon])
	}
	b = b[colon+1:]
	if n > int64(len(b)) {
		return "", nil, fmt.Errorf("bencode: string of %d bytes, %d left", n, len(b))
	}
	return string(b[:n]), b[n:], nil
}

// parseInt reads a bencoded integer's digits: no '+', no leading zeros, no
// "-0" (BEP 3).
func parseInt(s []byte) (int64, error) {
	digits := bytes.TrimPrefix(s, []byte("-"))
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' || len(digits) < len(s) && digits[0] == '0' {
		return 0, fmt.Errorf("bencode: integer %q", s)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bencode: integer %q", s)
		}
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bencode: integer %q: out of range", s)
	}
	return n, nil
}
