//go:build linux

package rtpengine

import (
	"reflect"
	"strings"
	"testing"
)

func TestBencodeEncode(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"spam", "4:spam"},
		{"", "0:"},
		{[]byte("v=0\r\n"), "5:v=0\r\n"},
		{42, "i42e"},
		{int64(-3), "i-3e"},
		{uint64(0), "i0e"},
		{[]string{"origin", "session-connection"}, "l6:origin18:session-connectione"},
		{[]any{"a", 1, []any{}}, "l1:ai1elee"},
		// Keys go out sorted (BEP 3).
		{Dict{"sdp": "x", "command": "offer", "ICE": "remove"}, "d3:ICE6:remove7:command5:offer3:sdp1:xe"},
		{Dict{}, "de"},
	}
	for _, tc := range tests {
		got, err := appendBencode(nil, tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("appendBencode(%#v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := appendBencode(nil, Dict{"x": 1.5}); err == nil || !strings.Contains(err.Error(), `key "x"`) {
		t.Errorf("a float: error %v; want one naming the key", err)
	}
}

func TestBencodeDecode(t *testing.T) {
	tests := []struct {
		in        string
		want      any
		shouldErr string
	}{
		{"4:spam", "spam", ""},
		{"0:", "", ""},
		{"i-42e", int64(-42), ""},
		{"i0e", int64(0), ""},
		{"le", []any{}, ""},
		{"l4:spami7ee", []any{"spam", int64(7)}, ""},
		// rtpengine does not sort its keys; neither must the decoder.
		{"d6:result2:ok3:sdp3:v=0e", Dict{"result": "ok", "sdp": "v=0"}, ""},
		{"d1:bi1e1:ai2ee", Dict{"a": int64(2), "b": int64(1)}, ""},
		{"d5:statsd7:packetsi10eee", Dict{"stats": Dict{"packets": int64(10)}}, ""},
		{"", nil, "unexpected end"},
		{"i-0e", nil, "integer"},
		{"i03e", nil, "integer"},
		{"i+3e", nil, "integer"},
		{"ie", nil, "integer"},
		{"i1", nil, "without its 'e'"},
		{"i99999999999999999999e", nil, "out of range"},
		{"5:spam", nil, "5 bytes, 4 left"},
		{"-1:x", nil, "unexpected byte"},
		{"01:x", nil, "length"},
		{"l4:spam", nil, "list without"},
		{"d3:key", nil, "unexpected end"},
		{"di1ei2ee", nil, "dictionary key"},
		{"d1:ai1e", nil, "dictionary without"},
		{"4:spamx", nil, "after the value"},
		{"x", nil, "unexpected byte"},
		{strings.Repeat("l", maxDepth+2) + strings.Repeat("e", maxDepth+2), nil, "nested deeper"},
	}
	for _, tc := range tests {
		got, err := decodeBencode([]byte(tc.in))
		if tc.shouldErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.shouldErr) {
				t.Errorf("decode %q: error %v; want one containing %q", tc.in, err, tc.shouldErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decode %q = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzBencode: whatever decodes encodes back to bytes that decode to the
// same value, and nothing panics.
func FuzzBencode(f *testing.F) {
	for _, s := range []string{"d7:command4:pinge", "d6:result2:ok3:sdp3:v=0e", "l4:spami-7ee", "i0e", "d1:ad1:bl1:ceee"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeBencode(b)
		if err != nil {
			return
		}
		enc, err := appendBencode(nil, v)
		if err != nil {
			t.Fatalf("decoded %q to %#v, which does not encode: %v", b, v, err)
		}
		w, err := decodeBencode(enc)
		if err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%q: decoded %#v, re-encoded %q, decoded again %#v, %v", b, v, enc, w, err)
		}
	})
}
