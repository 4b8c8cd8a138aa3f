package sbctest

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"sbc/media"
	"sbc/sbc"
)

// parse reads c.TOML() with the daemon's own parser, and checks that the
// config it gets encodes to the same file: every value round-trips.
func parse(t *testing.T, c DaemonConfig) *sbc.Config {
	t.Helper()
	doc := c.TOML()
	cfg, err := sbc.ParseConfig(doc)
	if err != nil {
		t.Fatalf("ParseConfig: %v\n%s", err, doc)
	}
	var again strings.Builder
	enc := toml.NewEncoder(&again)
	enc.Indent = ""
	if err := enc.Encode(cfg); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := strings.Cut(doc, "\n"); again.String() != body {
		t.Errorf("the parsed config encodes to\n%s\nwant what was parsed:\n%s", again.String(), body)
	}
	return cfg
}

type field struct {
	key       string
	got, want any
}

func check(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %v; want %v", f.key, f.got, f.want)
		}
	}
}

// trunks lists the trunks' fields (Trunk also holds what Validate derives).
func trunks(c *sbc.Config) []string {
	var s []string
	for _, t := range c.Trunks {
		s = append(s, fmt.Sprint(t.Name, " ", t.Address, " ", t.Transport, " ", t.Sources))
	}
	return s
}

var defaultRate = sbc.DefaultRateLimit

func TestTOMLEveryKnob(t *testing.T) {
	c := parse(t, DaemonConfig{
		LogLevel: "debug", UserAgent: "sbc-e2e",
		IP: netip.MustParseAddr("127.0.0.1"), SIPPort: 5070, TCP: true, T1: 50 * time.Millisecond,
		BanThreshold: 5, BanTime: 3 * time.Second,
		PortMin: 30000, PortMax: 30199, MediaTimeout: 2 * time.Second, Steering: media.SteeringOff, Workers: 3,
		FastPath: media.FastPathTC, Interfaces: []string{"veth9"}, PinPath: "/sys/fs/bpf/t", StateDir: "/run/t",
		MaxDuration: time.Minute, RingTimeout: 10 * time.Second, DrainTimeout: 3 * time.Second,
		Caller:  Trunk{Name: "a", Addr: netip.MustParseAddrPort("127.0.0.10:5062")},
		Callee:  Trunk{Name: "b", Addr: netip.MustParseAddrPort("127.0.0.20:5064")},
		Reverse: true,
	})
	sip := c.SIP
	sip.TLS, sip.Registrar, sip.Scanners = sbc.TLSConfig{}, sbc.RegistrarConfig{}, nil // the daemon's defaults: the harness sets none
	check(t, []field{
		{"log", c.Log, sbc.LogConfig{Level: "debug", Format: "json"}},
		{"sip", sip, sbc.SIPConfig{PublicIP: "127.0.0.1", UserAgent: "sbc-e2e", T1: 50 * time.Millisecond,
			Listen:    []sbc.Listener{{Transport: "udp", Address: "127.0.0.1:5070"}, {Transport: "tcp", Address: "127.0.0.1:5070"}},
			RateLimit: &defaultRate, RateBurst: 2 * sbc.DefaultRateLimit,
			MaxConnections: 10000, MaxConnectionsPerSource: 256, // the daemon's defaults
			BanThreshold: ptr(5), BanWindow: time.Minute, BanTime: 3 * time.Second}},
		{"media", c.Media, media.Config{BindIP: "127.0.0.1", PublicIP: "127.0.0.1", PortMin: 30000, PortMax: 30199,
			Timeout: 2 * time.Second, Latching: media.LatchingSymmetric, Steering: media.SteeringOff, Workers: 3,
			ReservePorts: &noReserve, FastPath: media.FastPathTC, Interfaces: []string{"veth9"}, PinPath: ptr("/sys/fs/bpf/t")}},
		{"calls", c.Calls, sbc.CallsConfig{MaxDuration: time.Minute, RingTimeout: 10 * time.Second, DrainTimeout: 3 * time.Second,
			StateDir: ptr("/run/t")}},
		{"trunk", trunks(c), []string{"a 127.0.0.10:5062 udp [127.0.0.10]", "b 127.0.0.20:5064 udp [127.0.0.20]"}},
		{"route", c.Routes, []sbc.Route{{From: "a", To: "b"}, {From: "b", To: "a"}}},
	})
}

// TestTOMLDefaults: what a DaemonConfig leaves zero is the daemon's
// default, written out.
func TestTOMLDefaults(t *testing.T) {
	c := parse(t, DaemonConfig{
		LogLevel: "info", UserAgent: "sbc-bench-ladder",
		IP: netip.MustParseAddr("127.0.0.42"), SIPPort: 5080, PortMin: 42000, PortMax: 42099,
		Caller: Trunk{Name: "uac", Addr: netip.MustParseAddrPort("127.0.0.41:5090")},
		Callee: Trunk{Name: "uas", Addr: netip.MustParseAddrPort("127.0.0.43:5092")},
	})
	check(t, []field{
		{"sip.t1", c.SIP.T1, 500 * time.Millisecond},
		{"sip.listen", c.SIP.Listen, []sbc.Listener{{Transport: "udp", Address: "127.0.0.42:5080"}}},
		{"sip.ban_threshold", *c.SIP.BanThreshold, sbc.DefaultBanThreshold},
		{"media.timeout", c.Media.Timeout, media.DefaultTimeout},
		{"media.steering", c.Media.Steering, media.SteeringAuto},
		{"media.workers", c.Media.Workers, 0},
		{"calls", c.Calls, sbc.CallsConfig{RingTimeout: 180 * time.Second, DrainTimeout: 30 * time.Second, StateDir: ptr("")}},
		{"media.pin_path", *c.Media.PinPath, ""},
		{"route", c.Routes, []sbc.Route{{From: "uac", To: "uas"}}},
	})
}

func ptr[T any](v T) *T { return &v }
