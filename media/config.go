package media

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Latching modes of Config.Latching.
const (
	// LatchingSymmetric learns each leg's source address from its first
	// packet and sends that leg's media back there (RFC 4961 symmetric RTP),
	// which is what makes peers behind NAT work.
	LatchingSymmetric = "symmetric"
	// LatchingStrict accepts media only from the address signalled in SDP.
	LatchingStrict = "strict"
)

// Steering modes of Config.Steering.
const (
	// SteeringAuto steers the port range to a few sockets when the process
	// may (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW; an IPv4 bind_ip) and falls
	// back to one socket per port otherwise, saying so at start.
	SteeringAuto = "auto"
	// SteeringOn refuses to start without steering.
	SteeringOn = "on"
	// SteeringOff always binds one socket per port.
	SteeringOff = "off"
)

// Config is the [media] section of sbc.toml. Use it in four steps: decode,
// SetDefaults, Validate, then NewRelay.
type Config struct {
	// BindIP is the address the RTP/RTCP sockets bind to.
	BindIP string `toml:"bind_ip"`
	// PublicIP is written into SDP: where peers send media. Defaults to
	// BindIP; required when BindIP is unspecified (0.0.0.0 or ::).
	PublicIP string `toml:"public_ip"`
	// PortMin and PortMax bound the media port range, inclusive. PortMin is
	// even: RTP takes the even port and RTCP the next one (RFC 3550 §11).
	PortMin int `toml:"port_min"`
	PortMax int `toml:"port_max"`
	// Timeout is how long a session may receive nothing before the caller
	// should end the call (see Session.LastActivity).
	Timeout time.Duration `toml:"timeout"`
	// Latching is LatchingSymmetric or LatchingStrict.
	Latching string `toml:"latching"`
	// Steering is SteeringAuto, SteeringOn or SteeringOff.
	Steering string `toml:"steering"`
	// Workers is the number of relay goroutines (and sockets) of a steered
	// relay; 0 means one per CPU (GOMAXPROCS).
	Workers int `toml:"workers"`
	// ReservePorts makes a steered relay reserve its range in
	// net.ipv4.ip_local_reserved_ports while it runs (default true).
	ReservePorts *bool `toml:"reserve_ports"`
	// FastPath is FastPathAuto, FastPathXDP, FastPathTC or FastPathOff: how
	// the kernel program that closes the media ports of no call (package
	// firewall) is attached to the media interfaces.
	FastPath string `toml:"fast_path"`
	// Interfaces are the media interfaces; empty: the one holding BindIP.
	Interfaces []string `toml:"interfaces"`
	// PinPath is a directory on a bpf filesystem where the fast path's
	// maps and links are pinned, so that calls it forwards outlive the
	// daemon (killed or upgraded). nil: DefaultPinPath; "": not pinned.
	PinPath *string `toml:"pin_path"`
}

// Values of Config.FastPath.
const (
	FastPathAuto = "auto" // XDP in the driver, else TC, else XDP in the stack; off with a reason when none works
	FastPathXDP  = "xdp"  // XDP in the driver, else in the stack; the daemon refuses to start without it
	FastPathTC   = "tc"   // TC ingress (tcx); the daemon refuses to start without it
	FastPathOff  = "off"
)

// maxWorkers bounds Config.Workers (the steering program's socket map holds 64).
const maxWorkers = 64

// Defaults of Config.
const (
	DefaultBindIP  = "0.0.0.0"
	DefaultPortMin = 20000
	DefaultPortMax = 29999
	DefaultTimeout = 60 * time.Second
)

// SetDefaults fills zero fields only.
func (c *Config) SetDefaults() {
	if c.BindIP == "" {
		c.BindIP = DefaultBindIP
	}
	if c.PublicIP == "" {
		if ip, err := netip.ParseAddr(c.BindIP); err == nil && !ip.IsUnspecified() {
			c.PublicIP = c.BindIP
		}
	}
	if c.PortMin == 0 {
		c.PortMin = DefaultPortMin
	}
	if c.PortMax == 0 {
		c.PortMax = DefaultPortMax
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Latching == "" {
		c.Latching = LatchingSymmetric
	}
	if c.Steering == "" {
		c.Steering = SteeringAuto
	}
	if c.ReservePorts == nil {
		yes := true
		c.ReservePorts = &yes
	}
	if c.FastPath == "" {
		c.FastPath = FastPathAuto
	}
	if c.PinPath == nil {
		p := DefaultPinPath
		c.PinPath = &p
	}
}

// DefaultPinPath is media.pin_path when the config says nothing.
const DefaultPinPath = "/sys/fs/bpf/sbc"

// Validate checks every field without side effects and returns all problems
// joined, each a *ConfigError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, value, problem, want string) {
		errs = append(errs, &ConfigError{Key: key, Value: value, Problem: problem, Want: want})
	}

	bind, err := parseIP(c.BindIP)
	if err != nil {
		bad("media.bind_ip", strconv.Quote(c.BindIP), "is not an IP address",
			`an IPv4 or IPv6 address such as "0.0.0.0" or "192.0.2.10"`)
	}
	switch {
	case c.PublicIP == "" && err == nil && bind.IsUnspecified():
		bad("media.public_ip", `""`, fmt.Sprintf("is empty while media.bind_ip is %q", c.BindIP),
			`the IP address peers send media to, e.g. "203.0.113.5"`)
	case c.PublicIP != "":
		if pub, err := parseIP(c.PublicIP); err != nil {
			bad("media.public_ip", strconv.Quote(c.PublicIP), "is not an IP address",
				`the IP address peers send media to, e.g. "203.0.113.5"`)
		} else if pub.IsUnspecified() {
			bad("media.public_ip", strconv.Quote(c.PublicIP), "is unspecified",
				`the IP address peers send media to, e.g. "203.0.113.5"`)
		}
	}

	minOK := false
	switch {
	case c.PortMin < 1024 || c.PortMin > 65534:
		bad("media.port_min", strconv.Itoa(c.PortMin), "is out of range", "an even port number in 1024..65534")
	case c.PortMin%2 != 0:
		bad("media.port_min", strconv.Itoa(c.PortMin), "is odd", "an even port number (RTP even, RTCP = RTP+1)")
	default:
		minOK = true
	}
	switch {
	case c.PortMax > 65535 || c.PortMax < 1:
		bad("media.port_max", strconv.Itoa(c.PortMax), "is out of range", "a port number in 1..65535 above media.port_min")
	case !minOK:
	case c.PortMax <= c.PortMin:
		bad("media.port_max", strconv.Itoa(c.PortMax), fmt.Sprintf("is not above media.port_min (%d)", c.PortMin),
			"port_max > port_min")
	case c.PortMax-c.PortMin+1 < 4:
		bad("media.port_max", strconv.Itoa(c.PortMax),
			fmt.Sprintf("leaves %d ports from media.port_min %d", c.PortMax-c.PortMin+1, c.PortMin),
			"a range of at least 4 ports (an RTP/RTCP pair per call leg)")
	}

	if c.Timeout <= 0 {
		bad("media.timeout", strconv.Quote(c.Timeout.String()), "is not positive", `a duration such as "60s"`)
	}
	if c.Latching != LatchingSymmetric && c.Latching != LatchingStrict {
		bad("media.latching", strconv.Quote(c.Latching), "is unknown", `"symmetric" or "strict"`)
	}
	if c.Steering != SteeringAuto && c.Steering != SteeringOn && c.Steering != SteeringOff {
		bad("media.steering", strconv.Quote(c.Steering), "is unknown", `"auto", "on" or "off"`)
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		bad("media.workers", strconv.Itoa(c.Workers), "is out of range",
			fmt.Sprintf("0 (one per CPU) to %d", maxWorkers))
	}
	switch c.FastPath {
	case FastPathAuto, FastPathXDP, FastPathTC, FastPathOff:
	default:
		bad("media.fast_path", strconv.Quote(c.FastPath), "is unknown", `"auto", "xdp", "tc" or "off"`)
	}
	for i, name := range c.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t") {
			bad(fmt.Sprintf("media.interfaces[%d]", i), strconv.Quote(name), "is not an interface name",
				`a network interface name such as "eth0" (at most 15 characters)`)
		}
	}
	if p := c.PinPath; p != nil && *p != "" && (!filepath.IsAbs(*p) || filepath.Clean(*p) == "/") {
		bad("media.pin_path", strconv.Quote(*p), "is not an absolute directory path",
			`a directory on a bpf filesystem such as "/sys/fs/bpf/sbc", or "" not to pin`)
	}
	if err == nil && bind.IsUnspecified() && len(c.Interfaces) == 0 && (c.FastPath == FastPathXDP || c.FastPath == FastPathTC) {
		bad("media.interfaces", "[]", fmt.Sprintf("is empty while media.bind_ip is %q and media.fast_path is %q", c.BindIP, c.FastPath),
			`the media interfaces, e.g. ["eth0"], or a media.bind_ip of one of them`)
	}
	return errors.Join(errs...)
}

// parseIP accepts a plain IP literal; zones are refused because a media
// address goes into SDP, which has no syntax for them.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zone %q not allowed", ip.Zone())
	}
	return ip.Unmap(), nil
}

// totalPairs is the number of RTP/RTCP pairs the range holds.
func (c *Config) totalPairs() int { return (c.PortMax - c.PortMin + 1) / 2 }
