//go:build linux

// Package firewall keeps the media ports closed unless a call holds them,
// and drops banned and flooding sources, in the kernel: it loads the fast
// path program of package bpf and attaches it to the media interfaces (XDP
// in the driver where it can, TC ingress otherwise). Pinholes open and shut
// with the relay's ports (media.Pinholes).
package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"sbc/bpf"
	"sbc/media"
)

// Firewall is the attached fast path. Its methods are safe for concurrent
// use.
type Firewall struct {
	fp       *bpf.FastPath
	attached []string // "eth0 (xdp)"

	nlMu sync.Mutex
	nl   *netlink.Handle      // in the daemon's network namespace, for next hops
	hops map[hopKey]cachedHop // next hops by source and peer address, under nlMu

	// gen counts the changes of routes and of the neighbours handed out as
	// next hops (Generation); used maps each such neighbour to its MAC.
	gen    atomic.Uint64
	usedMu sync.Mutex
	used   map[neighKey]string
	stop   chan struct{} // ends the netlink subscriptions
}

// Start loads and attaches the fast path as c says. With the mode "auto"
// it returns nil and a reason when the fast path cannot run here (no
// privileges, a kernel without BPF, the media address on loopback or on
// no single interface); with "xdp" or "tc" that is an error. With "off" it
// returns nil and that reason.
func Start(c Config, log *slog.Logger) (_ *Firewall, off string, _ error) {
	f, off, err := start(c, log)
	if f == nil && err == nil {
		// Running without: what an earlier run left attached (pinned, or
		// a TC filter of a killed run) would go on dropping the media
		// ports of this one.
		clearEarlier(c, log)
	}
	return f, off, err
}

// clearEarlier detaches what an earlier run left in the kernel.
func clearEarlier(c Config, log *slog.Logger) {
	if c.PinPath != "" {
		if n, err := bpf.RemovePins(c.PinPath); err != nil {
			log.Warn("kernel fast path: could not remove what an earlier run pinned; it may drop this run's media", "media.pin_path", c.PinPath, "error", err)
		} else if n > 0 {
			log.Warn("kernel fast path: detached what an earlier run left pinned; the calls it forwarded are no longer relayed", "media.pin_path", c.PinPath, "links", n)
		}
	}
	if n, err := bpf.DropClsactExcept(nil); err != nil {
		log.Warn("kernel fast path: could not remove an earlier run's TC filters; they may drop this run's media", "error", err)
	} else if n > 0 {
		log.Warn("kernel fast path: removed TC filters an earlier run left", "filters", n)
	}
}

func start(c Config, log *slog.Logger) (_ *Firewall, off string, _ error) {
	if c.Mode == media.FastPathOff {
		return nil, `media.fast_path = "off"`, nil
	}
	auto := c.Mode == media.FastPathAuto
	links, err := mediaLinks(c)
	switch {
	case err != nil && auto:
		return nil, err.Error(), nil
	case err != nil:
		return nil, "", err
	}
	if auto {
		for _, l := range links {
			if l.Attrs().Flags&net.FlagLoopback != 0 {
				return nil, fmt.Sprintf("the media interface %s is the loopback (set media.fast_path to \"xdp\" or \"tc\" to filter it anyway)", l.Attrs().Name), nil
			}
		}
	}
	var ip4, ip6 netip.Addr
	if !c.BindIP.IsUnspecified() {
		if c.BindIP.Unmap().Is4() {
			ip4 = c.BindIP.Unmap()
		} else {
			ip6 = c.BindIP
		}
	}
	fc := bpf.FastPathConfig{PortMin: uint16(c.PortMin), PortMax: uint16(c.PortMax), IP4: ip4, IP6: ip6,
		SIPPorts: c.SIPPorts, SIPRate: c.SIPRate, SIPBurst: c.SIPBurst, PinPath: c.PinPath}
	fp, err := bpf.LoadFastPath(fc)
	if errors.Is(err, bpf.ErrPinPathRoot) {
		return nil, "", fmt.Errorf("media.pin_path = %q: %w", c.PinPath, err)
	}
	if err != nil && c.PinPath != "" {
		// Pinning is what lets calls survive a restart, not what filters:
		// run without it rather than without the fast path. What an
		// earlier run pinned there (maps this run could not load) would
		// keep its programs attached beside this run's: detach it.
		log.Warn("kernel fast path not pinned: forwarded calls will not outlive the daemon", "media.pin_path", c.PinPath, "error", err)
		if n, err := bpf.RemovePins(c.PinPath); err != nil || n > 0 {
			log.Warn("kernel fast path: detached what an earlier run left pinned", "media.pin_path", c.PinPath, "links", n, "error", err)
		}
		fc.PinPath = ""
		fp, err = bpf.LoadFastPath(fc)
	}
	if err != nil {
		if auto {
			return nil, err.Error(), nil
		}
		return nil, "", err
	}
	if fp.Stale > 0 {
		log.Warn("kernel fast path: dropped the pinned maps of another port range or version; calls a previous run forwarded are no longer relayed in the kernel",
			"media.pin_path", c.PinPath)
	}
	f := &Firewall{fp: fp, used: map[neighKey]string{}, hops: map[hopKey]cachedHop{}, stop: make(chan struct{})}
	if f.nl, err = netlink.NewHandle(); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("netlink: %w", err)
	}
	if err := f.watch(); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("netlink: watch routes and neighbours: %w", err)
	}
	for _, p := range c.Trusted {
		if err := fp.Trust(p); err != nil {
			f.Close()
			return nil, "", err
		}
	}
	for _, l := range links {
		mode := c.Mode
		if auto && l.Type() == "veth" {
			// Frames from a local sender (a container on this host) reach a
			// veth with their checksum left to the device, which XDP cannot
			// see: TC can, and fixes it as it forwards.
			mode = autoTCFirst
		}
		how, err := f.attach(l.Attrs().Index, mode)
		if err != nil {
			f.Close()
			if auto {
				return nil, fmt.Sprintf("%s: %v", l.Attrs().Name, err), nil
			}
			return nil, "", fmt.Errorf("media.fast_path = %q on %s: %w", c.Mode, l.Attrs().Name, err)
		}
		f.attached = append(f.attached, fmt.Sprintf("%s (%s)", l.Attrs().Name, how))
	}
	if err := fp.DropOtherLinks(); err != nil {
		log.Warn("kernel fast path: detach what a previous run left on other interfaces", "error", err)
	}
	var ours []int
	for _, l := range links {
		ours = append(ours, l.Attrs().Index)
	}
	if n, err := bpf.DropClsactExcept(ours); err != nil || n > 0 {
		log.Warn("kernel fast path: TC filters a previous run left on other interfaces", "removed", n, "error", err)
	}
	return f, "", nil
}

// attach tries the attach points the mode allows, best first: XDP in the
// driver (no skb is built for a dropped or forwarded packet), then TC (which
// also copes with checksums a local sender left to the device), then XDP in
// the stack.
func (f *Firewall) attach(ifindex int, mode string) (string, error) {
	var errs []error
	try := func(name string, do func() error) bool {
		err := do()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return err == nil
	}
	native := func() error { return f.fp.AttachXDP(ifindex, bpf.XDPNative) }
	generic := func() error { return f.fp.AttachXDP(ifindex, bpf.XDPGeneric) }
	tc := func() error { return f.fp.AttachTC(ifindex) }
	// A hook a previous run left pinned first, where the mode allows it:
	// taken over, the interface is never without a program.
	switch hook := f.fp.PinnedHook(ifindex); {
	case hook == "xdp" && mode != media.FastPathTC:
		if try("xdp", native) {
			return "xdp", nil
		}
	case hook == "tc" && mode != media.FastPathXDP:
		if try("tc", tc) {
			return "tc", nil
		}
	}
	switch mode {
	case media.FastPathXDP:
		if try("xdp", native) {
			return "xdp", nil
		}
		if try("xdp generic", generic) {
			return "xdp generic", nil
		}
	case media.FastPathTC:
		if try("tc", tc) {
			return "tc", nil
		}
	case autoTCFirst:
		if try("tc", tc) {
			return "tc", nil
		}
		if try("xdp", native) {
			return "xdp", nil
		}
	default: // auto
		if try("xdp", native) {
			return "xdp", nil
		}
		if try("tc", tc) {
			return "tc", nil
		}
		if try("xdp generic", generic) {
			return "xdp generic", nil
		}
	}
	return "", errors.Join(errs...)
}

// autoTCFirst is "auto" on a veth.
const autoTCFirst = "auto, tc first"

// mediaLinks resolves the media interfaces: those named, else the one
// holding BindIP.
func mediaLinks(c Config) ([]netlink.Link, error) {
	// A handle of its own: its sockets live in the calling thread's network
	// namespace, not in whichever the package's shared handle first met.
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	if len(c.Interfaces) > 0 {
		var links []netlink.Link
		for _, name := range c.Interfaces {
			l, err := h.LinkByName(name)
			if err != nil {
				return nil, fmt.Errorf("media.interfaces: %q: %w", name, err)
			}
			links = append(links, l)
		}
		return links, nil
	}
	if c.BindIP.IsUnspecified() {
		return nil, fmt.Errorf("media.bind_ip %v names no interface: set media.interfaces", c.BindIP)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == c.BindIP.Unmap() {
			l, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("interface of %v: %w", c.BindIP, err)
			}
			return []netlink.Link{l}, nil
		}
	}
	return nil, fmt.Errorf("no interface holds media.bind_ip %v: set media.interfaces", c.BindIP)
}

// Attached says where the fast path runs, e.g. ["eth0 (xdp)"].
func (f *Firewall) Attached() []string { return f.attached }

// Open opens a media port's pinhole (media.Pinholes).
func (f *Firewall) Open(port uint16) error { return f.fp.Open(port, bpf.Pinhole{}) }

// Shut closes it again (media.Pinholes).
func (f *Firewall) Shut(port uint16) error { return f.fp.Shut(port) }

// Counters are the fast path's drops so far.
func (f *Firewall) Counters() (bpf.Counters, error) { return f.fp.Counters() }

// Deny drops every packet from prefix; Allow lifts that.
func (f *Firewall) Deny(prefix netip.Prefix) error  { return f.fp.Deny(prefix) }
func (f *Firewall) Allow(prefix netip.Prefix) error { return f.fp.Allow(prefix) }

// Ban drops what sources in prefix send to the SIP ports, in the kernel,
// until Unban (the duration is the caller's to keep).
func (f *Firewall) Ban(prefix netip.Prefix, _ time.Duration) error { return f.fp.Ban(prefix) }

// Unban lifts a Ban.
func (f *Firewall) Unban(prefix netip.Prefix) error { return f.fp.Unban(prefix) }

// ErrNoNeighbour says the next hop towards a peer has no known Ethernet
// address yet: the stream stays in userspace, whose sends make the kernel
// resolve it; try again later.
var ErrNoNeighbour = fmt.Errorf("the next hop's Ethernet address is not known yet (%w)", media.ErrOffloadNotYet)

// Forward makes the kernel relay what the latched peer from sends to port
// (an open one) itself: it leaves from src, the relay's address and port on
// the other leg, to dst, that leg's peer. Other sources' packets are
// dropped when strict, else they go to the userspace relay, which may
// latch them. IPv4 to IPv4 or IPv6 to IPv6.
func (f *Firewall) Forward(port uint16, from, src, dst netip.AddrPort, strict bool) error {
	hop, err := f.nextHop(src.Addr().Unmap(), dst.Addr().Unmap())
	if err != nil {
		return err
	}
	p := bpf.Pinhole{Forward: &bpf.Forward{From: src, To: dst, Via: hop}, ForwardFrom: from}
	if strict {
		p.Peer = from
	}
	return f.fp.Open(port, p)
}

// Unforward gives the port's packets back to the userspace relay; the
// pinhole stays open.
func (f *Firewall) Unforward(port uint16) error { return f.fp.Open(port, bpf.Pinhole{}) }

// PortStats are a port's counters (bpf.FastPath.Stats).
func (f *Firewall) PortStats(port uint16) (bpf.PortStats, error) { return f.fp.Stats(port) }

// nextHop finds where a packet from src (a local address) to dst leaves,
// the kernel's way: the route's interface and gateway (or dst itself on a
// connected subnet), as source-based rules (ip rule from) choose it too,
// and the gateway's Ethernet address from the neighbour table.
func (f *Firewall) nextHop(src, dst netip.Addr) (*bpf.NextHop, error) {
	f.nlMu.Lock()
	defer f.nlMu.Unlock()
	// A route or neighbour change bumps the generation, which voids the
	// cache: until then the answer stands, and thousands of streams
	// starting at once cost one look-up per peer, not one each.
	gen := f.gen.Load()
	key := hopKey{src, dst}
	if c, ok := f.hops[key]; ok && c.gen == gen {
		return c.hop, nil
	}
	hop, err := f.lookupHop(src, dst)
	if err == nil {
		if len(f.hops) >= maxCachedHops {
			clear(f.hops)
		}
		f.hops[key] = cachedHop{gen, hop}
	}
	return hop, err
}

// maxCachedHops bounds the next-hop cache (one entry per source and peer).
const maxCachedHops = 1 << 16

type hopKey struct{ src, dst netip.Addr }

type cachedHop struct {
	gen uint64
	hop *bpf.NextHop
}

// neighKey is a neighbour: a link-local gateway such as fe80::1 may be
// another host on every link.
type neighKey struct {
	ifindex int
	addr    netip.Addr
}

// lookupHop is nextHop's look-up through netlink; f.nlMu held.
func (f *Firewall) lookupHop(src, dst netip.Addr) (*bpf.NextHop, error) {
	routes, err := f.nl.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{SrcAddr: src.AsSlice()})
	if err != nil || len(routes) == 0 {
		return nil, fmt.Errorf("route from %v to %v: %v", src, dst, err)
	}
	r := routes[0]
	via := dst
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
		via = gw.Unmap()
	}
	link, err := f.nl.LinkByIndex(r.LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("interface %d towards %v: %w", r.LinkIndex, dst, err)
	}
	ours := link.Attrs().HardwareAddr
	if len(ours) != 6 {
		return nil, fmt.Errorf("%s towards %v has no Ethernet address", link.Attrs().Name, dst)
	}
	family := netlink.FAMILY_V4
	if via.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := f.nl.NeighList(r.LinkIndex, family)
	if err != nil {
		return nil, fmt.Errorf("neighbours on %s: %w", link.Attrs().Name, err)
	}
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT
	for _, n := range neighs {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == via && n.State&usable != 0 && len(n.HardwareAddr) == 6 {
			f.usedMu.Lock()
			f.used[neighKey{r.LinkIndex, via}] = n.HardwareAddr.String()
			f.usedMu.Unlock()
			return &bpf.NextHop{Ifindex: r.LinkIndex, Src: ours, Dst: n.HardwareAddr}, nil
		}
	}
	return nil, fmt.Errorf("%w (%v on %s)", ErrNoNeighbour, via, link.Attrs().Name)
}

// Pinned tells whether the fast path outlives the daemon (media.pin_path).
func (f *Firewall) Pinned() bool { return f.fp.Pinned() }

// Inherited returns the ports a previous run left open, and what the
// kernel does for each (media.Offload).
func (f *Firewall) Inherited() (map[uint16]bpf.Pinhole, error) { return f.fp.Entries() }

// Unpin removes the pins: Close then detaches the programs. For a daemon
// that stops with no call left.
func (f *Firewall) Unpin() error { return f.fp.Unpin() }

// Close detaches the programs, unless pinned: every port is open to the
// stack again. Pinned, the program and its entries stay for the next run.
func (f *Firewall) Close() error {
	if f.stop != nil {
		close(f.stop)
		f.stop = nil
	}
	if f.nl != nil {
		f.nl.Close()
	}
	return f.fp.Close()
}

// Generation changes whenever a route changes or a neighbour handed out as
// a next hop changes its MAC or goes away: entries installed under another
// generation may point at a stale next hop (media.Offload).
func (f *Firewall) Generation() uint64 { return f.gen.Load() }

// watch follows route and neighbour changes in the calling thread's network
// namespace until Close.
func (f *Firewall) watch() error {
	neighs := make(chan netlink.NeighUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 64)
	lost := func(error) { f.gen.Add(1) } // a missed message may have been anything
	if err := netlink.NeighSubscribeWithOptions(neighs, f.stop, netlink.NeighSubscribeOptions{ErrorCallback: lost}); err != nil {
		return err
	}
	if err := netlink.RouteSubscribeWithOptions(routes, f.stop, netlink.RouteSubscribeOptions{ErrorCallback: lost}); err != nil {
		return err
	}
	go func() {
		for {
			select {
			case u, ok := <-neighs:
				if !ok {
					return
				}
				f.neighbourChanged(u)
			case _, ok := <-routes:
				if !ok {
					return
				}
				f.gen.Add(1)
			}
		}
	}()
	return nil
}

func (f *Firewall) neighbourChanged(u netlink.NeighUpdate) {
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return
	}
	f.usedMu.Lock()
	mac, used := f.used[neighKey{u.LinkIndex, ip.Unmap()}]
	f.usedMu.Unlock()
	gone := u.Type == unix.RTM_DELNEIGH || u.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0
	if used && (gone || u.HardwareAddr.String() != mac) {
		f.gen.Add(1)
	}
}
