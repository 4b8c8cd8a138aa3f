package sbc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"sbc/control"
	"sbc/control/store"
	"sbc/media"
)

// Config is the whole sbc.toml. Each section's struct belongs to the package
// that uses it; Config only composes them.
type Config struct {
	Log    LogConfig    `toml:"log"`
	SIP    SIPConfig    `toml:"sip"`
	Media  media.Config `toml:"media"`
	Calls  CallsConfig  `toml:"calls"`
	Trunks []Trunk      `toml:"trunk"`
	Routes []Route      `toml:"route"`
	// Control is the embedded control plane: accounts, numbers, policy,
	// call logs, the REST API.
	Control control.Config `toml:"control"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text, json
}

// SIPConfig is the [sip] section.
type SIPConfig struct {
	PublicIP  string `toml:"public_ip"`  // written into Via and Contact
	UserAgent string `toml:"user_agent"` // User-Agent / Server header
	// T1 is the RFC 3261 round-trip estimate all SIP timers derive from
	// (Timer B, the INVITE transaction timeout, is 64*T1).
	T1     time.Duration `toml:"t1"`
	Listen []Listener    `toml:"listen"`
	// RateLimit is how many packets per second one source may send to the
	// SIP listeners before the kernel fast path drops the rest (trunks'
	// sources are exempt; 0 = no limit); RateBurst how many it may send at
	// once. Default DefaultRateLimit, and a burst of twice the rate.
	RateLimit *int `toml:"rate_limit"`
	RateBurst int  `toml:"rate_burst"`
	// BanThreshold failures of a source (requests from a source that is
	// no trunk, malformed datagrams from one) within BanWindow ban it for
	// BanTime (ban.go). 0 = no bans. Defaults: DefaultBanThreshold, one
	// minute, ten minutes.
	BanThreshold *int          `toml:"ban_threshold"`
	BanWindow    time.Duration `toml:"ban_window"`
	BanTime      time.Duration `toml:"ban_time"`
	// MaxConnections bounds the TCP and TLS connections peers other than
	// trunks may hold open to the SIP listeners, MaxConnectionsPerSource
	// those of one address (an IPv6 /64); more are closed as they are
	// accepted (connlimit.go).
	MaxConnections          int `toml:"max_connections"`
	MaxConnectionsPerSource int `toml:"max_connections_per_source"`
	// Scanners are User-Agent substrings (any case) of known SIP scanners:
	// their requests get no answer and count as a failure of their source
	// (towards a ban). Default DefaultScanners; [] for none.
	Scanners []string `toml:"scanners"`
	// TLS is the certificate of the TLS listener and of TLS connections
	// the SBC opens to trunks.
	TLS TLSConfig `toml:"tls"`
	// Registrar is the [sip.registrar] section: customer devices.
	Registrar RegistrarConfig `toml:"registrar"`
}

// TLSConfig is the [sip.tls] section.
type TLSConfig struct {
	// Cert and Key are PEM files (the chain, leaf first, and its key),
	// read again on SIGHUP. Empty: a self-signed certificate made in
	// control.data_dir at first start.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// HandshakeTimeout bounds a TLS handshake: a peer that connects and
	// says nothing is dropped after it.
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	// Keepalive is how often the SBC sends a CRLF ping (RFC 5626 §4.4.1)
	// on the TLS and TCP connections it opened to trunks; a connection
	// without a pong within 10 s is closed, the next request opens a new
	// one. 0 disables.
	Keepalive *time.Duration `toml:"keepalive"`
}

// DefaultBanThreshold is sip.ban_threshold's default: a misconfigured peer
// retransmitting one request does not reach it within a minute, a scanner
// does in a second.
const DefaultBanThreshold = 20

// DefaultScanners is sip.scanners' default: the User-Agents of SIPVicious
// (friendly-scanner, sipvicious), sipcli, sip-scan, SIPScan, VaxSIPUserAgent,
// iWar, SIVuS, smap, sundayddr and pplsip.
var DefaultScanners = []string{"friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipscan", "vaxsipuseragent",
	"iwar", "sivus", "smap", "sundayddr", "pplsip"}

// DefaultRateLimit is sip.rate_limit's default, packets/s per source: far
// above what a phone or a busy NAT of phones sends, far below a flood.
const DefaultRateLimit = 200

// Listener is one [[sip.listen]] entry.
type Listener struct {
	Transport string `toml:"transport"` // udp, tcp, tls
	Address   string `toml:"address"`   // ip:port
}

// CallsConfig is the [calls] section.
type CallsConfig struct {
	MaxDuration  time.Duration `toml:"max_duration"`  // 0 disables
	RingTimeout  time.Duration `toml:"ring_timeout"`  // B-leg ringing without final answer
	DrainTimeout time.Duration `toml:"drain_timeout"` // SIGTERM grace for active calls
	// MaxActive is the capacity threshold: beyond it new calls get 503 with
	// Retry-After rather than every call's audio suffering. 0 = only the
	// media port range limits.
	MaxActive int `toml:"max_active"`
	// StateDir keeps a small file per answered call, what a restarted
	// daemon needs to take the call over (persist.go). nil:
	// DefaultStateDir; "": calls end with the daemon that set them up.
	StateDir *string `toml:"state_dir"`
}

// DefaultStateDir is calls.state_dir when the config says nothing.
const DefaultStateDir = "/var/lib/sbc/calls"

// LoadConfig reads, decodes strictly, defaults and validates a config file.
// It has no side effects: nothing is opened but the file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(string(data))
}

// ParseConfig decodes a TOML document into a validated Config.
func ParseConfig(doc string) (*Config, error) {
	var c Config
	md, err := toml.Decode(doc, &c)
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config: unknown key(s) %s; want only the keys documented in sbc.toml", strings.Join(keys, ", "))
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// SetDefaults fills in zero values.
func (c *Config) SetDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.SIP.UserAgent == "" {
		c.SIP.UserAgent = "sbc"
	}
	if c.SIP.T1 == 0 {
		c.SIP.T1 = 500 * time.Millisecond
	}
	if c.SIP.Listen == nil {
		c.SIP.Listen = []Listener{
			{Transport: "udp", Address: "0.0.0.0:5060"},
			{Transport: "tcp", Address: "0.0.0.0:5060"},
			{Transport: "tls", Address: "0.0.0.0:5061"},
		}
	}
	for i := range c.SIP.Listen {
		c.SIP.Listen[i].Transport = strings.ToLower(c.SIP.Listen[i].Transport)
	}
	if c.SIP.RateLimit == nil {
		r := DefaultRateLimit
		c.SIP.RateLimit = &r
	}
	if c.SIP.RateBurst == 0 {
		c.SIP.RateBurst = 2 * *c.SIP.RateLimit
	}
	if c.SIP.MaxConnections == 0 {
		c.SIP.MaxConnections = 10000
	}
	if c.SIP.MaxConnectionsPerSource == 0 {
		c.SIP.MaxConnectionsPerSource = 256
	}
	if c.SIP.BanThreshold == nil {
		n := DefaultBanThreshold
		c.SIP.BanThreshold = &n
	}
	if c.SIP.BanWindow == 0 {
		c.SIP.BanWindow = time.Minute
	}
	if c.SIP.BanTime == 0 {
		c.SIP.BanTime = 10 * time.Minute
	}
	if c.SIP.Scanners == nil {
		c.SIP.Scanners = slices.Clone(DefaultScanners)
	}
	c.SIP.Registrar.setDefaults()
	if c.SIP.TLS.HandshakeTimeout == 0 {
		c.SIP.TLS.HandshakeTimeout = 10 * time.Second
	}
	if c.SIP.TLS.Keepalive == nil {
		k := 30 * time.Second
		c.SIP.TLS.Keepalive = &k
	}
	c.Media.SetDefaults()
	c.Control.SetDefaults()
	if c.Calls.RingTimeout == 0 {
		c.Calls.RingTimeout = 180 * time.Second
	}
	if c.Calls.DrainTimeout == 0 {
		c.Calls.DrainTimeout = 30 * time.Second
	}
	if c.Calls.StateDir == nil {
		d := DefaultStateDir
		c.Calls.StateDir = &d
	}
	for i := range c.Trunks {
		c.Trunks[i].MediaPolicy.setDefaults()
		c.Trunks[i].Transport = strings.ToLower(c.Trunks[i].Transport)
		if c.Trunks[i].SMSLong == "" {
			c.Trunks[i].SMSLong = "split"
		}
		if c.Trunks[i].Transport == "" {
			c.Trunks[i].Transport = "udp"
		}
	}
}

// Validate checks every field and names the key, the value and the expected
// form of each problem. It opens nothing.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, `"debug", "info", "warn" or "error"`)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", c.Log.Format, `"text" or "json"`)
	}

	if ip, err := netip.ParseAddr(c.SIP.PublicIP); err != nil || ip.IsUnspecified() {
		bad("sip.public_ip", c.SIP.PublicIP, "the IP address peers reach the SBC on, e.g. 192.0.2.10")
	}
	if c.SIP.T1 < 10*time.Millisecond || c.SIP.T1 > 10*time.Second {
		bad("sip.t1", c.SIP.T1, `a duration from "10ms" to "10s" (RFC 3261 default "500ms")`)
	}
	if len(c.SIP.Listen) == 0 {
		errs = append(errs, errors.New("sip.listen: empty; want at least one [[sip.listen]] with transport and address"))
	}
	if r := c.SIP.RateLimit; r != nil && (*r < 0 || *r > 1_000_000) {
		bad("sip.rate_limit", *r, "packets per second per source from 0 (no limit) to 1000000")
	}
	if c.SIP.RateBurst < 0 || c.SIP.RateBurst > 10_000_000 || (c.SIP.RateLimit != nil && *c.SIP.RateLimit > 0 && c.SIP.RateBurst == 0) {
		bad("sip.rate_burst", c.SIP.RateBurst, "packets a source may send at once, from 1 to 10000000 (default twice sip.rate_limit)")
	}
	if n := c.SIP.MaxConnections; n < 1 || n > 1_000_000 {
		bad("sip.max_connections", n, "from 1 to 1000000")
	} else if n := c.SIP.MaxConnectionsPerSource; n < 1 || n > c.SIP.MaxConnections {
		bad("sip.max_connections_per_source", n, "from 1 to sip.max_connections")
	}
	if n := c.SIP.BanThreshold; n != nil && (*n < 0 || *n > 1_000_000) {
		bad("sip.ban_threshold", *n, "failures of a source before it is banned, from 0 (no bans) to 1000000")
	}
	if c.SIP.BanWindow < time.Second || c.SIP.BanWindow > 24*time.Hour {
		bad("sip.ban_window", c.SIP.BanWindow, `a duration from "1s" to "24h"`)
	}
	if c.SIP.BanTime < time.Second || c.SIP.BanTime > 7*24*time.Hour {
		bad("sip.ban_time", c.SIP.BanTime, `a duration from "1s" to "168h"`)
	}
	seen := map[string]bool{}
	for i, l := range c.SIP.Listen {
		key := fmt.Sprintf("sip.listen[%d]", i)
		if !validTransport(l.Transport) {
			bad(key+".transport", l.Transport, `"udp", "tcp" or "tls"`)
		}
		ap, err := netip.ParseAddrPort(l.Address)
		switch p := int(ap.Port()); {
		case err != nil:
			bad(key+".address", l.Address, `"ip:port", e.g. "0.0.0.0:5060"`)
		case l.Transport == "udp" && p >= c.Media.PortMin && p <= c.Media.PortMax:
			bad(key+".address", l.Address, fmt.Sprintf("a port outside the media port range %d-%d (media.port_min..port_max)", c.Media.PortMin, c.Media.PortMax))
		}
		if seen[l.Transport] {
			bad(key+".transport", l.Transport, "one listener per transport")
		}
		seen[l.Transport] = true
	}

	for i, sc := range c.SIP.Scanners {
		if strings.TrimSpace(sc) == "" {
			bad(fmt.Sprintf("sip.scanners[%d]", i), sc, "a non-empty User-Agent substring, e.g. \"friendly-scanner\"")
		}
	}
	errs = append(errs, c.SIP.Registrar.validate()...)
	if (c.SIP.TLS.Cert == "") != (c.SIP.TLS.Key == "") {
		bad("sip.tls.key", c.SIP.TLS.Key, "a PEM key file with sip.tls.cert, or both empty (a self-signed certificate)")
	}
	if d := c.SIP.TLS.HandshakeTimeout; d < 100*time.Millisecond || d > time.Minute {
		bad("sip.tls.handshake_timeout", d, `a duration from "100ms" to "1m"`)
	}
	if k := c.SIP.TLS.Keepalive; k != nil && *k != 0 && (*k < time.Second || *k > time.Hour) {
		bad("sip.tls.keepalive", *k, `a duration from "1s" to "1h", or "0s" for none`)
	}

	if err := c.Media.Validate(); err != nil {
		errs = append(errs, err)
	}

	if c.Calls.MaxDuration < 0 {
		bad("calls.max_duration", c.Calls.MaxDuration, `a duration >= 0 such as "4h" ("0s" disables)`)
	}
	if c.Calls.RingTimeout < time.Second {
		bad("calls.ring_timeout", c.Calls.RingTimeout, `a duration of at least "1s", such as "180s"`)
	}
	if c.Calls.MaxActive < 0 {
		bad("calls.max_active", c.Calls.MaxActive, "a number of calls >= 0 (0: limited by the media port range only)")
	}
	if d := c.Calls.StateDir; d != nil && *d != "" && (!filepath.IsAbs(*d) || filepath.Clean(*d) == "/") {
		bad("calls.state_dir", *d, `an absolute directory path such as "/var/lib/sbc/calls", or "" to keep no call state`)
	}
	if c.Calls.DrainTimeout < 0 {
		bad("calls.drain_timeout", c.Calls.DrainTimeout, `a duration >= 0 such as "30s"`)
	}

	if err := c.Control.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateTrunks()...)
	errs = append(errs, c.validateRoutes()...)
	return errors.Join(errs...)
}

func (c *Config) validateTrunks() []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	names := map[string]bool{}
	for i := range c.Trunks {
		t := &c.Trunks[i]
		key := fmt.Sprintf("trunk[%d]", i)
		if t.Name == "" || strings.ContainsAny(t.Name, " \t\"") {
			bad(key+".name", t.Name, "a non-empty name without spaces or quotes")
		} else if names[t.Name] {
			bad(key+".name", t.Name, "a name no other trunk uses")
		}
		names[t.Name] = true
		if _, _, err := splitHostPort(t.Address); err != nil {
			bad(key+".address", t.Address, `"host:port", e.g. "192.0.2.20:5060"`)
		}
		if !validTransport(t.Transport) {
			bad(key+".transport", t.Transport, `"udp", "tcp" or "tls"`)
		}
		if t.SMSLong != "split" && t.SMSLong != "whole" && t.SMSLong != "refuse" {
			bad(key+".sms_long", t.SMSLong, `"split", "whole" or "refuse"`)
		}
		if _, err := netip.ParseAddrPort(t.Address); t.Transport == "tls" && err != nil {
			bad(key+".address", t.Address, `"ip:port" for a TLS trunk (the name its certificate must carry is tls_name)`)
		}
		if (t.TLSCA != "" || t.TLSName != "") && t.Transport != "tls" {
			bad(key+".transport", t.Transport, `"tls" with tls_ca or tls_name (they verify the trunk's certificate when the SBC connects to it)`)
		}
		if t.TLSClientCA != "" && len(t.TLSClientNames) == 0 {
			bad(key+".tls_client_names", t.TLSClientNames, `the names its client certificate may carry, e.g. ["sbc.carrier.example"], with tls_client_ca`)
		}
		if t.TLSClientCA == "" && len(t.TLSClientNames) > 0 {
			bad(key+".tls_client_ca", t.TLSClientCA, "a PEM file of the CAs its client certificates chain to, with tls_client_names")
		}
		if (t.TLSOnly || t.TLSClientCA != "") && !c.listens("tls") {
			bad(key+".tls_only", t.TLSOnly, `a [[sip.listen]] with transport "tls" first (tls_only and tls_client_ca need one)`)
		}
		if !c.listens(t.Transport) {
			bad(key+".transport", t.Transport, "a transport with a [[sip.listen]] entry")
		}
		if t.Account != "" && !store.ValidSID(store.PrefixAccount, t.Account) {
			bad(key+".account", t.Account, `an account SID: "AC" and 32 hex digits`)
		}
		if len(t.Sources) == 0 {
			bad(key+".sources", t.Sources, `at least one IP or CIDR, e.g. ["192.0.2.20/32"]`)
		}
		errs = append(errs, t.MediaPolicy.validate(key)...)
		t.prefixes = t.prefixes[:0]
		for j, s := range t.Sources {
			p, err := parsePrefix(s)
			if err != nil {
				bad(fmt.Sprintf("%s.sources[%d]", key, j), s, `an IP or CIDR, e.g. "192.0.2.20" or "192.0.2.0/24"`)
				continue
			}
			t.prefixes = append(t.prefixes, p)
		}
	}
	return errs
}

func (c *Config) validateRoutes() []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	names := map[string]bool{}
	for _, t := range c.Trunks {
		names[t.Name] = true
	}
	type rk struct{ from, prefix string }
	seen := map[rk]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("route[%d]", i)
		if r.From != "" && !names[r.From] {
			bad(key+".from", r.From, "the name of a [[trunk]], or empty for any trunk")
		}
		if !names[r.To] {
			bad(key+".to", r.To, "the name of a [[trunk]]")
		}
		if strings.ContainsAny(r.Prefix, " \t@;:") {
			bad(key+".prefix", r.Prefix, "the start of a Request-URI user part, e.g. \"+44\" or \"1\"")
		}
		if seen[rk{r.From, r.Prefix}] {
			bad(key, r.From+"/"+r.Prefix, "one route per from and prefix")
		}
		seen[rk{r.From, r.Prefix}] = true
	}
	return errs
}

func (c *Config) listens(transport string) bool {
	for _, l := range c.SIP.Listen {
		if l.Transport == transport {
			return true
		}
	}
	return false
}

func validTransport(t string) bool { return t == "udp" || t == "tcp" || t == "tls" }

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
