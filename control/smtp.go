package control

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strconv"
	"time"
)

// SMTPConfig is [control.smtp]: the relay the low-balance notification
// e-mails go through (the SBC sends with net/smtp; the relay delivers).
type SMTPConfig struct {
	// Relay is host:port; "" sends no e-mail.
	Relay string `toml:"relay"`
	// From is the sender, a bare address such as "sbc@example.net".
	From string `toml:"from"`
	// TLS is "starttls" (the relay must offer it; its certificate is
	// checked) or "none" (plain text: only for a relay on loopback).
	TLS string `toml:"tls"`
	// Username and PasswordFile log in (AUTH PLAIN, over TLS): the
	// password is read from the file at start, never kept in sbc.toml.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// CAFile is a PEM file of the roots the relay's certificate must
	// chain to; "" the system's.
	CAFile string `toml:"ca_file"`
	// Timeout bounds one delivery attempt. Default 30s.
	Timeout time.Duration `toml:"timeout"`
}

// Values of SMTPConfig.TLS.
const (
	SMTPStartTLS = "starttls"
	SMTPNoTLS    = "none"
)

// SetDefaults fills in zero values.
func (c *SMTPConfig) SetDefaults() {
	if c.TLS == "" {
		c.TLS = SMTPStartTLS
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
}

// Validate names each bad key.
func (c *SMTPConfig) Validate() []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("control.smtp.%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	if c.TLS != SMTPStartTLS && c.TLS != SMTPNoTLS {
		bad("tls", c.TLS, `"starttls" or "none"`)
	}
	if c.Timeout < time.Second || c.Timeout > 5*time.Minute {
		bad("timeout", c.Timeout, `a duration from "1s" to "5m"`)
	}
	if c.Relay == "" {
		return errs
	}
	host, port, err := net.SplitHostPort(c.Relay)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		bad("relay", c.Relay, `"host:port" such as "smtp.example.net:587", or "" for no e-mail`)
	} else if c.TLS == SMTPNoTLS && !loopbackHost(host) {
		bad("tls", c.TLS, `"starttls" unless control.smtp.relay is on loopback (no mail in plain text over a network)`)
	}
	if a, err := mail.ParseAddress(c.From); err != nil || a.Address != c.From || a.Name != "" {
		bad("from", c.From, `a bare e-mail address such as "sbc@example.net" (with control.smtp.relay)`)
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		bad("username", c.Username, "a user name together with control.smtp.password_file, or neither")
	}
	return errs
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
