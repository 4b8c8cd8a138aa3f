package sbc

import (
	"fmt"
	"slices"
	"time"
)

// RegistrarConfig is the [sip.registrar] section: how customer devices
// (the control plane's SIP users) register and call.
type RegistrarConfig struct {
	// MinExpires and MaxExpires bound a registration: shorter is refused
	// (423), longer is cut to MaxExpires (short: a device behind NAT
	// refreshes its binding, and the NAT's, that often).
	MinExpires time.Duration `toml:"min_expires"`
	MaxExpires time.Duration `toml:"max_expires"`
	// Keepalive is how often the SBC sends a double CRLF to each device
	// registered over UDP, from its SIP port to the device's flow: NATs
	// keep a UDP mapping for 30 s and more after its last packet, some
	// for less than a registration lasts. Over TCP and TLS devices ping
	// (RFC 5626 §4.4.1) and the SBC answers. 0: none.
	Keepalive *time.Duration `toml:"keepalive"`
	// MaxContacts is the most devices one user may register at once.
	MaxContacts int `toml:"max_contacts"`
	// NonceTTL is how long a digest challenge's nonce is good for; then
	// the device is asked again (stale=true), without a new password.
	NonceTTL time.Duration `toml:"nonce_ttl"`
	// AuthFailures failed authentications of one user from one address
	// within BanWindow lock the user out there (ten times as many from
	// everywhere: for all), 10 s doubling up to BanTime (403 unread); a
	// source's failures count towards sip.ban_threshold like any. 0: no
	// per-user lockout.
	AuthFailures *int `toml:"auth_failures"`
	// Digest is the algorithms challenged, in order of preference
	// (RFC 8760: "SHA-256" first). Devices that read only the first
	// challenge and know only MD5 need "MD5" first; some refuse any
	// challenge but MD5 (baresip 1.0) and need ["MD5"].
	Digest []string `toml:"digest"`
	// Media is the devices' media policy: srtp, codecs, srtp_suites.
	MediaPolicy
}

// setDefaults fills in zero values.
func (r *RegistrarConfig) setDefaults() {
	if r.MinExpires == 0 {
		r.MinExpires = 60 * time.Second
	}
	if r.MaxExpires == 0 {
		r.MaxExpires = 120 * time.Second
	}
	if r.Keepalive == nil {
		k := 25 * time.Second
		r.Keepalive = &k
	}
	if r.MaxContacts == 0 {
		r.MaxContacts = 5
	}
	if r.NonceTTL == 0 {
		r.NonceTTL = 5 * time.Minute
	}
	if r.AuthFailures == nil {
		n := 10
		r.AuthFailures = &n
	}
	if r.Digest == nil {
		r.Digest = []string{"SHA-256", "MD5"}
	}
	r.MediaPolicy.setDefaults()
}

// validate names each bad key of [sip.registrar].
func (r *RegistrarConfig) validate() []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	if r.MinExpires < 10*time.Second || r.MinExpires > time.Hour {
		bad("sip.registrar.min_expires", r.MinExpires, `a duration from "10s" to "1h"`)
	} else if r.MaxExpires < r.MinExpires || r.MaxExpires > 24*time.Hour {
		bad("sip.registrar.max_expires", r.MaxExpires, `a duration from sip.registrar.min_expires to "24h"`)
	}
	if k := r.Keepalive; k != nil && *k != 0 && (*k < time.Second || *k > time.Hour) {
		bad("sip.registrar.keepalive", *k, `a duration from "1s" to "1h", or "0s" for none`)
	}
	if r.MaxContacts < 1 || r.MaxContacts > 100 {
		bad("sip.registrar.max_contacts", r.MaxContacts, "from 1 to 100")
	}
	if r.NonceTTL < 10*time.Second || r.NonceTTL > time.Hour {
		bad("sip.registrar.nonce_ttl", r.NonceTTL, `a duration from "10s" to "1h"`)
	}
	if n := r.AuthFailures; n != nil && (*n < 0 || *n > 1000) {
		bad("sip.registrar.auth_failures", *n, "failed authentications of one user before it is locked out, from 0 (never) to 1000")
	}
	errs = append(errs, r.MediaPolicy.validate("sip.registrar")...)
	if d := r.Digest; len(d) == 0 || len(d) > 2 || slices.ContainsFunc(d, func(a string) bool { return a != "SHA-256" && a != "MD5" }) ||
		len(d) == 2 && d[0] == d[1] {
		bad("sip.registrar.digest", d, `"SHA-256" and/or "MD5", each once, in order of preference`)
	}
	return errs
}
