//go:build linux

package ladder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// udpBound lists the local addresses of the IPv4 UDP sockets in the text
// of /proc/net/udp (proc(5)): "IIIIIIII:PPPP", the address in host byte
// order (little-endian here), the port big-endian, both in hex.
func udpBound(b []byte) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		ipHex, portHex, ok := bytes.Cut(f[1], []byte(":"))
		ip, err := hex.DecodeString(string(ipHex))
		if !ok || err != nil || len(ip) != 4 {
			return nil, fmt.Errorf("parse /proc/net/udp: local address %q; want IIIIIIII:PPPP", f[1])
		}
		port, err := strconv.ParseUint(string(portHex), 16, 16)
		if err != nil {
			return nil, fmt.Errorf("parse /proc/net/udp: port of %q: %w", f[1], err)
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(ip))
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)))
	}
	return out, sc.Err()
}

// waitBound waits until some process has a UDP socket bound to a, or for
// up to timeout; died, when it closes, means the process that was to bind
// it is gone.
func waitBound(ctx context.Context, a netip.AddrPort, timeout time.Duration, died <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return fmt.Errorf("wait for %v: %w", a, err)
		}
		bound, err := udpBound(b)
		if err != nil {
			return fmt.Errorf("wait for %v: %w", a, err)
		}
		for _, x := range bound {
			if x == a {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing bound udp %v within %v", a, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %v: %w", a, context.Cause(ctx))
		case <-died:
			return fmt.Errorf("exited before binding udp %v", a)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
