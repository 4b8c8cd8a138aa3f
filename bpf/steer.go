// Package bpf holds the SBC's eBPF programs (C sources, the Go and objects
// bpf2go generated from them) and loads and attaches them.
package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// SteerConfig says which datagrams a Steering takes and where they go.
type SteerConfig struct {
	// PortMin..PortMax (inclusive) is the media port range.
	PortMin, PortMax uint16
	// IP is the local IPv4 address the range is steered on; the unspecified
	// address 0.0.0.0 steers it on every local address.
	IP netip.Addr
	// Sockets are bound, unconnected UDP/IPv4 sockets (file descriptors)
	// that receive the open ports' datagrams. At most 64.
	Sockets []int
}

// maxSockets is the size of the socks SOCKMAP in steer.c.
const maxSockets = 64

// Steering is an sk_lookup program attached to the calling process's network
// namespace: a datagram to an open port of the range is delivered to one of
// the configured sockets, whatever port that socket is bound to. Nothing is
// pinned: Close, or the process's end, detaches it. Open and Close of ports
// are safe for concurrent use.
type Steering struct {
	objs steerObjects
	link link.Link
	min  uint16
	max  uint16
	n    int
	// others is how many sk_lookup programs were attached to the network
	// namespace before this one.
	others int
}

// AttachSteering loads and attaches the program with every port closed. It
// needs CAP_BPF and CAP_NET_ADMIN; the error says what failed.
func AttachSteering(c SteerConfig) (*Steering, error) {
	switch {
	case c.PortMin == 0 || c.PortMax < c.PortMin:
		return nil, fmt.Errorf("steering: bad port range %d-%d", c.PortMin, c.PortMax)
	case !c.IP.Is4():
		return nil, fmt.Errorf("steering: %v is not an IPv4 address", c.IP)
	case len(c.Sockets) == 0 || len(c.Sockets) > maxSockets:
		return nil, fmt.Errorf("steering: %d sockets, want 1..%d", len(c.Sockets), maxSockets)
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	ip := c.IP.As4()
	for name, v := range map[string]uint32{
		steerVarPortMin:  uint32(c.PortMin),
		steerVarPortMax:  uint32(c.PortMax),
		steerVarLocalIp4: binary.NativeEndian.Uint32(ip[:]), // ctx->local_ip4 is in network order
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("steering: set %s: %w", name, err)
		}
	}
	spec.Maps[steerMapPorts].MaxEntries = uint32(c.PortMax-c.PortMin) + 1

	s := &Steering{min: c.PortMin, max: c.PortMax, n: len(c.Sockets)}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("steering: load sk_lookup program: %w", err)
	}
	for i, fd := range c.Sockets {
		if err := s.objs.Socks.Put(uint32(i), uint64(fd)); err != nil {
			s.Close()
			return nil, fmt.Errorf("steering: add socket %d to the sockmap: %w", i, err)
		}
	}
	ns, err := os.Open("/proc/self/ns/net")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("steering: %w", err)
	}
	defer ns.Close()
	if q, err := link.QueryPrograms(link.QueryOptions{Target: int(ns.Fd()), Attach: ebpf.AttachSkLookup}); err == nil {
		s.others = len(q.Programs)
	}
	if s.link, err = link.AttachNetNs(int(ns.Fd()), s.objs.Steer); err != nil {
		s.Close()
		return nil, fmt.Errorf("steering: attach sk_lookup to the network namespace: %w", err)
	}
	return s, nil
}

// Others is how many sk_lookup programs (another relay's, say) were
// attached to the network namespace before this one. They run first: one
// that steers the same address and ports takes their datagrams.
func (s *Steering) Others() int { return s.others }

// Open steers port to socket index i of SteerConfig.Sockets.
func (s *Steering) Open(port uint16, i int) error {
	if port < s.min || port > s.max || i < 0 || i >= s.n {
		return fmt.Errorf("steering: open port %d on socket %d: out of range", port, i)
	}
	return s.objs.Ports.Put(uint32(port-s.min), uint32(i+1))
}

// Shut closes port: its datagrams meet the regular socket lookup again.
func (s *Steering) Shut(port uint16) error {
	if port < s.min || port > s.max {
		return fmt.Errorf("steering: shut port %d: out of range", port)
	}
	return s.objs.Ports.Put(uint32(port-s.min), uint32(0))
}

// Close detaches the program and frees it and its maps.
func (s *Steering) Close() error {
	var errs []error
	if s.link != nil {
		errs = append(errs, s.link.Close())
	}
	errs = append(errs, s.objs.Close())
	return errors.Join(errs...)
}
