package control

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// WebhookConfig is [control.webhooks]: where the SBC may send the HTTP
// requests customers' URLs ask for (a number's SmsUrl, a message's
// StatusCallback). A URL is the customer's to choose and the SBC's to
// fetch: unchecked, it would reach the operator's own network (server-
// side request forgery). So only https:// URLs to public addresses, by
// default; the address is checked again where the request is made, after
// name resolution (a name may point anywhere).
type WebhookConfig struct {
	// AllowHTTP admits http:// URLs (the request and its signature travel
	// in clear).
	AllowHTTP bool `toml:"allow_http"`
	// AllowPrivateNetworks admits loopback, private, link-local and other
	// non-public addresses: for operators whose customers' servers sit in
	// the operator's own network, and for tests.
	AllowPrivateNetworks bool `toml:"allow_private_networks"`
	// QueueSize bounds the webhooks waiting (to be sent, or for a retry):
	// beyond it new ones are dropped and counted, so a dead endpoint
	// cannot grow memory. Default 10000.
	QueueSize int `toml:"queue_size"`
	// Attempts is how often a webhook is tried before it is given up
	// (network errors, timeouts, 5xx and 429 are retried). Default 5.
	Attempts int `toml:"attempts"`
	// Backoff is the wait before the first retry, doubled for each next
	// one (capped at 5 minutes). Default 5s.
	Backoff time.Duration `toml:"backoff"`
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration `toml:"timeout"`
	// Workers is how many webhooks are in flight at once (connections
	// kept alive per receiver as many). Default 32.
	Workers int `toml:"workers"`
}

// SetDefaults fills in zero values.
func (w *WebhookConfig) SetDefaults() {
	if w.QueueSize == 0 {
		w.QueueSize = 10000
	}
	if w.Attempts == 0 {
		w.Attempts = 5
	}
	if w.Backoff == 0 {
		w.Backoff = 5 * time.Second
	}
	if w.Timeout == 0 {
		w.Timeout = 10 * time.Second
	}
	if w.Workers == 0 {
		w.Workers = 32
	}
}

// Validate names each bad key.
func (w *WebhookConfig) Validate() []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("control.webhooks.%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	if w.QueueSize < 1 || w.QueueSize > 1_000_000 {
		bad("queue_size", w.QueueSize, "webhooks from 1 to 1000000")
	}
	if w.Attempts < 1 || w.Attempts > 20 {
		bad("attempts", w.Attempts, "tries from 1 to 20")
	}
	if w.Backoff < 10*time.Millisecond || w.Backoff > time.Hour {
		bad("backoff", w.Backoff, `a duration from "10ms" to "1h"`)
	}
	if w.Workers < 1 || w.Workers > 1024 {
		bad("workers", w.Workers, "webhooks in flight from 1 to 1024")
	}
	if w.Timeout < 100*time.Millisecond || w.Timeout > 2*time.Minute {
		bad("timeout", w.Timeout, `a duration from "100ms" to "2m"`)
	}
	return errs
}

// maxURLLen bounds a webhook URL, as the store keeps it.
const maxURLLen = 1024

// CheckURL tells why raw is no URL the SBC may call, or nil. Empty is no
// URL and fine.
func (w WebhookConfig) CheckURL(raw string) error {
	if raw == "" {
		return nil
	}
	want := "an https:// URL"
	if w.AllowHTTP {
		want = "an http(s):// URL"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > maxURLLen || u.Host == "" || u.Opaque != "" || strings.ContainsAny(raw, " \t\r\n\x00"):
		return fmt.Errorf("%s of at most %d characters", want, maxURLLen)
	case u.Scheme != "https" && !(w.AllowHTTP && u.Scheme == "http"):
		return fmt.Errorf("%q: %s (control.webhooks.allow_http admits http://)", u.Scheme+"://", want)
	case u.User != nil:
		return fmt.Errorf("%s without credentials in it (requests are signed instead)", want)
	}
	if w.AllowPrivateNetworks {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		if !PublicAddr(ip) {
			return fmt.Errorf("%s: not a public address (control.webhooks.allow_private_networks admits it)", host)
		}
		return nil
	}
	for _, local := range []string{"localhost", "localdomain", "local", "internal", "home.arpa"} {
		if host == local || strings.HasSuffix(host, "."+local) {
			return fmt.Errorf("%s: a local name (control.webhooks.allow_private_networks admits it)", host)
		}
	}
	if !strings.Contains(host, ".") {
		return fmt.Errorf("%s: a name without a domain resolves on the SBC's own network", host)
	}
	return nil
}

// notPublic are the ranges no webhook may reach unless
// allow_private_networks: this host, private networks, link-local (cloud
// metadata services live there), shared (carrier-grade NAT), documentation,
// benchmarking, multicast and reserved space (RFC 6890 and its IPv6 kin).
var notPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/3",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// PublicAddr tells whether ip is a public unicast address a webhook may
// be sent to. IPv4-mapped and NAT64 (64:ff9b::/96) addresses are judged
// by the IPv4 address inside.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() && netip.MustParsePrefix("64:ff9b::/96").Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
