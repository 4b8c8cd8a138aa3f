package control

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	strict, lax := WebhookConfig{}, WebhookConfig{AllowHTTP: true, AllowPrivateNetworks: true}
	for _, tt := range []struct {
		url         string
		strict, lax string // "" fine, else a part of the error
	}{
		{"", "", ""},
		{"https://hooks.example.com/sms?x=1", "", ""},
		{"https://93.184.216.34/sms", "", ""},
		{"https://[2606:2800:220:1::1]/sms", "", ""},
		{"http://hooks.example.com/sms", "allow_http", ""},
		{"ftp://hooks.example.com/sms", "https://", "http(s)://"},
		{"https://user:secret@hooks.example.com/", "credentials", "credentials"},
		{"https://127.0.0.1/", "not a public address", ""},
		{"https://10.1.2.3:8443/", "not a public address", ""},
		{"https://169.254.169.254/latest/meta-data/", "not a public address", ""}, // cloud metadata
		{"https://[::1]/", "not a public address", ""},
		{"https://[::ffff:192.168.1.1]/", "not a public address", ""},
		{"https://[64:ff9b::a00:1]/", "not a public address", ""}, // NAT64 of 10.0.0.1
		{"https://[fd00::1]/", "not a public address", ""},
		{"https://localhost:8080/", "local name", ""},
		{"https://metadata.google.internal/", "local name", ""},
		{"https://intranet/", "without a domain", ""},
		{"https://", "https:// URL", "http(s):// URL"},
		{"https://hooks.example.com/" + strings.Repeat("a", 1100), "at most", "at most"},
		{"https://hooks.example.com/a b", "https:// URL", "http(s):// URL"},
	} {
		for _, c := range []struct {
			cfg  WebhookConfig
			want string
		}{{strict, tt.strict}, {lax, tt.lax}} {
			err := c.cfg.CheckURL(tt.url)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("%+v CheckURL(%.60q) = %v; want %q", c.cfg, tt.url, err, c.want)
			}
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true,
		"127.0.0.53": false, "0.0.0.0": false, "192.168.0.1": false, "100.64.0.1": false, "224.0.0.1": false,
		"::": false, "fe80::1": false, "::ffff:10.0.0.1": false, "64:ff9b::808:808": true,
	} {
		if got := PublicAddr(netip.MustParseAddr(ip)); got != want {
			t.Errorf("PublicAddr(%s) = %v; want %v", ip, got, want)
		}
	}
}
