//go:build linux

package ladder

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is one ladder run. The zero value of a field means its default
// (see withDefaults), so callers set only what they change.
type Config struct {
	// Systems are run in turn: "sbc", "kamailio" (Kamailio + rtpengine),
	// "kamailio-nomedia" (Kamailio alone, media not anchored).
	Systems []string
	// The rates, in calls/s: Start, then Start+Step (or ×Factor when
	// Factor > 1), ... up to Max.
	Start, Step, Max int
	Factor           float64
	// StepDuration is how long calls are placed at each rate; CallDuration
	// how long each call lasts once answered (sipp's -d).
	StepDuration time.Duration
	CallDuration time.Duration
	// Retry runs a step that failed again, up to this many times, before the
	// ladder stops: one noisy moment on a shared machine should not end it.
	Retry int

	// SBCBin is the sbc daemon; built from sbc/cmd/sbc when empty.
	SBCBin string
	// Testdata is the repository's testdata directory (sipp scenarios, the
	// Kamailio config); found above the working directory when empty.
	Testdata string
	// WorkDir holds the run's configs, logs and sipp statistics in a
	// directory of its own, removed at the end unless Keep.
	WorkDir string
	Keep    bool

	// Loopback addresses: the sipp UAC (calls come from it), the system under
	// test (SIP, and the SBC's media), the sipp UAS (calls go to it), and
	// rtpengine's media and control. Ports are chosen free at run time.
	UACIP, SystemIP, UASIP, RTPEngineIP netip.Addr
	// PortMin is the first media port of the SBC's and rtpengine's range,
	// which is sized for Max (see mediaRange).
	PortMin int
	// KamailioChildren is the number of Kamailio's UDP worker processes.
	KamailioChildren int
}

// Defaults. The addresses and ports keep out of the way of other runs on a
// shared machine (127.0.0.1-3, .10, .20 and ports 20000-40000).
const (
	defaultStart        = 100
	defaultStep         = 100
	defaultMax          = 5000
	defaultStepDuration = 20 * time.Second
	defaultCallDuration = time.Second
	defaultPortMin      = 42000
	// Kamailio's workers each block on every rtpengine round trip (offer,
	// answer, delete), so 4 per core keep 2 cores busy while some wait.
	defaultKamailioChildren = 8
)

var (
	defaultUACIP       = netip.MustParseAddr("127.0.0.41")
	defaultSystemIP    = netip.MustParseAddr("127.0.0.42")
	defaultUASIP       = netip.MustParseAddr("127.0.0.43")
	defaultRTPEngineIP = netip.MustParseAddr("127.0.0.44")
)

// System names.
const (
	SystemSBC             = "sbc"
	SystemKamailio        = "kamailio"
	SystemKamailioNoMedia = "kamailio-nomedia"
)

func (c Config) withDefaults() Config {
	if len(c.Systems) == 0 {
		c.Systems = []string{SystemSBC, SystemKamailio}
	}
	if c.Start == 0 {
		c.Start = defaultStart
	}
	if c.Step == 0 && c.Factor == 0 {
		c.Step = defaultStep
	}
	if c.Max == 0 {
		c.Max = defaultMax
	}
	if c.StepDuration == 0 {
		c.StepDuration = defaultStepDuration
	}
	if c.CallDuration == 0 {
		c.CallDuration = defaultCallDuration
	}
	for _, a := range []struct {
		p *netip.Addr
		d netip.Addr
	}{{&c.UACIP, defaultUACIP}, {&c.SystemIP, defaultSystemIP}, {&c.UASIP, defaultUASIP}, {&c.RTPEngineIP, defaultRTPEngineIP}} {
		if !a.p.IsValid() {
			*a.p = a.d
		}
	}
	if c.PortMin == 0 {
		c.PortMin = defaultPortMin
	}
	if c.KamailioChildren == 0 {
		c.KamailioChildren = defaultKamailioChildren
	}
	return c
}

// Validate checks c with its defaults, without side effects: what Run
// does first.
func (c Config) Validate() error { return c.withDefaults().validate() }

func (c Config) validate() error {
	seen := map[string]bool{}
	for _, s := range c.Systems {
		switch s {
		case SystemSBC, SystemKamailio, SystemKamailioNoMedia:
		default:
			return fmt.Errorf("system %q: want %s, %s or %s", s, SystemSBC, SystemKamailio, SystemKamailioNoMedia)
		}
		if seen[s] {
			return fmt.Errorf("system %q listed twice", s)
		}
		seen[s] = true
	}
	switch {
	case c.Start < 1 || c.Max < c.Start:
		return fmt.Errorf("start %d, max %d calls/s: want 1 <= start <= max", c.Start, c.Max)
	case c.Factor != 0 && (c.Factor <= 1 || c.Step != 0):
		return fmt.Errorf("step factor %v: want > 1, and no increment with it", c.Factor)
	case c.Factor == 0 && c.Step < 1:
		return fmt.Errorf("step %d calls/s: want an increment >= 1 (or a factor > 1)", c.Step)
	case c.StepDuration < time.Second:
		return fmt.Errorf("step duration %v: want at least 1s", c.StepDuration)
	case c.CallDuration < 0:
		return fmt.Errorf("call duration %v: want >= 0", c.CallDuration)
	case c.Retry < 0:
		return fmt.Errorf("retry %d: want >= 0", c.Retry)
	case c.KamailioChildren < 1:
		return fmt.Errorf("kamailio children %d: want >= 1", c.KamailioChildren)
	case c.PortMin < 1024 || c.PortMin%2 != 0 || c.PortMin > 65000:
		return fmt.Errorf("media port min %d: want an even port in 1024..65000", c.PortMin)
	}
	addrs := map[netip.Addr]string{}
	for _, a := range []struct {
		name string
		ip   netip.Addr
	}{{"uac", c.UACIP}, {"system", c.SystemIP}, {"uas", c.UASIP}, {"rtpengine", c.RTPEngineIP}} {
		if !a.ip.Is4() || !a.ip.IsLoopback() {
			return fmt.Errorf("%s address %v: want an IPv4 loopback address", a.name, a.ip)
		}
		if other, dup := addrs[a.ip]; dup {
			return fmt.Errorf("%s address %v: %s has it already; want one address each", a.name, a.ip, other)
		}
		addrs[a.ip] = a.name
	}
	return nil
}

// ParseStep reads a step as written on the command line: an increment in
// calls/s ("100"), or a factor ("x1.5").
func ParseStep(s string) (step int, factor float64, err error) {
	if f, ok := strings.CutPrefix(s, "x"); ok {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 1 {
			return 0, 0, fmt.Errorf("%q: want a factor > 1, e.g. x1.5", s)
		}
		return 0, v, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("%q: want an increment in calls/s >= 1, or a factor such as x1.5", s)
	}
	return n, 0, nil
}

// Rates are the ladder's steps in calls/s, rising from Start to at most
// Max.
func (c Config) Rates() []int {
	var rates []int
	for r := c.Start; r <= c.Max; {
		rates = append(rates, r)
		next := r + c.Step
		if c.Factor > 1 {
			next = max(int(math.Round(float64(r)*c.Factor)), r+1)
		}
		r = next
	}
	return rates
}

// mediaRange is the media port range of the SBC and of rtpengine: 4 ports
// (2 pairs, one per leg) for twice the calls up at the top rate, plus
// slack for ports other processes hold; cut at 65535, in which case steps
// beyond what it holds may fail for want of ports (the report shows the
// range and the calls it holds).
func (c Config) mediaRange() (lo, hi, calls int) {
	const slack = 64
	up := int(math.Ceil(2*float64(c.Max)*max(c.CallDuration.Seconds(), 0.1))) + slack
	lo, hi = c.PortMin, c.PortMin+4*up-1
	if hi > 65535 {
		hi = lo + (65536-lo)/4*4 - 1 // whole groups of 4 from lo
	}
	return lo, hi, (hi - lo + 1) / 4
}

// findTestdata returns the testdata directory of the sbc repository above
// the working directory.
func findTestdata() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find testdata: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && hasModuleLine(b, "sbc") {
			return filepath.Join(d, "testdata"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find testdata: no go.mod of module sbc in %s or above; run from inside the sbc repository", dir)
		}
	}
}

func hasModuleLine(gomod []byte, module string) bool {
	for line := range strings.Lines(string(gomod)) {
		if strings.TrimSpace(line) == "module "+module {
			return true
		}
	}
	return false
}
