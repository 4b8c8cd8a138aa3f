package netlab

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	ebpflink "github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace a lab creates.
const Prefix = "netlab-"

// Lab is the three namespaces and two veth pairs of the package doc. Its
// fields are read-only; it is removed when the test that made it ends.
type Lab struct {
	SBC, Carrier, Customer *Namespace

	CarrierLink  Link // carrier <-> sbc
	CustomerLink Link // customer <-> sbc

	owned  []*Namespace // to remove
	shared bool         // Options.SharedLeaf
	xdp    []io.Closer  // the leaves' XDP_PASS programs
}

// Link is one veth pair: a leaf's end and the sbc's end.
type Link struct {
	Leaf End // in the carrier's or the customer's namespace
	SBC  End // in the sbc's namespace

	Prefix4, Prefix6 netip.Prefix // the link's subnets
}

// End is one end of a veth pair, as seen inside its namespace.
type End struct {
	Name  string // interface name
	Index int    // interface index
	MAC   net.HardwareAddr
	IPv4  netip.Addr
	IPv6  netip.Addr
}

// New builds a lab and registers its removal with t.Cleanup. It fails the
// test if the process may not create network namespaces (not root). A peer
// started in the lab keeps its namespace alive: stop it in a cleanup
// registered after New, which runs before the lab's.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netlab: creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run the tests as root, as make test does")
	}
	l, err := Build(Options{})
	if err != nil {
		fatal(t, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	return l
}

// Options vary the lab Build makes.
type Options struct {
	// SharedLeaf puts the carrier's and the customer's ends in one
	// namespace (Carrier == Customer, role "peers"), its veths named
	// "sbc-carrier" and "sbc-customer", without default routes: one
	// process there (a load generator) holds both peers' addresses, and
	// reaches each of the sbc's addresses over the link of its subnet.
	// Reverse-path filtering is off there, since the sbc's replies to one
	// peer may arrive over the other link.
	SharedLeaf bool
}

// Build builds a lab for a program that is not a test; Close removes it.
func Build(o Options) (_ *Lab, err error) {
	if err := prepareRunDir(); err != nil {
		return nil, err
	}
	l := &Lab{
		CarrierLink:  plan("198.51.100.0/24", "2001:db8:1::/64"),
		CustomerLink: plan("203.0.113.0/24", "2001:db8:2::/64"),
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	id := fmt.Sprintf("%s%08x-", Prefix, rand.Uint32())
	roles := []struct {
		p    **Namespace
		role string
	}{{&l.SBC, "sbc"}, {&l.Carrier, "carrier"}, {&l.Customer, "customer"}}
	if o.SharedLeaf {
		roles = roles[:2]
		roles[1].role = "peers"
	}
	for _, ns := range roles {
		n, err := newNamespace(id + ns.role)
		if err != nil {
			return nil, err
		}
		*ns.p = n
		l.owned = append(l.owned, n)
	}
	if o.SharedLeaf {
		l.Customer = l.Carrier
		l.CarrierLink.Leaf.Name, l.CustomerLink.Leaf.Name = "sbc-carrier", "sbc-customer"
		l.shared = true
		if err := l.Carrier.Do(func() error { return sysctls(rpFilterOff) }); err != nil {
			return nil, fmt.Errorf("netns %s: %w", l.Carrier.Name, err)
		}
	}
	if err := l.SBC.Do(func() error { return sysctls(forwardingOff) }); err != nil {
		return nil, fmt.Errorf("netns %s: %w", l.SBC.Name, err)
	}
	if err := l.wire(l.Carrier, &l.CarrierLink, "to-carrier"); err != nil {
		return nil, err
	}
	if err := l.wire(l.Customer, &l.CustomerLink, "to-customer"); err != nil {
		return nil, err
	}
	return l, nil
}

// Close removes the lab's namespaces.
func (l *Lab) Close() error {
	var errs []error
	for _, c := range l.xdp {
		errs = append(errs, c.Close())
	}
	l.xdp = nil
	for _, n := range l.owned {
		if err := n.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	l.owned = nil
	return errors.Join(errs...)
}

// rpFilterOff turns reverse-path filtering off in a shared leaf.
var rpFilterOff = map[string]string{
	"net/ipv4/conf/all/rp_filter":     "0",
	"net/ipv4/conf/default/rp_filter": "0",
}

// fatal fails the test with err, saying what is missing where it is a
// matter of privilege.
func fatal(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Fatalf("netlab: %v (not permitted: building a lab needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN, as make test runs; an unprivileged container or user namespace lacks them)", err)
	}
	t.Fatalf("netlab: %v", err)
}

// plan gives a link's addresses: .1 (::1) the sbc's, .2 (::2) the leaf's.
func plan(v4, v6 string) Link {
	p4, p6 := netip.MustParsePrefix(v4), netip.MustParsePrefix(v6)
	return Link{
		Leaf:    End{Name: "to-sbc", IPv4: p4.Addr().Next().Next(), IPv6: p6.Addr().Next().Next()},
		SBC:     End{IPv4: p4.Addr().Next(), IPv6: p6.Addr().Next()},
		Prefix4: p4,
		Prefix6: p6,
	}
}

// forwardingOff keeps the sbc namespace from routing between its links
// (a new namespace's default, stated so that no default can change it).
var forwardingOff = map[string]string{
	"net/ipv4/ip_forward":          "0",
	"net/ipv6/conf/all/forwarding": "0",
}

// sysctls writes /proc/sys entries, which under net/ belong to the calling
// thread's namespace.
func sysctls(kv map[string]string) error {
	for k, v := range kv {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	return nil
}

// wire creates the veth pair between the sbc and leaf, the sbc's end named
// sbcName, and configures both ends.
func (l *Lab) wire(leaf *Namespace, link *Link, sbcName string) error {
	link.SBC.Name = sbcName
	err := l.SBC.Do(func() error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: sbcName},
			PeerName:      link.Leaf.Name,
			PeerNamespace: netlink.NsFd(leaf.h),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", sbcName, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("netns %s: %w", l.SBC.Name, err)
	}
	if err := leaf.Do(func() error { return configure(&link.Leaf, link, link.SBC, true, !l.shared) }); err != nil {
		return fmt.Errorf("netns %s: %w", leaf.Name, err)
	}
	if err := leaf.Do(func() error {
		c, err := xdpPass(link.Leaf.Index)
		if err == nil {
			l.xdp = append(l.xdp, c)
		}
		return err
	}); err != nil {
		return fmt.Errorf("netns %s: %w", leaf.Name, err)
	}
	if err := l.SBC.Do(func() error { return configure(&link.SBC, link, link.Leaf, false, false) }); err != nil {
		return fmt.Errorf("netns %s: %w", l.SBC.Name, err)
	}
	for _, end := range []struct {
		ns   *Namespace
		name string
	}{{leaf, link.Leaf.Name}, {l.SBC, sbcName}} {
		if err := end.ns.Do(func() error { return waitReady(end.name) }); err != nil {
			return fmt.Errorf("netns %s: %w", end.ns.Name, err)
		}
	}
	return nil
}

// waitReady waits until the interface ifname of the calling thread's
// namespace is operationally up and IPv6 has seen it so (it has its
// link-local address). A veth end gets its carrier, and IPv6 starts on it,
// some time after both ends are up; until then the first IPv6 datagrams
// are lost.
func waitReady(ifname string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
			if err != nil {
				return fmt.Errorf("list addresses of %s: %w", ifname, err)
			}
			if slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.IsLinkLocalUnicast() }) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after 5 s (state %v)", ifname, link.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// configure brings up lo and the interface e in the calling thread's
// namespace, fills in its index and MAC and gives it its addresses. A leaf
// also gets software checksums and, with routes, default routes via the
// sbc's addresses (gw).
func configure(e *End, link *Link, gw End, leaf, routes bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	veth, err := netlink.LinkByName(e.Name)
	if err != nil {
		return fmt.Errorf("find %s: %w", e.Name, err)
	}
	e.Index, e.MAC = veth.Attrs().Index, veth.Attrs().HardwareAddr
	if leaf {
		if err := txChecksumOff(e.Name); err != nil {
			return err
		}
	}
	if err := groOn(e.Name); err != nil { // both ends: the SBC's XDP may redirect to either
		return err
	}
	for _, a := range []struct {
		ip     netip.Addr
		prefix netip.Prefix
	}{{e.IPv4, link.Prefix4}, {e.IPv6, link.Prefix6}} {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.ip.AsSlice(), Mask: net.CIDRMask(a.prefix.Bits(), a.ip.BitLen())}}
		if a.ip.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(veth, addr); err != nil {
			return fmt.Errorf("add %v to %s: %w", a.ip, e.Name, err)
		}
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set %s up: %w", e.Name, err)
	}
	if leaf && !routes { // a shared leaf: see Options
		if err := sysctls(map[string]string{"net/ipv4/conf/" + e.Name + "/rp_filter": "0"}); err != nil {
			return err
		}
	}
	if !routes {
		return nil
	}
	for _, gw := range []netip.Addr{gw.IPv4, gw.IPv6} {
		r := &netlink.Route{LinkIndex: e.Index, Gw: gw.AsSlice()}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %v: %w", gw, err)
		}
	}
	return nil
}

// xdpPass attaches, in the calling thread's namespace, an XDP program that
// passes everything to a leaf's veth end. A veth flushes the frames an XDP
// program on its peer sends back with XDP_TX only into a peer that runs
// XDP itself; without one they wait in its ring until something else
// wakes it, and overflow (redirected frames, which GRO's NAPI takes, are
// not affected). A NIC has no such need, so the lab supplies it.
func xdpPass(ifindex int) (io.Closer, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // XDP_PASS
	if err != nil {
		return nil, fmt.Errorf("load the leaf's XDP_PASS program: %w", err)
	}
	defer prog.Close() // the link holds it
	l, err := ebpflink.AttachXDP(ebpflink.XDPOptions{Program: prog, Interface: ifindex, Flags: ebpflink.XDPDriverMode})
	if err != nil {
		return nil, fmt.Errorf("attach the leaf's XDP_PASS program: %w", err)
	}
	return l, nil
}
