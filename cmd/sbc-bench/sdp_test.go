//go:build linux

package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSDPRoundTrip(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.10:40002")
	got, err := mediaAddr(sdpFor(addr, 7, ""))
	if err != nil || got != addr {
		t.Fatalf("mediaAddr(sdpFor(%v)) = %v, %v", addr, got, err)
	}
}

func TestMediaAddr(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
	tests := []struct {
		name, sdp string
		want      string
		shouldErr string
	}{
		{"session c=", head + "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\n", "127.0.0.1:30000", ""},
		{"media c= wins", head + "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\nc=IN IP4 127.0.0.2\r\n", "127.0.0.2:30000", ""},
		{"first audio line", head + "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 30004 RTP/AVP 96\r\nm=audio 30000 RTP/AVP 8\r\n", "127.0.0.1:30000", ""},
		{"rejected", head + "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\n", "", "rejected"},
		{"no c=", head + "t=0 0\r\nm=audio 30000 RTP/AVP 8\r\n", "", "without a c="},
		{"no audio", head + "c=IN IP4 127.0.0.1\r\nt=0 0\r\n", "", "no audio"},
		{"not sdp", "hello", "", "parse sdp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mediaAddr([]byte(tc.sdp))
			if tc.shouldErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.shouldErr) {
					t.Errorf("error %v; want one containing %q", err, tc.shouldErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Errorf("mediaAddr = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}
