package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"sbc/sbc/sbctest/netlab"
)

// bpffs mounts a bpf filesystem of the test's own and returns a pin path
// in it (the root itself is refused).
func bpffs(t testing.TB) string {
	t.Helper()
	dir := bpffsRoot(t)
	return filepath.Join(dir, "sbc")
}

func bpffsRoot(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a bpf filesystem (root is required): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestPinnedMapsOutliveTheProcess(t *testing.T) {
	pins := bpffs(t)
	c := FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: netip.MustParseAddr("192.0.2.1"), PinPath: pins}
	peer := netip.MustParseAddrPort("198.51.100.7:4000")
	hole := Pinhole{Peer: peer, ForwardFrom: peer, Forward: &Forward{
		From: netip.MustParseAddrPort("192.0.2.1:20012"), To: netip.MustParseAddrPort("203.0.113.9:5004"),
		Via: &NextHop{Ifindex: 7, Src: []byte{2, 0, 0, 0, 0, 1}, Dst: []byte{2, 0, 0, 0, 0, 2}}}}

	first, err := LoadFastPath(c)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := first.Open(20010, hole); err != nil {
		t.Fatal(err)
	}
	if err := first.Open(20020, Pinhole{}); err != nil {
		t.Fatal(err)
	}
	// A packet for the port, counted in its stats.
	in := packet{src: peer.Addr(), dst: netip.MustParseAddr("192.0.2.1"), sport: 4000, dport: 20020}.bytes()
	if got, _ := run(t, first.objs.XdpMedia, in); got != xdpPass {
		t.Fatalf("verdict %d, want pass", got)
	}
	first.Close() // as a killed daemon's would be

	again := loadFastPath(t, c)
	if again.Stale != 0 {
		t.Errorf("Stale = %d after a restart with the same layout and range", again.Stale)
	}
	got, err := again.Entries()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint16]Pinhole{20010: hole, 20020: {}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries after reload:\n got %+v\nwant %+v", got, want)
	}
	if s, err := again.Stats(20020); err != nil || s.Packets != 1 {
		t.Errorf("stats of port 20020 after reload: %+v, %v; want the packet counted before", s, err)
	}
	// Reopening an inherited port keeps its counters.
	if err := again.Open(20020, Pinhole{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := again.Stats(20020); s.Packets != 1 {
		t.Errorf("reopening an inherited port reset its counters: %+v", s)
	}
	again.Close()

	// Another port range: the old maps are of no use, and go.
	other := c
	other.PortMax = portMax + 2
	moved := loadFastPath(t, other)
	if moved.Stale != 1 {
		t.Errorf("Stale = %d with another port range, want 1", moved.Stale)
	}
	if got, _ := moved.Entries(); len(got) != 0 {
		t.Errorf("entries of another range's maps leaked in: %v", got)
	}
	if _, err := os.Stat(c.mapsDir()); !os.IsNotExist(err) {
		t.Errorf("the old range's maps are still pinned: %v", err)
	}
	if err := moved.Unpin(); err != nil {
		t.Fatal(err)
	}
	if left := ours(t, pins); len(left) != 0 {
		t.Errorf("Unpin left %v", left)
	}
}

func TestPinPathMustBeBPFFS(t *testing.T) {
	_, err := LoadFastPath(FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: t.TempDir()})
	if !errors.Is(err, ErrNotBPFFS) {
		t.Fatalf("pin path on a plain directory: %v, want ErrNotBPFFS", err)
	}
	// The root of a bpf filesystem of its own will do; not one that
	// holds others' pins.
	root := bpffsRoot(t)
	f, err := LoadFastPath(FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: root})
	if err != nil {
		t.Fatalf("pin path at the root of a bpf filesystem of its own: %v", err)
	}
	f.Close()
	if err := os.Mkdir(filepath.Join(root, "cilium"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFastPath(FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: root}); !errors.Is(err, ErrPinPathRoot) {
		t.Fatalf("pin path at the root of a shared bpf filesystem: %v, want ErrPinPathRoot", err)
	}
	if _, err := RemovePins(root); !errors.Is(err, ErrPinPathRoot) {
		t.Fatalf("RemovePins at the root of a shared bpf filesystem: %v, want ErrPinPathRoot", err)
	}
	if _, err := os.Stat(filepath.Join(root, "cilium")); err != nil {
		t.Errorf("another program's pins touched: %v", err)
	}
}

// TestPinnedLinkOfAnotherInterface: a pinned link found under the name of
// an interface it is not attached to (its interface was replaced by one of
// the same name) is dropped, not taken over.
func TestPinnedLinkOfAnotherInterface(t *testing.T) {
	pins := bpffs(t)
	lab := netlab.New(t)
	c := FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: pins}
	carrier, customer := lab.CarrierLink.SBC, lab.CustomerLink.SBC
	xdpOn := func(ifindex int) uint32 {
		var id uint32
		lab.SBC.Do(func() error {
			l, err := netlink.LinkByIndex(ifindex)
			if err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
				id = l.Attrs().Xdp.ProgId
			}
			return err
		})
		return id
	}
	var f *FastPath
	if err := lab.SBC.Do(func() error {
		var err error
		if f, err = LoadFastPath(c); err != nil {
			return err
		}
		return f.AttachXDP(carrier.Index, XDPGeneric)
	}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(filepath.Join(pins, "xdp-"+carrier.Name), filepath.Join(pins, "xdp-"+customer.Name)); err != nil {
		t.Fatal(err)
	}
	if err := lab.SBC.Do(func() error {
		var err error
		if f, err = LoadFastPath(c); err != nil {
			return err
		}
		return f.AttachXDP(customer.Index, XDPGeneric)
	}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if id := xdpOn(carrier.Index); id != 0 {
		t.Errorf("the misnamed link stayed attached to %s (program %d)", carrier.Name, id)
	}
	if xdpOn(customer.Index) == 0 {
		t.Errorf("no XDP program on %s", customer.Name)
	}
	if err := f.Unpin(); err != nil {
		t.Fatal(err)
	}
}

func TestPinnedLinkIsTakenOver(t *testing.T) {
	pins := bpffs(t)
	lab := netlab.New(t)
	ifindex := lab.CarrierLink.SBC.Index
	c := FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: pins}
	// xdpProg is the ID of the XDP program on the interface, 0 for none.
	xdpProg := func() uint32 {
		t.Helper()
		var id uint32
		if err := lab.SBC.Do(func() error {
			l, err := netlink.LinkByIndex(ifindex)
			if err != nil {
				return err
			}
			if x := l.Attrs().Xdp; x != nil && x.Attached {
				id = x.ProgId
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	attach := func(hook string) *FastPath {
		t.Helper()
		var f *FastPath
		if err := lab.SBC.Do(func() error {
			var err error
			if f, err = LoadFastPath(c); err != nil {
				return err
			}
			if hook == "tc" {
				return f.AttachTC(ifindex)
			}
			return f.AttachXDP(ifindex, XDPGeneric)
		}); err != nil {
			t.Fatal(err)
		}
		return f
	}

	first := attach("xdp")
	id1 := xdpProg()
	if id1 == 0 {
		t.Fatal("no XDP program attached")
	}
	first.Close()
	if got := xdpProg(); got != id1 {
		t.Fatalf("after Close the interface runs program %d, want the pinned %d", got, id1)
	}

	second := attach("xdp")
	id2 := xdpProg()
	if id2 == 0 || id2 == id1 {
		t.Fatalf("after a restart the interface runs program %d (before %d): want the new one swapped in", id2, id1)
	}
	second.Close()

	// A run on TC takes the interface over from the pinned XDP link.
	third := attach("tc")
	if got := xdpProg(); got != 0 {
		t.Errorf("the XDP program %d stayed beside TC", got)
	}
	if _, err := os.Stat(filepath.Join(pins, "tc-"+lab.CarrierLink.SBC.Name)); err != nil {
		t.Errorf("TC link not pinned: %v", err)
	}
	if err := third.Unpin(); err != nil {
		t.Fatal(err)
	}
	third.Close()
	if left := ours(t, pins); len(left) != 0 {
		t.Errorf("Unpin left %v", left)
	}
}

// ours lists what dir holds beside the files a bpf filesystem comes with
// (nothing when it is gone).
func ours(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".debug" {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRemovePins: a run without the fast path detaches what an earlier one
// left pinned, and touches nothing on a directory that is no bpf
// filesystem.
func TestRemovePins(t *testing.T) {
	pins := bpffs(t)
	lab := netlab.New(t)
	ifindex := lab.CarrierLink.SBC.Index
	var f *FastPath
	if err := lab.SBC.Do(func() error {
		var err error
		if f, err = LoadFastPath(FastPathConfig{PortMin: portMin, PortMax: portMax, PinPath: pins}); err != nil {
			return err
		}
		return f.AttachXDP(ifindex, XDPGeneric)
	}); err != nil {
		t.Fatal(err)
	}
	f.Close() // killed: pinned, attached
	attached := func() bool {
		var on bool
		lab.SBC.Do(func() error {
			l, err := netlink.LinkByIndex(ifindex)
			on = err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
			return err
		})
		return on
	}
	if !attached() {
		t.Fatal("the pinned XDP program is not attached after Close")
	}
	n, err := RemovePins(pins)
	if err != nil || n != 1 {
		t.Fatalf("RemovePins = %d, %v; want 1 link", n, err)
	}
	if attached() {
		t.Error("XDP still attached after RemovePins")
	}
	if left := ours(t, pins); len(left) != 0 {
		t.Errorf("RemovePins left %v", left)
	}

	// What is not the fast path's stays.
	os.MkdirAll(filepath.Join(pins, "vendor"), 0o700)
	if _, err := RemovePins(pins); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pins, "vendor")); err != nil {
		t.Errorf("RemovePins removed a directory not named like its maps: %v", err)
	}

	plain := t.TempDir()
	os.Mkdir(filepath.Join(plain, "v1-keep"), 0o700)
	if n, err := RemovePins(plain); n != 0 || err != nil {
		t.Errorf("RemovePins on a plain directory = %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(plain, "v1-keep")); err != nil {
		t.Errorf("RemovePins touched a directory that is no bpf filesystem: %v", err)
	}
}

// TestPinLayout: the pinned maps' entries have the size their layout
// version says. A change of struct port_entry or port_stats fails here
// until pinLayout is bumped and its sizes added: a restarted daemon must
// never read a previous run's entries with another layout.
func TestPinLayout(t *testing.T) {
	sizes := map[int][2]int{ // layout: port_entry, port_stats
		1: {40, 48},
		2: {76, 48},
	}
	want, ok := sizes[pinLayout]
	got := [2]int{binary.Size(fastpathPortEntry{}), binary.Size(fastpathPortStats{})}
	if !ok || got != want {
		t.Fatalf("layout %d: entries of %v bytes, want %v: bump pinLayout and add its sizes here", pinLayout, got, want)
	}
}
