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
	reserved, err := readReserved()
	if err != nil {
		return 0, err
	}
	for p := max(first, lo); p <= min(last, hi); p++ {
		if !reserved[p] {
			clash++
		}
	}
	return clash, nil
}

const reservedPortsPath = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// reservePorts adds [first, last] to net.ipv4.ip_local_reserved_ports of
// this network namespace, keeping what is there: the kernel then gives none
// of them to a socket as its ephemeral port. It needs CAP_NET_ADMIN, which
// steering needs anyway. undo takes back the ports it added (not those
// reserved before), for when the relay closes.
func reservePorts(first, last int) (undo func() error, err error) {
	cur, err := readReserved()
	if err != nil {
		return nil, err
	}
	var added []int
	for p := first; p <= last; p++ {
		if !cur[p] {
			cur[p] = true
			added = append(added, p)
		}
	}
	if err := writeReserved(cur); err != nil {
		return nil, err
	}
	return func() error {
		now, err := readReserved()
		if err != nil {
			return err
		}
		for _, p := range added {
			delete(now, p)
		}
		return writeReserved(now)
	}, nil
}

func readReserved() (map[int]bool, error) {
	b, err := os.ReadFile(reservedPortsPath)
	if err != nil {
		return nil, err
	}
	set, err := parsePortList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("ip_local_reserved_ports: %w", err)
	}
	return set, nil
}

func writeReserved(set map[int]bool) error {
	return os.WriteFile(reservedPortsPath, []byte(formatPortList(set)+"\n"), 0o644)
}

// formatPortList writes set in the kernel's syntax: "1000,2000-2010".
func formatPortList(set map[int]bool) string {
	var b strings.Builder
	for p := 0; p <= 65535; p++ {
		if !set[p] {
			continue
		}
		q := p
		for q+1 <= 65535 && set[q+1] {
			q++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if q == p {
			fmt.Fprintf(&b, "%d", p)
		} else {
			fmt.Fprintf(&b, "%d-%d", p, q)
		}
		p = q
	}
	return b.String()
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
