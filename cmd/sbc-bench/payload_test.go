//go:build linux

package main

import (
	"testing"

	"github.com/pion/rtp"
)

func TestPayloadRoundTrip(t *testing.T) {
	b := newPacket()
	sent := sendTime{mono: 123456789, wall: 1_700_000_000_123_456_789}
	encode(b, 41, 70000, sent)
	if len(b) != 172 {
		t.Fatalf("packet is %d bytes; want 172 (12-byte header + 160-byte G.711 payload)", len(b))
	}
	stream, seq, got, ok := decode(b)
	if !ok || stream != 41 || seq != 70000 || got != sent {
		t.Fatalf("decode = %d, %d, %+v, %v; want 41, 70000, %+v, true", stream, seq, got, ok, sent)
	}

	// Anyone else sees plain RTP: PT 8, sequence and timestamp following
	// the packet count, 160 bytes of payload.
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatalf("not RTP: %v", err)
	}
	if p.Version != 2 || p.PayloadType != 8 || p.SequenceNumber != 70000%65536 ||
		p.Timestamp != 70000*160 || p.SSRC != 42 || len(p.Payload) != 160 || p.Marker || p.Padding {
		t.Errorf("RTP header %+v; want V2 PT8 seq %d ts %d ssrc 42, 160-byte payload", p.Header, 70000%65536, 70000*160)
	}
	if p.Payload[159] != alawSilence {
		t.Errorf("payload filler %#x; want A-law silence %#x", p.Payload[159], alawSilence)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := func() []byte {
		b := newPacket()
		encode(b, 1, 2, sendTime{mono: 3, wall: 4})
		return b
	}
	tests := []struct {
		name   string
		change func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:100] }},
		{"long", func(b []byte) []byte { return append(b, 0) }},
		{"rtp version 1", func(b []byte) []byte { b[0] = 0x40; return b }},
		{"payload type 0", func(b []byte) []byte { b[1] = 0; return b }},
		{"rtcp", func(b []byte) []byte { b[1] = 200; return b }},
		{"no magic", func(b []byte) []byte { b[12] = 'x'; return b }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, ok := decode(tc.change(good())); ok {
				t.Error("decoded; want rejected")
			}
		})
	}
	if _, _, _, ok := decode(good()); !ok {
		t.Error("the unchanged packet was rejected")
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	b := newPacket()
	if n := testing.AllocsPerRun(100, func() { encode(b, 1, 2, sendTime{mono: 3, wall: 4}) }); n != 0 {
		t.Errorf("encode allocates %v times; want 0", n)
	}
}
