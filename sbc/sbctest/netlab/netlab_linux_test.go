package netlab

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// send sends one datagram from src (port 0) in ns from to dst in ns to and
// returns what arrived and its source, or an error if nothing arrived
// within wait.
func send(t *testing.T, from *Namespace, src netip.Addr, to *Namespace, dst netip.AddrPort, wait time.Duration) (string, netip.AddrPort, error) {
	t.Helper()
	rx, err := to.ListenUDP(dst)
	if err != nil {
		t.Fatalf("listen on %v in %s: %v", dst, to.Name, err)
	}
	defer rx.Close()
	tx, err := from.ListenUDP(netip.AddrPortFrom(src, 0))
	if err != nil {
		t.Fatalf("bind %v in %s: %v", src, from.Name, err)
	}
	defer tx.Close()
	if dst.Port() == 0 {
		dst = rx.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	if _, err := tx.WriteToUDPAddrPort([]byte("hello "+dst.String()), dst); err != nil {
		t.Fatalf("send from %v to %v: %v", src, dst, err)
	}
	rx.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, got, err := rx.ReadFromUDPAddrPort(buf)
	return string(buf[:n]), got, err
}

func TestLeavesReachSBC(t *testing.T) {
	lab := New(t)
	for _, tc := range []struct {
		name     string
		leaf     *Namespace
		src, dst netip.Addr
	}{
		{"carrier v4", lab.Carrier, lab.CarrierLink.Leaf.IPv4, lab.CarrierLink.SBC.IPv4},
		{"carrier v6", lab.Carrier, lab.CarrierLink.Leaf.IPv6, lab.CarrierLink.SBC.IPv6},
		{"customer v4", lab.Customer, lab.CustomerLink.Leaf.IPv4, lab.CustomerLink.SBC.IPv4},
		{"customer v6", lab.Customer, lab.CustomerLink.Leaf.IPv6, lab.CustomerLink.SBC.IPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, got, err := send(t, tc.leaf, tc.src, lab.SBC, netip.AddrPortFrom(tc.dst, 0), 2*time.Second)
			if err != nil {
				t.Fatalf("%v -> %v: %v", tc.src, tc.dst, err)
			}
			if got.Addr() != tc.src || !strings.HasPrefix(msg, "hello") {
				t.Errorf("%v -> %v: got %q from %v, want it from %v", tc.src, tc.dst, msg, got, tc.src)
			}
			// and back, to the leaf's own address
			if _, _, err := send(t, lab.SBC, tc.dst, tc.leaf, netip.AddrPortFrom(tc.src, 0), 2*time.Second); err != nil {
				t.Errorf("%v -> %v: %v", tc.dst, tc.src, err)
			}
		})
	}
}

// TestNoForwarding checks that nothing crosses the sbc namespace by kernel
// routing, though each leaf reaches the sbc and its default route points
// there.
func TestNoForwarding(t *testing.T) {
	lab := New(t)
	err := lab.SBC.Do(func() error {
		for k := range forwardingOff {
			b, err := os.ReadFile("/proc/sys/" + k)
			if err != nil {
				return err
			}
			if v := strings.TrimSpace(string(b)); v != "0" {
				t.Errorf("sbc netns: %s = %s, want 0", k, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"v4", lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4},
		{"v6", lab.CarrierLink.Leaf.IPv6, lab.CustomerLink.Leaf.IPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, got, err := send(t, lab.Carrier, tc.src, lab.Customer, netip.AddrPortFrom(tc.dst, 0), 300*time.Millisecond)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("carrier %v -> customer %v: got %q from %v (err %v), want nothing", tc.src, tc.dst, msg, got, err)
			}
		})
	}
}

type link struct {
	name  string
	index int
}

// hostLinks lists the interfaces of the calling thread's namespace (the
// host's: the test goroutine never changes it).
func hostLinks(t *testing.T) []link {
	t.Helper()
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []link
	for _, l := range ls {
		out = append(out, link{l.Attrs().Name, l.Attrs().Index})
	}
	return out
}

// nsInode is the identity of a network namespace (its nsfs inode).
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// refs lists what in /proc still refers to the namespace with inode ino:
// a thread of this process, a file descriptor of it, or another process.
func refs(t *testing.T, ino uint64) []string {
	t.Helper()
	var paths []string
	for _, glob := range []string{"/proc/self/task/*/ns/net", "/proc/self/fd/*", "/proc/[0-9]*/ns/net"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	var out []string
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Ino == ino && st.Dev == nsfsDev(t) {
			out = append(out, p)
		}
	}
	return out
}

// nsfsDev is the device of nsfs, which holds every namespace's inode.
func nsfsDev(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}

func TestCleanup(t *testing.T) {
	before := hostLinks(t)
	type gone struct {
		ns  *Namespace
		ino uint64
	}
	var labNS []gone
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		for _, n := range []*Namespace{lab.SBC, lab.Carrier, lab.Customer} {
			if !strings.HasPrefix(n.Name, Prefix) || n.Path != filepath.Join("/var/run/netns", n.Name) {
				t.Errorf("namespace %q at %q, want %s… at /var/run/netns/NAME", n.Name, n.Path, Prefix)
			}
			labNS = append(labNS, gone{n, nsInode(t, n.Path)})
		}
		if during := hostLinks(t); !slices.Equal(during, before) {
			t.Errorf("host interfaces changed by New:\nbefore %v\nduring %v", before, during)
		}
	})
	if after := hostLinks(t); !slices.Equal(after, before) {
		t.Errorf("host interfaces changed by cleanup:\nbefore %v\nafter  %v", before, after)
	}
	for _, g := range labNS {
		if _, err := os.Lstat(g.ns.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after cleanup (%v)", g.ns.Path, err)
		}
		if _, err := netns.GetFromName(g.ns.Name); err == nil {
			t.Errorf("netns %s still opens by name after cleanup", g.ns.Name)
		}
		if r := refs(t, g.ino); len(r) > 0 {
			t.Errorf("netns %s still referred to after cleanup by %v", g.ns.Name, r)
		}
	}
}

func TestTwoLabs(t *testing.T) {
	a, b := New(t), New(t)
	if a.SBC.Name == b.SBC.Name || a.Carrier.Name == b.Carrier.Name || a.Customer.Name == b.Customer.Name {
		t.Fatalf("two labs share names: %s %s", a.SBC.Name, b.SBC.Name)
	}
	// The same addresses in both, on the same port: each datagram stays in
	// its lab.
	dst := netip.AddrPortFrom(a.CarrierLink.SBC.IPv4, 40000)
	var wg sync.WaitGroup
	for _, lab := range []*Lab{a, b} {
		wg.Go(func() {
			msg, got, err := send(t, lab.Carrier, lab.CarrierLink.Leaf.IPv4, lab.SBC, dst, 2*time.Second)
			if err != nil || got.Addr() != lab.CarrierLink.Leaf.IPv4 {
				t.Errorf("lab %s: got %q from %v (%v)", lab.SBC.Name, msg, got, err)
			}
		})
	}
	wg.Wait()
}

func TestCommand(t *testing.T) {
	lab := New(t)
	for _, tc := range []struct {
		ns      *Namespace
		want    []string
		notWant []string
	}{
		{lab.SBC, []string{"lo ", "to-carrier@", "198.51.100.1/24", "2001:db8:1::1/64", "to-customer@", "203.0.113.1/24", "2001:db8:2::1/64"}, nil},
		{lab.Carrier, []string{"to-sbc@", "198.51.100.2/24", "2001:db8:1::2/64"}, []string{"203.0.113."}},
		{lab.Customer, []string{"to-sbc@", "203.0.113.2/24", "2001:db8:2::2/64"}, []string{"198.51.100."}},
	} {
		out, err := tc.ns.Command("ip", "-br", "addr").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns exec %s ip -br addr: %v\n%s", tc.ns.Name, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("ip -br addr in %s lacks %q:\n%s", tc.ns.Name, w, out)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(string(out), w) {
				t.Errorf("ip -br addr in %s has %q:\n%s", tc.ns.Name, w, out)
			}
		}
		if strings.Contains(string(out), "tentative") {
			t.Errorf("ip -br addr in %s: an address is still tentative (DAD):\n%s", tc.ns.Name, out)
		}
	}
}

func TestDo(t *testing.T) {
	lab := New(t)
	host := nsInode(t, "/proc/self/ns/net")
	want := nsInode(t, lab.Customer.Path)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := lab.Customer.Do(func() error {
				var st unix.Stat_t
				if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
					return err
				}
				if st.Ino != want {
					t.Errorf("inside Do: netns inode %d, want %d", st.Ino, want)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if r := refs(t, want); slices.ContainsFunc(r, func(p string) bool { return strings.Contains(p, "/task/") }) {
		t.Errorf("threads left in %s after Do: %v", lab.Customer.Name, r)
	}
	if got := nsInode(t, "/proc/thread-self/ns/net"); got != host {
		t.Errorf("caller's thread in netns %d after Do, want the host's %d", got, host)
	}
	errF := errors.New("from f")
	if err := lab.SBC.Do(func() error { return errF }); !errors.Is(err, errF) {
		t.Errorf("Do returned %v, want f's error", err)
	}
}

// TestSharedLeaf: one namespace holds both peers; each reaches the sbc's
// carrier-side address, and a datagram the sbc sends from that address to
// the customer's arrives over the other link (no reverse-path drop).
func TestSharedLeaf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
	l, err := Build(Options{SharedLeaf: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Carrier != l.Customer {
		t.Fatal("carrier and customer are not one namespace")
	}
	sbcAddr := netip.AddrPortFrom(l.CarrierLink.SBC.IPv4, 7000)
	for _, src := range []netip.Addr{l.CarrierLink.Leaf.IPv4, l.CustomerLink.Leaf.IPv4} {
		got, from, err := send(t, l.Carrier, src, l.SBC, sbcAddr, time.Second)
		if err != nil || !strings.HasPrefix(got, "hello") || from.Addr() != src {
			t.Errorf("from %v to the sbc: %q from %v, %v", src, got, from, err)
		}
	}
	got, from, err := send(t, l.SBC, l.CarrierLink.SBC.IPv4, l.Customer, netip.AddrPortFrom(l.CustomerLink.Leaf.IPv4, 7000), time.Second)
	if err != nil || !strings.HasPrefix(got, "hello") || from.Addr() != l.CarrierLink.SBC.IPv4 {
		t.Errorf("from the sbc to the customer: %q from %v, %v", got, from, err)
	}
}
