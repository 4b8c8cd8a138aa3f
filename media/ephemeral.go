//go:build linux

package media

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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
// reserved before), for when the relay closes. Both hold an exclusive lock
// on the sysctl file, so that daemons starting or stopping together do not
// lose each other's changes.
//
// The ports a relay added are written down in a marker file under
// markerDir (DefaultMarkerDir: a tmpfs that goes at reboot as the sysctl does): a
// relay that exits without giving them back (killed, or handing its calls
// over to the next daemon) leaves them to the next relay of the same
// range, which takes them over from the marker and gives them back at its
// Close. Meanwhile they stay reserved: no other socket takes a port of a
// call that outlived its daemon.
func reservePorts(first, last int, markerDir string) (undo func() error, err error) {
	marker := reservedMarker(markerDir, first, last)
	owned := map[int]bool{}
	if b, err := os.ReadFile(marker); err == nil {
		if set, err := parsePortList(strings.TrimSpace(string(b))); err == nil {
			for p := range set {
				if p >= first && p <= last {
					owned[p] = true
				}
			}
		}
	}
	err = editReserved(func(set map[int]bool) {
		for p := first; p <= last; p++ {
			if !set[p] {
				set[p] = true
				owned[p] = true
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(markerDir, 0o700); err == nil {
		os.WriteFile(marker, []byte(formatPortList(owned)+"\n"), 0o600) // best effort: without it a kill leaves them reserved
	}
	return func() error {
		err := editReserved(func(set map[int]bool) {
			for p := range owned {
				delete(set, p)
			}
		})
		if err == nil {
			os.Remove(marker)
		}
		return err
	}, nil
}

func reservedMarker(dir string, first, last int) string {
	return filepath.Join(dir, fmt.Sprintf("reserved-ports-%d-%d", first, last))
}

// reservationLeft tells whether an earlier relay of the range left its
// reservation behind.
func reservationLeft(dir string, first, last int) bool {
	_, err := os.Stat(reservedMarker(dir, first, last))
	return err == nil
}

// editReserved reads the reserved ports, lets edit change them and writes
// them back, under an exclusive flock on the sysctl file.
func editReserved(edit func(map[int]bool)) error {
	f, err := os.OpenFile(reservedPortsPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", reservedPortsPath, err)
	}
	set, err := readPortList(f)
	if err != nil {
		return err
	}
	edit(set)
	// A sysctl is written whole from offset 0.
	if _, err := f.WriteAt([]byte(formatPortList(set)+"\n"), 0); err != nil {
		return fmt.Errorf("write %s: %w", reservedPortsPath, err)
	}
	return nil
}

func readReserved() (map[int]bool, error) {
	f, err := os.Open(reservedPortsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readPortList(f)
}

// readPortList reads a port-list sysctl in one read from offset 0: the
// kernel returns EOF to a read that starts anywhere else, so os.ReadFile's
// 512-byte chunks would cut a long list. The longest list (every other
// port) is under 200 KiB.
func readPortList(f *os.File) (map[int]bool, error) {
	buf := make([]byte, 256<<10)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if n == len(buf) {
		return nil, fmt.Errorf("read %s: longer than %d bytes", f.Name(), len(buf))
	}
	set, err := parsePortList(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return set, nil
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
