package billing

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"sbc/control/store"
)

// Config is [control.billing].
type Config struct {
	// Enabled turns billing on. Off (the default) nothing is charged and
	// balances are not checked.
	Enabled bool `toml:"enabled"`
	// Increment is how call time is billed: "second" (each second at
	// per_minute/60, the total rounded up to the millionth) or "minute"
	// (each started minute at per_minute). Default "second".
	Increment string `toml:"increment"`
	// Grace is how long a call in progress goes on after its account's
	// balance runs out, as a Go duration ("30s"; "0s" ends it at once).
	// A pointer, so that an explicit "0s" is not taken for absent and
	// replaced by the default 30s.
	Grace *time.Duration `toml:"grace"`
	// Unrated is what becomes of calls and messages to destinations no
	// rate prices: "refuse" (refused while billing is on; the default) or
	// "free".
	Unrated string `toml:"unrated"`
	// Rates are the [[control.billing.rate]] entries, in any order: the
	// longest matching prefix with the price asked for decides.
	Rates []Rate `toml:"rate"`
}

// Rate is one [[control.billing.rate]].
type Rate struct {
	// Prefix is an E.164 prefix such as "+44"; "+" alone matches every
	// destination.
	Prefix string `toml:"prefix"`
	// PerMinute is a call's price per minute, such as "0.0100"; "" or
	// absent: calls are not rated here (a shorter prefix may rate them).
	PerMinute string `toml:"per_minute"`
	// PerSMS is a message's price per segment, such as "0.0075"; "" or
	// absent: messages are not rated here (a shorter prefix may rate them).
	PerSMS string `toml:"per_sms"`
}

// Values of Config.Increment and Config.Unrated.
const (
	IncrementSecond = "second"
	IncrementMinute = "minute"
	UnratedRefuse   = "refuse"
	UnratedFree     = "free"
)

// DefaultGrace is control.billing.grace when the config says nothing.
const DefaultGrace = 30 * time.Second

// MaxPrice bounds per_minute and per_sms. Far above any real tariff, it
// catches a misplaced decimal point and keeps price arithmetic far from
// int64 overflow.
const MaxPrice = 1000 * store.Unit

// SetDefaults fills in zero values.
func (c *Config) SetDefaults() {
	if c.Increment == "" {
		c.Increment = IncrementSecond
	}
	if c.Grace == nil {
		g := DefaultGrace
		c.Grace = &g
	}
	if c.Unrated == "" {
		c.Unrated = UnratedRefuse
	}
}

var prefixRE = regexp.MustCompile(`^\+[0-9]{0,15}$`)

// Validate checks every field and returns every problem, joined, each
// naming the key, the value and the expected form. Rates are checked
// even with billing off, so that turning it on cannot fail later.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s: %q is invalid; want %s", key, fmt.Sprint(val), want))
	}
	if c.Increment != IncrementSecond && c.Increment != IncrementMinute {
		bad("control.billing.increment", c.Increment, `"second" or "minute"`)
	}
	if g := c.Grace; g != nil && (*g < 0 || *g > 0 && *g < time.Second) {
		// Less than a second is almost surely a bare number, which TOML
		// decoding takes as nanoseconds.
		bad("control.billing.grace", *g, `a duration such as "30s" (0 or at least "1s"; a bare number is nanoseconds)`)
	}
	if c.Unrated != UnratedRefuse && c.Unrated != UnratedFree {
		bad("control.billing.unrated", c.Unrated, `"refuse" or "free"`)
	}
	seen := make(map[string]int, len(c.Rates))
	for i, r := range c.Rates {
		key := fmt.Sprintf("control.billing.rate[%d]", i)
		switch j, dup := seen[r.Prefix]; {
		case !prefixRE.MatchString(r.Prefix):
			bad(key+".prefix", r.Prefix, `an E.164 prefix such as "+44", or "+" for every destination`)
		case dup:
			bad(key+".prefix", r.Prefix, fmt.Sprintf("a prefix no other rate names (rate[%d] has it)", j))
		default:
			seen[r.Prefix] = i
		}
		if _, _, err := parsePrice(r.PerMinute); err != nil {
			bad(key+".per_minute", r.PerMinute, "an amount like 0.0100, from 0 to 1000.00, or \"\" for no call rate")
		}
		if _, _, err := parsePrice(r.PerSMS); err != nil {
			bad(key+".per_sms", r.PerSMS, "an amount like 0.0075, from 0 to 1000.00, or \"\" for no message rate")
		}
		if r.PerMinute == "" && r.PerSMS == "" {
			// It would change nothing: a shorter prefix still rates its
			// destinations, which is not what its author meant.
			bad(key, r.Prefix, "a rate with per_minute, per_sms or both")
		}
	}
	if c.Enabled && c.Unrated == UnratedRefuse && len(c.Rates) == 0 {
		bad("control.billing.rate", "none", `at least one rate while enabled and unrated = "refuse" (else every call and message is refused)`)
	}
	return errors.Join(errs...)
}

// parsePrice reads a price; ok is false for "" (no rate).
func parsePrice(s string) (p store.Money, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	p, err = store.ParseMoney(s)
	if err != nil {
		return 0, false, err
	}
	if p < 0 || p > MaxPrice {
		return 0, false, fmt.Errorf("%s is not from 0 to %s", p, MaxPrice)
	}
	return p, true, nil
}
