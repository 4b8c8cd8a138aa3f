//go:build linux

package media

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ephemeralClash tells whether ports of [first, last] are in the kernel's
// ephemeral range (net.ipv4.ip_local_port_range) without being reserved
// (net.ipv4.ip_local_reserved_ports), and how many. A steered relay takes the
// datagrams of every open media port, so another program's socket that got
// such a port as its ephemeral port would lose its replies to the relay.
func ephemeralClash(first, last int) (clash int, err error) {
	rng, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(rng))
	if len(f) != 2 {
		return 0, fmt.Errorf("ip_local_port_range: %q", rng)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("ip_local_port_range: %q", rng)
	}
	res, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports")
	if err != nil {
		return 0, err
	}
	reserved, err := parsePortList(strings.TrimSpace(string(res)))
	if err != nil {
		return 0, fmt.Errorf("ip_local_reserved_ports: %w", err)
	}
	for p := max(first, lo); p <= min(last, hi); p++ {
		if !reserved[p] {
			clash++
		}
	}
	return clash, nil
}

// parsePortList reads the kernel's port list syntax: "1000,2000-2010".
func parsePortList(s string) (map[int]bool, error) {
	set := map[int]bool{}
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		lo, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", part)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(b); err != nil || hi < lo {
				return nil, fmt.Errorf("bad range %q", part)
			}
		}
		for p := lo; p <= hi && p <= 65535; p++ {
			set[p] = true
		}
	}
	return set, nil
}
