package control

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sbc/control/billing"
	"sbc/control/messaging"
	"sbc/control/store"
)

// Config is the [control] section of sbc.toml.
type Config struct {
	// DataDir holds the SQLite store, the API's self-signed certificate
	// and the operator token file. Default DefaultDataDir.
	DataDir string `toml:"data_dir"`
	// TokenKeyFile holds the key accounts' auth tokens are sealed with
	// (they sign webhooks); made at first use. Nodes sharing one store
	// share it. Default DataDir/token.key.
	TokenKeyFile string `toml:"token_key_file"`
	// Store is "" (SQLite in DataDir/sbc.db) or a postgres:// URL, for
	// several nodes sharing one control plane.
	Store string `toml:"store"`
	// Node names this SBC in call logs (default: the host name).
	Node string `toml:"node"`
	// Realm is the SIP digest realm users' password hashes are made for
	// (RFC 7616 HA1 binds it): changing it later needs every password
	// set again.
	Realm string `toml:"realm"`
	// HomeCountryCode: destinations outside +CC are international.
	HomeCountryCode string `toml:"home_country_code"`
	// Premium lists E.164 prefixes of premium-rate ranges every class
	// denies unless it sets premium = true or allows the prefix itself.
	Premium []string `toml:"premium"`
	// CrossAccount is what happens to a call from one account to another
	// account's number: "pstn" (it leaves through the dial plan's carrier
	// trunk like any call to the PSTN) or "refuse" (403).
	CrossAccount string `toml:"cross_account"`
	// Classes are the classes of restriction accounts and users name.
	Classes []Class `toml:"class"`
	// Defaults for new accounts.
	Defaults  AccountDefaults  `toml:"defaults"`
	Retention RetentionConfig  `toml:"retention"`
	API       APIConfig        `toml:"api"`
	Webhooks  WebhookConfig    `toml:"webhooks"`
	SMS       messaging.Config `toml:"sms"`
	Billing   billing.Config   `toml:"billing"`
	SMTP      SMTPConfig       `toml:"smtp"`
}

// DefaultDataDir is control.data_dir when the config says nothing.
const DefaultDataDir = "/var/lib/sbc"

// Class is one [[control.class]]: a class of restriction.
type Class struct {
	Name string `toml:"name"`
	// Allow and Deny are E.164 prefixes ("+44", "+1900"); the longest
	// match among them and control.premium decides, deny winning a tie.
	Allow []string `toml:"allow"`
	Deny  []string `toml:"deny"`
	// International allows destinations outside the home country that no
	// prefix matches; Premium lifts control.premium.
	International bool `toml:"international"`
	Premium       bool `toml:"premium"`
}

// AccountDefaults is [control.defaults]: what a new account gets when its
// creator does not say.
type AccountDefaults struct {
	CPS           int    `toml:"cps"`
	SMSPerSecond  int    `toml:"sms_per_second"`
	MaxConcurrent int    `toml:"max_concurrent"`
	Class         string `toml:"class"`
	LowBalance    string `toml:"low_balance"`
}

// RetentionConfig is [control.retention]: how long records are kept.
// Values are ages such as "18mo", "30d", "12h".
type RetentionConfig struct {
	Calls         Age `toml:"calls"`
	Messages      Age `toml:"messages"`
	MessageBodies Age `toml:"message_bodies"`
	Audit         Age `toml:"audit"`
	// Interval between purges (default 1h).
	Interval time.Duration `toml:"interval"`
}

// APIConfig is [control.api]: the REST API.
type APIConfig struct {
	// Listen is the HTTPS address; nil: DefaultAPIListen, "": no API.
	Listen *string `toml:"listen"`
	// Cert and Key are PEM files; both empty: a self-signed certificate
	// made in data_dir at first start.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// PlainHTTP serves HTTP without TLS: only on a loopback address.
	PlainHTTP bool `toml:"plain_http"`
}

// DefaultAPIListen is control.api.listen when the config says nothing:
// loopback only, until the operator opens it.
const DefaultAPIListen = "127.0.0.1:8443"

// Age is a retention period: a number of months ("18mo"), days ("30d") or
// a Go duration ("12h"). Months are calendar months.
type Age struct {
	Months int
	Dur    time.Duration
}

var ageRE = regexp.MustCompile(`^(\d{1,4})(mo|d)$`)

// UnmarshalText reads an age.
func (a *Age) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if m := ageRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[2] == "mo" {
			*a = Age{Months: n}
		} else {
			*a = Age{Dur: time.Duration(n) * 24 * time.Hour}
		}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not an age like \"18mo\", \"30d\" or \"12h\"", s)
	}
	*a = Age{Dur: d}
	return nil
}

// MarshalText writes an age back.
func (a Age) MarshalText() ([]byte, error) {
	switch {
	case a.Months > 0:
		return []byte(fmt.Sprintf("%dmo", a.Months)), nil
	case a.Dur%(24*time.Hour) == 0 && a.Dur > 0:
		return []byte(fmt.Sprintf("%dd", a.Dur/(24*time.Hour))), nil
	}
	return []byte(a.Dur.String()), nil
}

// String is the age as the config writes it.
func (a Age) String() string {
	b, _ := a.MarshalText()
	return string(b)
}

// Before is the instant an age before now.
func (a Age) Before(now time.Time) time.Time {
	return now.AddDate(0, -a.Months, 0).Add(-a.Dur)
}

func (a Age) zero() bool { return a.Months == 0 && a.Dur == 0 }

// Cross-account policies.
const (
	CrossPSTN   = "pstn"
	CrossRefuse = "refuse"
)

// DefaultClass is the class accounts get by default. Unless the config
// defines a class of that name, it allows the home country but for the
// premium ranges, and nothing international.
const DefaultClass = "default"

// SetDefaults fills in zero values.
func (c *Config) SetDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.TokenKeyFile == "" {
		c.TokenKeyFile = filepath.Join(c.DataDir, "token.key")
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if c.Realm == "" {
		c.Realm = "sbc"
	}
	if c.HomeCountryCode == "" {
		c.HomeCountryCode = "1"
	}
	if c.Premium == nil {
		c.Premium = []string{"+1900", "+1976"}
	}
	if c.CrossAccount == "" {
		c.CrossAccount = CrossPSTN
	}
	has := false
	for _, cl := range c.Classes {
		has = has || cl.Name == DefaultClass
	}
	if !has {
		c.Classes = append(c.Classes, Class{Name: DefaultClass})
	}
	d := &c.Defaults
	if d.CPS == 0 {
		d.CPS = 1
	}
	if d.SMSPerSecond == 0 {
		d.SMSPerSecond = 1
	}
	if d.MaxConcurrent == 0 {
		d.MaxConcurrent = 10
	}
	if d.Class == "" {
		d.Class = DefaultClass
	}
	if d.LowBalance == "" {
		d.LowBalance = "2.00"
	}
	r := &c.Retention
	if r.Calls.zero() {
		r.Calls = Age{Months: 18}
	}
	if r.Messages.zero() {
		r.Messages = Age{Months: 6}
	}
	if r.MessageBodies.zero() {
		r.MessageBodies = Age{Dur: 30 * 24 * time.Hour}
	}
	if r.Audit.zero() {
		r.Audit = Age{Months: 18}
	}
	if r.Interval == 0 {
		r.Interval = time.Hour
	}
	if c.API.Listen == nil {
		l := DefaultAPIListen
		c.API.Listen = &l
	}
	c.SMS.SetDefaults()
	c.Webhooks.SetDefaults()
	c.Billing.SetDefaults()
	c.SMTP.SetDefaults()
}

// StorePath is the store's DSN: the postgres:// URL, or the SQLite file.
func (c *Config) StorePath() string {
	if c.Store != "" {
		return c.Store
	}
	return filepath.Join(c.DataDir, "sbc.db")
}

var e164Prefix = regexp.MustCompile(`^\+[0-9]{1,15}$`)

// Validate checks every field and names the key, the value and the
// expected form. It opens nothing.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	if !filepath.IsAbs(c.DataDir) || filepath.Clean(c.DataDir) == "/" {
		bad("control.data_dir", c.DataDir, `an absolute directory such as "/var/lib/sbc"`)
	}
	if c.Store != "" && !store.IsPostgres(c.Store) {
		bad("control.store", "(not shown: may hold a password)", `"" (SQLite in data_dir) or a postgres:// URL`)
	}
	if c.Realm == "" || strings.ContainsAny(c.Realm, "\"\\\r\n") || len(c.Realm) > 128 {
		bad("control.realm", c.Realm, "a SIP realm without quotes or backslashes, such as \"sbc.example.net\"")
	}
	if !regexp.MustCompile(`^[1-9][0-9]{0,2}$`).MatchString(c.HomeCountryCode) {
		bad("control.home_country_code", c.HomeCountryCode, `a country calling code without "+", e.g. "1" or "44"`)
	}
	for i, p := range c.Premium {
		if !e164Prefix.MatchString(p) {
			bad(fmt.Sprintf("control.premium[%d]", i), p, `an E.164 prefix such as "+1900"`)
		}
	}
	if c.CrossAccount != CrossPSTN && c.CrossAccount != CrossRefuse {
		bad("control.cross_account", c.CrossAccount, `"pstn" or "refuse"`)
	}
	names := map[string]bool{}
	for i, cl := range c.Classes {
		key := fmt.Sprintf("control.class[%d]", i)
		if !validName(cl.Name) {
			bad(key+".name", cl.Name, "a name of letters, digits, '-' and '_'")
		} else if names[cl.Name] {
			bad(key+".name", cl.Name, "a name no other class uses")
		}
		names[cl.Name] = true
		for j, p := range cl.Allow {
			if !e164Prefix.MatchString(p) {
				bad(fmt.Sprintf("%s.allow[%d]", key, j), p, `an E.164 prefix such as "+44"`)
			}
		}
		for j, p := range cl.Deny {
			if !e164Prefix.MatchString(p) {
				bad(fmt.Sprintf("%s.deny[%d]", key, j), p, `an E.164 prefix such as "+1900"`)
			}
		}
	}
	d := c.Defaults
	if d.CPS < 1 || d.CPS > 10000 {
		bad("control.defaults.cps", d.CPS, "calls per second from 1 to 10000")
	}
	if d.SMSPerSecond < 1 || d.SMSPerSecond > 10000 {
		bad("control.defaults.sms_per_second", d.SMSPerSecond, "messages per second from 1 to 10000")
	}
	if d.MaxConcurrent < 1 || d.MaxConcurrent > 1_000_000 {
		bad("control.defaults.max_concurrent", d.MaxConcurrent, "calls from 1 to 1000000")
	}
	if !names[d.Class] {
		bad("control.defaults.class", d.Class, "the name of a [[control.class]]")
	}
	if _, err := store.ParseMoney(d.LowBalance); err != nil {
		bad("control.defaults.low_balance", d.LowBalance, `an amount such as "2.00"`)
	}
	r := c.Retention
	for _, x := range []struct {
		key string
		age Age
	}{{"calls", r.Calls}, {"messages", r.Messages}, {"message_bodies", r.MessageBodies}, {"audit", r.Audit}} {
		if x.age.Months < 0 || x.age.Dur < 0 || x.age.Before(time.Now()).After(time.Now().Add(-time.Hour)) {
			bad("control.retention."+x.key, x.age, `an age of at least an hour, such as "18mo", "30d" or "12h"`)
		}
	}
	if r.Interval < time.Minute || r.Interval > 24*time.Hour {
		bad("control.retention.interval", r.Interval, `a duration from "1m" to "24h"`)
	}
	if l := c.API.Listen; l != nil && *l != "" {
		ap, err := netip.ParseAddrPort(*l)
		switch {
		case err != nil:
			bad("control.api.listen", *l, `"ip:port" such as "127.0.0.1:8443", or "" for no API`)
		case c.API.PlainHTTP && !ap.Addr().IsLoopback():
			bad("control.api.plain_http", true, "false unless control.api.listen is a loopback address (no HTTP without TLS on a network)")
		}
	}
	if (c.API.Cert == "") != (c.API.Key == "") {
		bad("control.api.cert", c.API.Cert, "a PEM certificate file together with control.api.key, or both empty (self-signed)")
	}
	errs = append(errs, c.SMS.Validate()...)
	errs = append(errs, c.Webhooks.Validate()...)
	errs = append(errs, c.Billing.Validate())
	errs = append(errs, c.SMTP.Validate()...)
	return errors.Join(errs...)
}

// ClassNamed returns the class called name.
func (c *Config) ClassNamed(name string) (Class, bool) {
	for _, cl := range c.Classes {
		if cl.Name == name {
			return cl, true
		}
	}
	return Class{}, false
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}
