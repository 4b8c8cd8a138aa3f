//go:build !linux

package media

import (
	"errors"
	"net/netip"
)

// steered needs Linux (BPF sk_lookup, recvmmsg, raw sockets): elsewhere
// the relay always binds one socket per port.
type steered struct{ transport }

func newSteered(netip.Addr, *portAllocator, int, int, int, func() int64) (*steered, error) {
	return nil, errors.New("it needs Linux")
}

func (*steered) others() int { return 0 }

func ephemeralClash(int, int) (int, error) { return 0, nil }

func reservePorts(int, int, string) (func() error, error) { return nil, errors.New("it needs Linux") }

func reservationLeft(string, int, int) bool { return false }

func (*steered) unrouted() uint64 { return 0 }
