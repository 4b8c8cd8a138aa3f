//go:build linux

package ladder

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRates(t *testing.T) {
	tests := []struct {
		cfg  Config
		want []int
	}{
		{Config{Start: 100, Step: 100, Max: 500}, []int{100, 200, 300, 400, 500}},
		{Config{Start: 100, Step: 150, Max: 500}, []int{100, 250, 400}},
		{Config{Start: 20, Step: 20, Max: 20}, []int{20}},
		{Config{Start: 100, Factor: 1.5, Max: 500}, []int{100, 150, 225, 338}},
		{Config{Start: 1, Factor: 1.1, Max: 4}, []int{1, 2, 3, 4}}, // always rises
	}
	for _, tc := range tests {
		if got := tc.cfg.Rates(); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: Rates() = %v; want %v", tc.cfg, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"all systems", func(c *Config) { c.Systems = []string{"sbc", "kamailio", "kamailio-nomedia"} }, ""},
		{"unknown system", func(c *Config) { c.Systems = []string{"asterisk"} }, `system "asterisk"`},
		{"system twice", func(c *Config) { c.Systems = []string{"sbc", "sbc"} }, "listed twice"},
		{"max below start", func(c *Config) { c.Start, c.Max = 200, 100 }, "start <= max"},
		{"factor and step", func(c *Config) { c.Step, c.Factor = 10, 1.5 }, "no increment with it"},
		{"factor 1", func(c *Config) { c.Step, c.Factor = 0, 1 }, "want > 1"},
		{"short step", func(c *Config) { c.StepDuration = 500 * time.Millisecond }, "at least 1s"},
		{"odd port", func(c *Config) { c.PortMin = 42001 }, "even port"},
		{"shared address", func(c *Config) { c.UASIP = netip.MustParseAddr("127.0.0.41") }, "uac has it already"},
		{"not loopback", func(c *Config) { c.SystemIP = netip.MustParseAddr("192.0.2.1") }, "loopback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestMediaRange(t *testing.T) {
	c := Config{Max: 40, CallDuration: 500 * time.Millisecond}.withDefaults()
	lo, hi, calls := c.mediaRange()
	// 2 × 40 calls/s × 0.5 s = 40 calls up, + 64 slack: 104 calls, 416 ports.
	if lo != 42000 || hi != 42415 || calls != 104 {
		t.Errorf("mediaRange = %d-%d (%d calls); want 42000-42415 (104)", lo, hi, calls)
	}
	c = Config{Max: 5000, CallDuration: time.Second}.withDefaults()
	lo, hi, calls = c.mediaRange()
	if lo != 42000 || hi != 65535 || calls != (65536-42000)/4 {
		t.Errorf("mediaRange = %d-%d (%d calls); want 42000-65535, cut at the last port", lo, hi, calls)
	}
}

func TestParseStep(t *testing.T) {
	tests := []struct {
		in     string
		step   int
		factor float64
		ok     bool
	}{
		{"100", 100, 0, true},
		{"x1.5", 0, 1.5, true},
		{"x2", 0, 2, true},
		{"0", 0, 0, false},
		{"x1", 0, 0, false},
		{"1.5", 0, 0, false},
		{"x", 0, 0, false},
	}
	for _, tc := range tests {
		step, factor, err := ParseStep(tc.in)
		if (err == nil) != tc.ok || step != tc.step || factor != tc.factor {
			t.Errorf("ParseStep(%q) = %d, %v, %v; want %d, %v, ok %v", tc.in, step, factor, err, tc.step, tc.factor, tc.ok)
		}
	}
}
