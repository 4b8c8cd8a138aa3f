// Package sbctest helps tests and benchmarks run the real sbc daemon, as
// net/http/httptest does servers. Only they import it, never the daemon.
package sbctest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"sbc/control"
	"sbc/media"
	"sbc/sbc"
)

// DaemonConfig is what tests and benchmarks vary in the daemon's sbc.toml;
// TOML writes the whole file. The daemon takes SIP and media on one IP,
// logs JSON (which the harnesses read) and latches media symmetrically.
// A zero duration, Steering or Workers is the daemon's default.
// media.reserve_ports is always false.
type DaemonConfig struct {
	LogLevel  string // [log] level: "debug", "info", "warn" or "error"
	UserAgent string // names the harness in the daemon's SIP headers

	IP      netip.Addr    // SIP listeners, Via and Contact, media sockets and SDP
	SIPPort int           // the UDP listener's port on IP
	TCP     bool          // a TCP listener on SIPPort too
	T1      time.Duration // sip.t1
	// BanThreshold is sip.ban_threshold (0: the default, negative: no
	// bans); BanTime sip.ban_time.
	BanThreshold int
	BanTime      time.Duration

	PortMin, PortMax int           // media port range
	MediaTimeout     time.Duration // media.timeout
	Steering         string        // media.steering
	Workers          int           // media.workers
	FastPath         string        // media.fast_path
	Interfaces       []string      // media.interfaces
	// PinPath is media.pin_path and StateDir calls.state_dir: "" (no
	// pinning, no call state), so that daemons of tests running side by
	// side never take over each other's calls.
	PinPath  string
	StateDir string

	MaxDuration  time.Duration // calls.max_duration; 0 disables
	RingTimeout  time.Duration // calls.ring_timeout
	DrainTimeout time.Duration // calls.drain_timeout

	// Control is the [control] section. Its data_dir must be set (a
	// test's temporary directory); api.listen nil is "" here: no API
	// unless the test asks (several daemons may run at once).
	Control control.Config

	// Calls from Caller go to Callee; with Reverse, those from Callee go
	// to Caller too.
	Caller, Callee Trunk
	Reverse        bool

	// Edit, when set, changes the daemon's Config last (TLS listeners
	// and trunks, anything the fields above do not say).
	Edit func(*sbc.Config)
}

// Trunk is a UDP [[trunk]] that sends only from its own address.
type Trunk struct {
	Name    string
	Account string // trunk.account: the customer account owning it
	Addr    netip.AddrPort
	// Media is its srtp, codecs and srtp_suites; zero values are the
	// daemon's defaults.
	Media sbc.MediaPolicy
}

func (t Trunk) config() sbc.Trunk {
	return sbc.Trunk{Name: t.Name, Address: t.Addr.String(), Transport: "udp", Sources: []string{t.Addr.Addr().String()},
		Account: t.Account, MediaPolicy: t.Media}
}

// config is c as the daemon's Config, with the daemon's defaults filled in
// so that the file states every value the daemon runs with.
func (c DaemonConfig) config() sbc.Config {
	ip := c.IP.String()
	sip := netip.AddrPortFrom(c.IP, uint16(c.SIPPort)).String()
	listen := []sbc.Listener{{Transport: "udp", Address: sip}}
	if c.TCP {
		listen = append(listen, sbc.Listener{Transport: "tcp", Address: sip})
	}
	routes := []sbc.Route{{From: c.Caller.Name, To: c.Callee.Name}}
	if c.Reverse {
		routes = append(routes, sbc.Route{From: c.Callee.Name, To: c.Caller.Name})
	}
	cfg := sbc.Config{
		Log: sbc.LogConfig{Level: c.LogLevel, Format: "json"},
		SIP: sbc.SIPConfig{PublicIP: ip, UserAgent: c.UserAgent, T1: c.T1, Listen: listen, BanTime: c.BanTime},
		Media: media.Config{BindIP: ip, PublicIP: ip, PortMin: c.PortMin, PortMax: c.PortMax,
			Timeout: c.MediaTimeout, Latching: media.LatchingSymmetric, Steering: c.Steering, Workers: c.Workers,
			FastPath: c.FastPath, Interfaces: c.Interfaces, PinPath: &c.PinPath,
			// Test and benchmark daemons may be killed; they must not leave
			// the machine's ephemeral ports reserved.
			ReservePorts: &noReserve},
		Calls: sbc.CallsConfig{MaxDuration: c.MaxDuration, RingTimeout: c.RingTimeout, DrainTimeout: c.DrainTimeout,
			StateDir: &c.StateDir},
		Trunks:  []sbc.Trunk{c.Caller.config(), c.Callee.config()},
		Routes:  routes,
		Control: c.Control,
	}
	if cfg.Control.API.Listen == nil {
		off := ""
		cfg.Control.API.Listen = &off
	}
	if c.BanThreshold != 0 {
		n := max(c.BanThreshold, 0)
		cfg.SIP.BanThreshold = &n
	}
	if c.Edit != nil {
		c.Edit(&cfg)
	}
	cfg.SetDefaults()
	return cfg
}

// TOML is c as an sbc.toml.
func (c DaemonConfig) TOML() string {
	var b strings.Builder
	b.WriteString("# Written by sbc/sbctest for " + strconv.Quote(c.UserAgent) + ".\n")
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(c.config()); err != nil {
		// sbc.Config holds only types TOML has.
		panic(fmt.Sprintf("sbctest: encode config: %v", err))
	}
	return b.String()
}

var noReserve = false
