//go:build !linux

package firewall

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"sbc/bpf"
	"sbc/media"
)

// Firewall needs Linux.
type Firewall struct{}

// Start: the fast path needs Linux; "auto" runs without it.
func Start(c Config, _ *slog.Logger) (*Firewall, string, error) {
	if c.Mode == media.FastPathAuto || c.Mode == media.FastPathOff {
		return nil, "the kernel fast path needs Linux", nil
	}
	return nil, "", errors.New("media.fast_path: the kernel fast path needs Linux")
}

func (*Firewall) Attached() []string              { return nil }
func (*Firewall) Open(uint16) error               { return errors.New("firewall: needs Linux") }
func (*Firewall) Shut(uint16) error               { return nil }
func (*Firewall) Counters() (bpf.Counters, error) { return bpf.Counters{}, nil }
func (*Firewall) Deny(netip.Prefix) error         { return errors.New("firewall: needs Linux") }
func (*Firewall) Allow(netip.Prefix) error        { return nil }
func (*Firewall) Close() error                    { return nil }

func (*Firewall) Forward(uint16, netip.AddrPort, netip.AddrPort, netip.AddrPort, bool) error {
	return errors.New("firewall: needs Linux")
}
func (*Firewall) Unforward(uint16) error                     { return nil }
func (*Firewall) PortStats(uint16) (bpf.PortStats, error)    { return bpf.PortStats{}, nil }
func (*Firewall) Generation() uint64                         { return 0 }
func (*Firewall) Pinned() bool                               { return false }
func (*Firewall) Inherited() (map[uint16]bpf.Pinhole, error) { return nil, nil }
func (*Firewall) Unpin() error                               { return nil }

// SIPGuard needs Linux.
type SIPGuard struct{}

func StartSIPGuard(Config) (*SIPGuard, error)           { return nil, errors.New("nftables: needs Linux") }
func RemoveSIPGuard(uint16) error                       { return nil }
func (*SIPGuard) Dropped() (uint64, error)              { return 0, nil }
func (*SIPGuard) Close() error                          { return nil }
func (*SIPGuard) Ban(netip.Prefix, time.Duration) error { return errors.New("nftables: needs Linux") }
func (*SIPGuard) Unban(netip.Prefix) error              { return nil }
func (*Firewall) Ban(netip.Prefix, time.Duration) error { return errors.New("firewall: needs Linux") }
func (*Firewall) Unban(netip.Prefix) error              { return nil }
