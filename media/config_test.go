package media

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// decodeConfig runs the first three config steps on a [media] snippet:
// strict decode, defaults, validate.
func decodeConfig(t *testing.T, snippet string) (Config, error) {
	t.Helper()
	var file struct {
		Media Config `toml:"media"`
	}
	md, err := toml.Decode("[media]\n"+snippet, &file)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("unknown keys %v", und)
	}
	file.Media.SetDefaults()
	return file.Media, file.Media.Validate()
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		snippet string
		want    *Config  // checked when not nil
		errs    []string // each must appear in the error; none means valid
	}{
		{
			name:    "defaults",
			snippet: `public_ip = "203.0.113.5"`,
			want: &Config{BindIP: "0.0.0.0", PublicIP: "203.0.113.5", PortMin: 20000, PortMax: 29999,
				Timeout: 60 * time.Second, Latching: "symmetric", Steering: "auto", ReservePorts: ptr(true), FastPath: "auto", PinPath: ptr(DefaultPinPath)},
		},
		{
			name:    "public_ip defaults to a specific bind_ip",
			snippet: `bind_ip = "192.0.2.10"`,
			want: &Config{BindIP: "192.0.2.10", PublicIP: "192.0.2.10", PortMin: 20000, PortMax: 29999,
				Timeout: 60 * time.Second, Latching: "symmetric", Steering: "auto", ReservePorts: ptr(true), FastPath: "auto", PinPath: ptr(DefaultPinPath)},
		},
		{
			name: "all set",
			snippet: `bind_ip = "::"
public_ip = "2001:db8::1"
port_min = 30000
port_max = 30003
timeout = "90s"
latching = "strict"
steering = "off"
workers = 4
reserve_ports = false
fast_path = "tc"
interfaces = ["eth1", "eth2"]
pin_path = ""`,
			want: &Config{BindIP: "::", PublicIP: "2001:db8::1", PortMin: 30000, PortMax: 30003,
				Timeout: 90 * time.Second, Latching: "strict", Steering: "off", Workers: 4, ReservePorts: ptr(false),
				FastPath: "tc", Interfaces: []string{"eth1", "eth2"}, PinPath: ptr("")},
		},
		{name: "odd port_max is fine", snippet: `bind_ip = "127.0.0.1"` + "\nport_max = 20004"},
		{name: "public_ip required with 0.0.0.0", snippet: ``, errs: []string{`media.public_ip: ""`, `media.bind_ip is "0.0.0.0"`}},
		{name: "public_ip required with ::", snippet: `bind_ip = "::"`, errs: []string{`media.public_ip: ""`, `"::"`}},
		{name: "bad bind_ip", snippet: `bind_ip = "media.example.com"`, errs: []string{`media.bind_ip: "media.example.com" is not an IP address`}},
		{name: "bind_ip with zone", snippet: `bind_ip = "fe80::1%eth0"` + "\npublic_ip = \"192.0.2.1\"", errs: []string{`media.bind_ip: "fe80::1%eth0"`}},
		{name: "bad steering", snippet: `public_ip = "192.0.2.1"` + "\nsteering = \"yes\"",
			errs: []string{`media.steering: "yes" is unknown; want "auto", "on" or "off"`}},
		{name: "negative workers", snippet: `public_ip = "192.0.2.1"` + "\nworkers = -1",
			errs: []string{"media.workers: -1 is out of range; want 0 (one per CPU) to 64"}},
		{name: "too many workers", snippet: `public_ip = "192.0.2.1"` + "\nworkers = 65", errs: []string{"media.workers: 65 is out of range"}},
		{name: "bad public_ip", snippet: `public_ip = "1.2.3"`, errs: []string{`media.public_ip: "1.2.3" is not an IP address`}},
		{name: "unspecified public_ip", snippet: `public_ip = "0.0.0.0"`, errs: []string{`media.public_ip: "0.0.0.0" is unspecified`}},
		{name: "odd port_min", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 20001",
			errs: []string{"media.port_min: 20001 is odd; want an even port number (RTP even, RTCP = RTP+1)"}},
		{name: "port_min too low", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 80", errs: []string{"media.port_min: 80 is out of range", "1024..65534"}},
		{name: "port_min too high", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 65536\nport_max = 65535", errs: []string{"media.port_min: 65536 is out of range"}},
		{name: "port_max too high", snippet: `public_ip = "192.0.2.1"` + "\nport_max = 70000", errs: []string{"media.port_max: 70000 is out of range", "65535"}},
		{name: "port_max below port_min", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 30000\nport_max = 29999",
			errs: []string{"media.port_max: 29999 is not above media.port_min (30000)"}},
		{name: "port_max equal port_min", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 30000\nport_max = 30000",
			errs: []string{"media.port_max: 30000 is not above media.port_min"}},
		{name: "range under 4 ports", snippet: `public_ip = "192.0.2.1"` + "\nport_min = 30000\nport_max = 30002",
			errs: []string{"media.port_max: 30002 leaves 3 ports", "at least 4 ports"}},
		{name: "negative timeout", snippet: `public_ip = "192.0.2.1"` + "\ntimeout = \"-5s\"",
			errs: []string{`media.timeout: "-5s" is not positive; want a duration such as "60s"`}},
		{name: "unknown latching", snippet: `public_ip = "192.0.2.1"` + "\nlatching = \"loose\"",
			errs: []string{`media.latching: "loose" is unknown; want "symmetric" or "strict"`}},
		{name: "unknown fast_path", snippet: `public_ip = "192.0.2.1"` + "\nfast_path = \"kernel\"",
			errs: []string{`media.fast_path: "kernel" is unknown; want "auto", "xdp", "tc" or "off"`}},
		{name: "bad interface name", snippet: `public_ip = "192.0.2.1"` + "\ninterfaces = [\"eth0\", \"a/b\"]",
			errs: []string{`media.interfaces[1]: "a/b" is not an interface name`}},
		{name: "xdp on every address needs interfaces", snippet: `public_ip = "192.0.2.1"` + "\nfast_path = \"xdp\"",
			errs: []string{`media.interfaces: [] is empty while media.bind_ip is "0.0.0.0" and media.fast_path is "xdp"`}},
		{name: "relative pin_path", snippet: `public_ip = "192.0.2.1"` + "\npin_path = \"bpf/sbc\"",
			errs: []string{`media.pin_path: "bpf/sbc" is not an absolute directory path`}},
		{name: "every error is reported", snippet: "port_min = 3\nlatching = \"x\"",
			errs: []string{"media.public_ip", "media.port_min: 3", `media.latching: "x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := decodeConfig(t, tc.snippet)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else {
				if err == nil {
					t.Fatalf("Validate = nil, want errors %q", tc.errs)
				}
				for _, want := range tc.errs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.HasPrefix(ce.Key, "media.") || ce.Want == "" {
					t.Errorf("error %v: want a *ConfigError naming a media.* key and the expected form", err)
				}
			}
			if tc.want != nil && !reflect.DeepEqual(cfg, *tc.want) {
				t.Errorf("config:\n got %+v\nwant %+v", cfg, *tc.want)
			}
		})
	}
}

func TestConfigSetDefaultsKeepsValues(t *testing.T) {
	cfg := Config{BindIP: "10.0.0.1", PublicIP: "192.0.2.1", PortMin: 30000, PortMax: 30099, Timeout: time.Second, Latching: "strict",
		Steering: "on", Workers: 3, ReservePorts: ptr(false), FastPath: "tc", Interfaces: []string{"eth1"}, PinPath: ptr("/run/bpf")}
	want := cfg
	cfg.SetDefaults()
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("SetDefaults changed set fields: %+v, want %+v", cfg, want)
	}
}

func TestConfigValidateHasNoSideEffects(t *testing.T) {
	cfg := Config{BindIP: "127.0.0.1"} // no defaults: many errors
	before := cfg
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate of an undefaulted config = nil")
	}
	if !reflect.DeepEqual(cfg, before) {
		t.Errorf("Validate changed the config: %+v", cfg)
	}
}

// TestReferenceConfig keeps sbc.toml's [media] section valid.
func TestReferenceConfig(t *testing.T) {
	text, err := os.ReadFile("../sbc.toml")
	if err != nil {
		t.Fatalf("read the reference config: %v", err)
	}
	var file struct {
		Media Config `toml:"media"`
	}
	md, err := toml.Decode(string(text), &file)
	if err != nil {
		t.Fatalf("decode sbc.toml: %v", err)
	}
	for _, k := range md.Undecoded() {
		if len(k) > 1 && k[0] == "media" {
			t.Errorf("sbc.toml: unknown key %v", k)
		}
	}
	file.Media.SetDefaults()
	if err := file.Media.Validate(); err != nil {
		t.Errorf("sbc.toml [media]: %v", err)
	}
}

func TestNewRelayRejectsInvalidConfig(t *testing.T) {
	if _, err := NewRelay(Config{BindIP: "127.0.0.1", PortMin: 20001, PortMax: 20010, Timeout: time.Second, Latching: "symmetric"}, nil); err == nil ||
		!strings.Contains(err.Error(), "media.port_min: 20001") {
		t.Errorf("NewRelay with odd port_min: err = %v", err)
	}
}

func TestRelayPublicIP(t *testing.T) {
	for _, tc := range []struct{ bind, public, want string }{
		{"127.0.0.1", "", "127.0.0.1"},
		{"127.0.0.1", "203.0.113.5", "203.0.113.5"},
	} {
		cfg := testConfig()
		cfg.BindIP, cfg.PublicIP = tc.bind, tc.public
		cfg.SetDefaults()
		r, err := NewRelay(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.PublicIP().String(); got != tc.want {
			t.Errorf("bind %q public %q: PublicIP = %s, want %s", tc.bind, tc.public, got, tc.want)
		}
		r.Close()
	}
}

func ptr[T any](v T) *T { return &v }
