package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// FastPathConfig says which packets the fast path filters and forwards.
type FastPathConfig struct {
	// PortMin..PortMax (inclusive) is the media port range.
	PortMin, PortMax uint16
	// IP4 and IP6 are the media addresses: UDP to the range is filtered
	// only towards them. Both invalid (zero): every destination.
	IP4, IP6 netip.Addr
	// TTL of forwarded packets; 0 means 64, what the userspace relay sends.
	TTL uint8
	// SIPPorts (at most 4) are the SIP listeners' ports: UDP and TCP to
	// them from one source beyond SIPRate packets/s, after a burst of
	// SIPBurst, is dropped. SIPRate 0: no limit. Trusted sources (Trust)
	// are exempt.
	SIPPorts []uint16
	SIPRate  int
	SIPBurst int
	// PinPath, when set, is a directory on a bpf filesystem where the
	// per-port maps and the links are pinned (pin.go): they outlive the
	// process, and the next LoadFastPath with the same PinPath and port
	// range takes them over.
	PinPath string
}

// maxSIPPorts is the size of sip_ports in fastpath.c.
const maxSIPPorts = 4

// Pinhole is what the fast path does with UDP to one open media port.
type Pinhole struct {
	// Peer, when valid, is the latched peer: from any other source the
	// port's packets are dropped (strict latching).
	Peer netip.AddrPort
	// Forward, when set, relays the port's packets in the kernel, IPv4 to
	// IPv4 or IPv6 to IPv6 (IPv6 with no extension header).
	Forward *Forward
	// ForwardFrom, when valid with Forward, forwards only what comes from
	// it; other sources' packets go to userspace (not dropped, as with
	// Peer): the userspace relay decides whether to latch a new source.
	ForwardFrom netip.AddrPort
}

// Forward rewrites a packet to the other leg of its stream: it leaves from
// From (the relay's address and port on that leg) to To (that leg's peer).
type Forward struct {
	From, To netip.AddrPort
	// Via is the next hop towards To. Nil: the program asks the kernel's
	// FIB, which answers only where forwarding is enabled on the interface
	// the packet came in by (net.ipv4.conf.IF.forwarding); otherwise the
	// packet goes to the userspace relay.
	Via *NextHop
}

// NextHop is where a forwarded packet leaves: an interface and the
// Ethernet addresses to write.
type NextHop struct {
	Ifindex  int
	Src, Dst net.HardwareAddr
}

// PortStats are a port's counters since it was opened, summed over CPUs.
type PortStats struct {
	Packets, Bytes uint64 // every packet let through to the port (Bytes: IP datagram bytes)
	Forwarded      uint64 // of those, forwarded in the kernel
	ForwardedBytes uint64
	// LastSeen is the CLOCK_MONOTONIC time of the last packet let through
	// (0: none), comparable with Monotonic; LastForwarded of the last one
	// forwarded, which only the latched peer's are.
	LastSeen, LastForwarded time.Duration
}

// Counters are the fast path's drops and decisions, summed over CPUs.
type Counters struct {
	Denied    uint64 // dropped: source in the deny map
	Closed    uint64 // dropped: UDP to a media port of no call
	NotPeer   uint64 // dropped: strict pinhole, not the latched peer
	Forwarded uint64 // forwarded in the kernel
	NoRoute   uint64 // a forward entry, but no route or neighbour yet: passed to userspace
	Fragments uint64 // IPv4 fragments to the media address: passed to the stack
	// RateLimited: dropped, a source over the SIP packet rate.
	RateLimited uint64
	Banned      uint64 // dropped: to a SIP port from a banned source
}

// The indexes of the counters map, in the order of fastpath.c's enum.
const (
	countDenied = iota
	countClosed
	countNotPeer
	countForwarded
	countNoRoute
	countFragment
	countRateLimited
	countBanned
	countMax
)

// Port entry flags, as in fastpath.c.
const (
	portOpen        = 1
	portStrict      = 2
	portForward     = 4
	portForwardPeer = 8
	portOut6        = 16
)

// FastPath is the loaded media fast path: maps and programs, attached to
// interfaces with AttachXDP or AttachTC. Methods are safe for concurrent use.
type FastPath struct {
	objs     fastpathObjects
	min, max uint16
	links    []link.Link
	// Pinning (pin.go): where, and where each link is pinned.
	pinPath, mapsDirPath string
	linkPaths            map[link.Link]string
	// clsact are the interfaces the TC program is attached to as a clsact
	// filter (clsact.go, kernels without tcx).
	clsact []int
	// Stale is how many map directories of another layout or port range
	// LoadFastPath removed.
	Stale int
}

// LoadFastPath loads the programs with every media port closed. It needs
// CAP_BPF (and CAP_NET_ADMIN to attach).
func LoadFastPath(c FastPathConfig) (*FastPath, error) {
	switch {
	case c.PortMin == 0 || c.PortMax < c.PortMin:
		return nil, fmt.Errorf("fast path: bad port range %d-%d", c.PortMin, c.PortMax)
	case c.IP4.IsValid() && !c.IP4.Is4():
		return nil, fmt.Errorf("fast path: %v is not an IPv4 address", c.IP4)
	case c.IP6.IsValid() && !c.IP6.Is6():
		return nil, fmt.Errorf("fast path: %v is not an IPv6 address", c.IP6)
	case len(c.SIPPorts) > maxSIPPorts:
		return nil, fmt.Errorf("fast path: %d SIP ports, at most %d", len(c.SIPPorts), maxSIPPorts)
	case c.SIPRate < 0 || c.SIPRate > 1e9 || c.SIPBurst < 0 || (c.SIPRate > 0 && c.SIPBurst < 1):
		return nil, fmt.Errorf("fast path: SIP rate %d/s with a burst of %d: want a rate of 0 (no limit) or 1 to 1e9 and a burst of at least 1", c.SIPRate, c.SIPBurst)
	}
	spec, err := loadFastpath()
	if err != nil {
		return nil, err
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = 64
	}
	var ip4 uint32
	if c.IP4.IsValid() && !c.IP4.IsUnspecified() {
		ip4 = be32(c.IP4.As4())
	}
	var ip6 [4]uint32
	if c.IP6.IsValid() && !c.IP6.IsUnspecified() {
		a := c.IP6.As16()
		for i := range ip6 {
			ip6[i] = be32([4]byte(a[4*i : 4*i+4]))
		}
	}
	var sipPorts [maxSIPPorts]uint16
	copy(sipPorts[:], c.SIPPorts)
	var cost, burst uint64
	if c.SIPRate > 0 {
		cost = uint64(time.Second) / uint64(c.SIPRate)
		burst = cost * uint64(c.SIPBurst)
	}
	for name, v := range map[string]any{
		fastpathVarSipPorts:   sipPorts,
		fastpathVarSipCostNs:  cost,
		fastpathVarSipBurstNs: burst,
		fastpathVarPortMin:    uint32(c.PortMin),
		fastpathVarPortMax:    uint32(c.PortMax),
		fastpathVarMediaIp4:   ip4,
		fastpathVarMediaIp6:   ip6,
		fastpathVarRelayTtl:   ttl,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("fast path: set %s: %w", name, err)
		}
	}
	size := uint32(c.PortMax-c.PortMin) + 1
	spec.Maps[fastpathMapPorts].MaxEntries = size
	spec.Maps[fastpathMapStats].MaxEntries = size
	f := &FastPath{min: c.PortMin, max: c.PortMax, linkPaths: map[link.Link]string{}}
	var opts ebpf.CollectionOptions
	if c.PinPath != "" {
		if f.Stale, err = preparePins(c); err != nil {
			return nil, err
		}
		f.pinPath, f.mapsDirPath = c.PinPath, c.mapsDir()
		opts.Maps.PinPath = f.mapsDirPath
		for _, name := range pinnedMaps {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
	}
	if err := spec.LoadAndAssign(&f.objs, &opts); err != nil {
		if !errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("fast path: load: %w", err)
		}
		// Same layout number, other maps: a build that forgot to bump
		// pinLayout. Start afresh rather than misread the entries.
		if rmErr := os.RemoveAll(f.mapsDirPath); rmErr != nil {
			return nil, fmt.Errorf("fast path: load: %w (and removing the pinned maps: %v)", err, rmErr)
		}
		f.Stale++
		if err := os.MkdirAll(f.mapsDirPath, 0o700); err != nil {
			return nil, fmt.Errorf("fast path: pin path: %w", err)
		}
		if err := spec.LoadAndAssign(&f.objs, &opts); err != nil {
			return nil, fmt.Errorf("fast path: load: %w", err)
		}
	}
	return f, nil
}

// be32 is the uint32 whose memory holds b, as the program compares
// addresses read from packets (network order).
func be32(b [4]byte) uint32 { return binary.NativeEndian.Uint32(b[:]) }

// words is a as the entries hold addresses: 16 bytes, network order, IPv4
// mapped.
func words(a netip.Addr) [4]uint32 {
	b := a.Unmap().As16() // IPv4 as ::ffff:a.b.c.d
	var w [4]uint32
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

// addrOf undoes words.
func addrOf(w [4]uint32) netip.Addr {
	var b [16]byte
	for i, v := range w {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	return netip.AddrFrom16(b).Unmap()
}

// be16 is the uint16 whose memory holds port in network order.
func be16(port uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], port)
	return binary.NativeEndian.Uint16(b[:])
}

// XDPMode is how AttachXDP attaches.
type XDPMode int

const (
	XDPNative  XDPMode = iota // in the driver (fails where the driver has no XDP)
	XDPGeneric                // in the stack, after the driver built an skb: any interface
)

// AttachXDP attaches the XDP program to an interface.
func (f *FastPath) AttachXDP(ifindex int, mode XDPMode) error {
	flags := link.XDPDriverMode
	if mode == XDPGeneric {
		flags = link.XDPGenericMode
	}
	if ok, err := f.adopt("xdp", ifindex, f.objs.XdpMedia); ok || err != nil {
		return err
	}
	if err := dropClsact(ifindex); err != nil {
		return err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: f.objs.XdpMedia, Interface: ifindex, Flags: flags})
	if err != nil {
		return fmt.Errorf("fast path: attach XDP to interface %d: %w", ifindex, err)
	}
	f.links = append(f.links, l)
	return f.pin(l, "xdp", ifindex)
}

// AttachTC attaches the TC program to an interface's ingress: tcx (Linux
// 6.6 and later), else a clsact filter (clsact.go).
func (f *FastPath) AttachTC(ifindex int) error {
	if ok, err := f.adopt("tc", ifindex, f.objs.TcMedia); ok || err != nil {
		return err
	}
	l, err := link.AttachTCX(link.TCXOptions{Program: f.objs.TcMedia, Attach: ebpf.AttachTCXIngress, Interface: ifindex})
	if errors.Is(err, ebpf.ErrNotSupported) {
		// Linux before 6.6: a clsact filter.
		return f.attachClsact(ifindex)
	}
	if err != nil {
		return fmt.Errorf("fast path: attach TC ingress to interface %d: %w", ifindex, err)
	}
	f.links = append(f.links, l)
	return f.pin(l, "tc", ifindex)
}

// Open opens port as p says, or changes what an open port does; its
// counters start again from zero when it was closed.
func (f *FastPath) Open(port uint16, p Pinhole) error {
	if port < f.min || port > f.max {
		return fmt.Errorf("fast path: open port %d: outside %d-%d", port, f.min, f.max)
	}
	e := fastpathPortEntry{Flags: portOpen}
	if p.Peer.IsValid() {
		e.Flags |= portStrict
		e.Peer, e.PeerPort = words(p.Peer.Addr()), be16(p.Peer.Port())
	}
	if fw := p.Forward; fw != nil {
		from, to := fw.From.Addr().Unmap(), fw.To.Addr().Unmap()
		if from.Is4() != to.Is4() {
			return fmt.Errorf("fast path: open port %d: forwarding %v -> %v: from one address family to the other", port, fw.From, fw.To)
		}
		e.Flags |= portForward
		if to.Is6() {
			e.Flags |= portOut6
		}
		e.OutSaddr, e.OutSport = words(from), be16(fw.From.Port())
		e.OutDaddr, e.OutDport = words(to), be16(fw.To.Port())
		if f := p.ForwardFrom; f.IsValid() {
			if p.Peer.IsValid() && p.Peer != f {
				return fmt.Errorf("fast path: open port %d: strict peer %v and forwarded source %v differ", port, p.Peer, f)
			}
			if f.Addr().Unmap().Is4() != to.Is4() {
				return fmt.Errorf("fast path: open port %d: forwarding from %v to %v: from one address family to the other", port, f, fw.To)
			}
			e.Flags |= portForwardPeer
			e.Peer, e.PeerPort = words(f.Addr()), be16(f.Port())
		}
		if v := fw.Via; v != nil {
			if v.Ifindex <= 0 || len(v.Src) != 6 || len(v.Dst) != 6 {
				return fmt.Errorf("fast path: open port %d: next hop %+v: want an interface index and two Ethernet addresses", port, *v)
			}
			e.OutIfindex = uint32(v.Ifindex)
			e.OutSmac, e.OutDmac = [6]byte(v.Src), [6]byte(v.Dst)
		}
	}
	key := uint32(port)
	var old fastpathPortEntry
	if f.objs.Ports.Lookup(key, &old) != nil { // newly opened: fresh counters
		if err := f.resetStats(port); err != nil {
			return err
		}
	}
	if err := f.objs.Ports.Put(key, e); err != nil {
		return fmt.Errorf("fast path: open port %d: %w", port, err)
	}
	return nil
}

func (f *FastPath) resetStats(port uint16) error {
	zero := make([]fastpathPortStats, ebpf.MustPossibleCPU())
	if err := f.objs.Stats.Put(uint32(port-f.min), zero); err != nil {
		return fmt.Errorf("fast path: reset counters of port %d: %w", port, err)
	}
	return nil
}

// Shut closes port: its packets are dropped again.
func (f *FastPath) Shut(port uint16) error {
	err := f.objs.Ports.Delete(uint32(port))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("fast path: shut port %d: %w", port, err)
	}
	return nil
}

// Stats returns port's counters.
func (f *FastPath) Stats(port uint16) (PortStats, error) {
	if port < f.min || port > f.max {
		return PortStats{}, fmt.Errorf("fast path: counters of port %d: outside %d-%d", port, f.min, f.max)
	}
	var per []fastpathPortStats
	if err := f.objs.Stats.Lookup(uint32(port-f.min), &per); err != nil {
		return PortStats{}, fmt.Errorf("fast path: counters of port %d: %w", port, err)
	}
	var s PortStats
	for _, c := range per {
		s.Packets += c.Packets
		s.Bytes += c.Bytes
		s.Forwarded += c.Forwarded
		s.ForwardedBytes += c.ForwardedBytes
		s.LastSeen = max(s.LastSeen, time.Duration(c.LastNs))
		s.LastForwarded = max(s.LastForwarded, time.Duration(c.ForwardedLastNs))
	}
	return s, nil
}

// Counters returns the global counters.
func (f *FastPath) Counters() (Counters, error) {
	var sums [countMax]uint64
	for i := range sums {
		var per []uint64
		if err := f.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return Counters{}, fmt.Errorf("fast path: counters: %w", err)
		}
		for _, v := range per {
			sums[i] += v
		}
	}
	return Counters{Denied: sums[countDenied], Closed: sums[countClosed], NotPeer: sums[countNotPeer],
		Forwarded: sums[countForwarded], NoRoute: sums[countNoRoute], Fragments: sums[countFragment],
		RateLimited: sums[countRateLimited], Banned: sums[countBanned]}, nil
}

// Deny drops every packet from a source in prefix (IPv4 or IPv6).
func (f *FastPath) Deny(prefix netip.Prefix) error {
	if err := f.objs.Deny.Put(denyKey(prefix), uint8(1)); err != nil {
		return fmt.Errorf("fast path: deny %v: %w", prefix, err)
	}
	return nil
}

// Allow removes prefix from the deny map (exactly that prefix).
func (f *FastPath) Allow(prefix netip.Prefix) error {
	err := f.objs.Deny.Delete(denyKey(prefix))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("fast path: allow %v: %w", prefix, err)
	}
	return nil
}

// Ban drops the packets from sources in prefix to the SIP ports (not
// others) until Unban.
func (f *FastPath) Ban(prefix netip.Prefix) error {
	if err := f.objs.Banned.Put(denyKey(prefix), uint8(1)); err != nil {
		return fmt.Errorf("fast path: ban %v: %w", prefix, err)
	}
	return nil
}

// Unban lifts a Ban of exactly prefix.
func (f *FastPath) Unban(prefix netip.Prefix) error {
	err := f.objs.Banned.Delete(denyKey(prefix))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("fast path: unban %v: %w", prefix, err)
	}
	return nil
}

// Trust exempts the sources in prefix from the SIP rate limit (the
// trunks' addresses).
func (f *FastPath) Trust(prefix netip.Prefix) error {
	if err := f.objs.Trusted.Put(denyKey(prefix), uint8(1)); err != nil {
		return fmt.Errorf("fast path: trust %v: %w", prefix, err)
	}
	return nil
}

// denyKey is the LPM key of prefix: IPv4 as ::ffff:a.b.c.d/96+bits.
func denyKey(prefix netip.Prefix) fastpathDenyKey {
	prefix = prefix.Masked()
	bits := prefix.Bits()
	if prefix.Addr().Is4() {
		bits += 96
	}
	return fastpathDenyKey{Prefixlen: uint32(bits), Addr: prefix.Addr().As16()}
}

// Monotonic is CLOCK_MONOTONIC now, the clock of PortStats.LastSeen.
func Monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Close detaches the programs and frees them and their maps; pinned links
// and maps stay (Unpin removes them).
func (f *FastPath) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	if !f.Pinned() {
		errs = append(errs, f.detachClsact())
	}
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}
