package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestDecode decodes [control.billing] as the caller does: strictly,
// then defaults, then Validate.
func TestDecode(t *testing.T) {
	for _, tt := range []struct {
		name  string
		toml  string
		grace time.Duration
	}{
		{"grace absent", `enabled = true
[[rate]]
prefix = "+"
per_minute = "0.01"`, DefaultGrace},
		{"grace 0s kept", `grace = "0s"
[[rate]]
prefix = "+"
per_sms = "0.01"`, 0},
		{"the documented section", `enabled = false
increment = "second"
grace = "45s"
unrated = "refuse"

[[rate]]
prefix = "+1"          # E.164 prefix: "+" alone matches every destination
per_minute = "0.0100"  # a call's price per minute
per_sms = "0.0075"     # a message's price per segment
`, 45 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			md, err := toml.Decode(tt.toml, &c)
			if err != nil {
				t.Fatal(err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				t.Fatalf("undecoded keys %v", und)
			}
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if *c.Grace != tt.grace {
				t.Errorf("grace %v; want %v", *c.Grace, tt.grace)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dur := func(d time.Duration) *time.Duration { return &d }
	ok := []Rate{{Prefix: "+", PerMinute: "0.02", PerSMS: "0.01"}}
	for _, tt := range []struct {
		name string
		c    Config
		want []string // the keys named, one error each
	}{
		{"defaults", Config{}, nil},
		{"enabled with rates", Config{Enabled: true, Rates: ok}, nil},
		{"enabled, free, no rates", Config{Enabled: true, Unrated: UnratedFree}, nil},
		{"grace 0", Config{Grace: dur(0), Rates: ok}, nil},
		{"zero prices", Config{Rates: []Rate{{Prefix: "+1", PerMinute: "0", PerSMS: "0.00"}}}, nil},
		{"max prices", Config{Rates: []Rate{{Prefix: "+1", PerMinute: "1000", PerSMS: "1000.000000"}}}, nil},
		{"15 digits", Config{Rates: []Rate{{Prefix: "+123456789012345", PerSMS: "1"}}}, nil},
		{"increment", Config{Increment: "hour"}, []string{"control.billing.increment"}},
		{"grace negative", Config{Grace: dur(-time.Second)}, []string{"control.billing.grace"}},
		{"grace bare number", Config{Grace: dur(30)}, []string{"control.billing.grace"}},
		{"unrated", Config{Unrated: "allow"}, []string{"control.billing.unrated"}},
		{"enabled, refuse, no rates", Config{Enabled: true}, []string{"control.billing.rate:"}},
		{"prefix without +", Config{Rates: []Rate{{Prefix: "44", PerMinute: "1"}}}, []string{"rate[0].prefix"}},
		{"prefix empty", Config{Rates: []Rate{{Prefix: "", PerMinute: "1"}}}, []string{"rate[0].prefix"}},
		{"prefix 16 digits", Config{Rates: []Rate{{Prefix: "+1234567890123456", PerMinute: "1"}}}, []string{"rate[0].prefix"}},
		{"prefix not digits", Config{Rates: []Rate{{Prefix: "+44 20", PerMinute: "1"}}}, []string{"rate[0].prefix"}},
		{"prefix twice", Config{Rates: []Rate{{Prefix: "+44", PerMinute: "1"}, {Prefix: "+1", PerMinute: "1"}, {Prefix: "+44", PerSMS: "1"}}}, []string{"rate[2].prefix"}},
		{"per_minute not an amount", Config{Rates: []Rate{ok[0], {Prefix: "+1", PerMinute: "abc"}}}, []string{"rate[1].per_minute"}},
		{"per_minute negative", Config{Rates: []Rate{{Prefix: "+1", PerMinute: "-0.01"}}}, []string{"rate[0].per_minute"}},
		{"per_minute too high", Config{Rates: []Rate{{Prefix: "+1", PerMinute: "1000.000001"}}}, []string{"rate[0].per_minute"}},
		{"per_minute 7 decimals", Config{Rates: []Rate{{Prefix: "+1", PerMinute: "0.0000001"}}}, []string{"rate[0].per_minute"}},
		{"per_sms not an amount", Config{Rates: []Rate{{Prefix: "+1", PerSMS: "1,5"}}}, []string{"rate[0].per_sms"}},
		{"per_sms negative", Config{Rates: []Rate{{Prefix: "+1", PerSMS: "-1"}}}, []string{"rate[0].per_sms"}},
		{"no price", Config{Rates: []Rate{ok[0], {Prefix: "+44"}}}, []string{"rate[1]:"}},
		{"every problem", Config{Increment: "x", Unrated: "y", Grace: dur(-1), Rates: []Rate{{Prefix: "1", PerMinute: "z", PerSMS: "-2"}}},
			[]string{"increment", "grace", "unrated", "rate[0].prefix", "rate[0].per_minute", "rate[0].per_sms"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.SetDefaults()
			err := c.Validate()
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors: %v; want %d naming %q", len(errs), err, len(tt.want), tt.want)
			}
			for i, key := range tt.want {
				if !strings.Contains(errs[i].Error(), key) || !strings.Contains(errs[i].Error(), "; want ") {
					t.Errorf("error %d: %v; want it to name %q and the expected form", i, errs[i], key)
				}
			}
		})
	}
}

// TestValidateMessage pins the whole text of one message: key, value,
// expected form. NewTable refuses the same config.
func TestValidateMessage(t *testing.T) {
	c := Config{Rates: []Rate{{Prefix: "+", PerMinute: "1"}, {Prefix: "+1", PerSMS: "1"}, {Prefix: "+44", PerMinute: "abc"}}}
	c.SetDefaults()
	err := c.Validate()
	want := `control.billing.rate[2].per_minute: "abc" is invalid; want an amount like 0.0100, from 0 to 1000.00, or "" for no call rate`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if _, err := NewTable(c); err == nil || !strings.Contains(err.Error(), "rate[2].per_minute") {
		t.Errorf("NewTable: %v; want the same error", err)
	}
}
