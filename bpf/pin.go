package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Pinning keeps the fast path alive past the process: the per-port maps and
// the links attaching the programs are pinned under FastPathConfig.PinPath
// on a bpf filesystem. A daemon that dies (kill -9) or stops for an upgrade
// leaves them in place, so streams already forwarded keep flowing; the next
// one loads the same maps (their entries with them) and swaps its programs
// into the pinned links.
//
// Layout under PinPath:
//
//	v<layout>-<min>-<max>/ports, .../stats   the per-port maps
//	xdp-<ifname>, tc-<ifname>                the links
//
// The maps' directory names the layout of their entries and the port range
// (stats are indexed from the range's first port): a daemon with another
// layout or range cannot read them, so it removes them and starts with every
// port closed.

// pinLayout changes with struct port_entry or struct port_stats
// (TestPinLayout holds their sizes per layout). 2: 16-byte addresses.
const pinLayout = 2

// bpfFSMagic is BPF_FS_MAGIC (statfs f_type of a bpf filesystem).
const bpfFSMagic = 0xcafe4a11

// ErrNotBPFFS is returned by LoadFastPath when PinPath is not on a bpf
// filesystem.
var ErrNotBPFFS = errors.New("not on a bpf filesystem")

// ErrPinPathRoot is returned by LoadFastPath and RemovePins when PinPath is
// the root of a bpf filesystem that holds others' pins: the fast path wants
// a directory of its own (a bpf filesystem mounted for it alone will do).
var ErrPinPathRoot = errors.New("the root of a bpf filesystem other programs pin in; name a directory of its own under it, e.g. /sys/fs/bpf/sbc")

// Names of what the fast path pins under PinPath; nothing else there is
// touched.
var (
	mapsDirName = regexp.MustCompile(`^v[0-9]+-[0-9]+-[0-9]+$`)
	linkName    = regexp.MustCompile(`^(xdp|tc)-[^/\s]{1,15}$`)
)

// checkPinPath says whether dir is a directory of its own on a bpf
// filesystem: ErrNotBPFFS, ErrPinPathRoot, or nil.
func checkPinPath(dir string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("fast path: pin path: %w", err)
	}
	if fs.Type != bpfFSMagic {
		return fmt.Errorf("fast path: pin path %s: %w (mount one: mount -t bpf bpf /sys/fs/bpf)", dir, ErrNotBPFFS)
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("fast path: pin path: %w", err)
	}
	if err := unix.Stat(filepath.Dir(filepath.Clean(dir)), &parent); err != nil {
		return fmt.Errorf("fast path: pin path: %w", err)
	}
	if st.Dev == parent.Dev && st.Ino != parent.Ino {
		return nil // a directory in a bpf filesystem
	}
	// The root of one (a mount point): fine if nothing but ours is there.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("fast path: pin path: %w", err)
	}
	for _, e := range entries {
		if !mapsDirName.MatchString(e.Name()) && !linkName.MatchString(e.Name()) && !strings.HasSuffix(e.Name(), ".debug") {
			return fmt.Errorf("fast path: pin path %s (holds %s): %w", dir, e.Name(), ErrPinPathRoot)
		}
	}
	return nil
}

// pinned maps, by name.
var pinnedMaps = []string{fastpathMapPorts, fastpathMapStats}

func (c FastPathConfig) mapsDir() string {
	return filepath.Join(c.PinPath, fmt.Sprintf("v%d-%d-%d", pinLayout, c.PortMin, c.PortMax))
}

// preparePins makes PinPath, checks it is on a bpf filesystem, and removes
// the maps of another layout or port range. It returns how many stale map
// directories it removed.
func preparePins(c FastPathConfig) (stale int, err error) {
	if err := os.MkdirAll(c.PinPath, 0o700); err != nil {
		return 0, fmt.Errorf("fast path: pin path: %w", err)
	}
	if err := checkPinPath(c.PinPath); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(c.PinPath)
	if err != nil {
		return 0, fmt.Errorf("fast path: pin path: %w", err)
	}
	want := filepath.Base(c.mapsDir())
	for _, e := range entries {
		if e.IsDir() && mapsDirName.MatchString(e.Name()) && e.Name() != want {
			if err := os.RemoveAll(filepath.Join(c.PinPath, e.Name())); err != nil {
				return stale, fmt.Errorf("fast path: remove stale maps: %w", err)
			}
			stale++
		}
	}
	return stale, os.MkdirAll(c.mapsDir(), 0o700)
}

// Pinned tells whether the maps and links outlive the process.
func (f *FastPath) Pinned() bool { return f.pinPath != "" }

// linkPin is where the link of hook ("xdp", "tc") on an interface is pinned.
func (f *FastPath) linkPin(hook string, ifindex int) (string, error) {
	ifc, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("fast path: interface %d: %w", ifindex, err)
	}
	return filepath.Join(f.pinPath, hook+"-"+ifc.Name), nil
}

// PinnedHook is the hook ("xdp" or "tc") an earlier run left attached to
// the interface, or "".
func (f *FastPath) PinnedHook(ifindex int) string {
	if !f.Pinned() {
		return ""
	}
	for _, hook := range []string{"xdp", "tc"} {
		if p, err := f.linkPin(hook, ifindex); err == nil {
			if _, err := os.Stat(p); err == nil {
				return hook
			}
		}
	}
	return ""
}

// adopt takes over the link an earlier run pinned for hook on the
// interface, swapping prog in: the interface is never without a program.
// It drops the pinned link of the other hook, which would run the old
// program beside the new one. false: nothing pinned to take over.
func (f *FastPath) adopt(hook string, ifindex int, prog *ebpf.Program) (bool, error) {
	if !f.Pinned() {
		return false, nil
	}
	for _, other := range []string{"xdp", "tc"} {
		if other == hook {
			continue
		}
		if p, err := f.linkPin(other, ifindex); err == nil {
			if err := unpinLink(p); err != nil {
				return false, err
			}
		}
	}
	p, err := f.linkPin(hook, ifindex)
	if err != nil {
		return false, err
	}
	l, err := link.LoadPinnedLink(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err == nil && linkIfindex(l) != ifindex {
		// Its interface went away (and one of the same name came), or the
		// file was renamed: not the interface's link.
		err = fmt.Errorf("pinned link on interface %d, not %d", linkIfindex(l), ifindex)
	}
	if err == nil {
		if err = l.Update(prog); err == nil {
			f.links = append(f.links, l)
			f.linkPaths[l] = p
			return true, nil
		}
	}
	if l != nil {
		l.Close()
	}
	// A link that cannot be loaded or updated (its interface went away and
	// came back): drop it and attach afresh.
	if err := unpinLink(p); err != nil {
		return false, err
	}
	return false, nil
}

// linkIfindex is the interface an XDP or tcx link is attached to; 0 when
// it is neither, or its interface is gone.
func linkIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil {
		return 0
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex)
	}
	if x := info.TCX(); x != nil {
		return int(x.Ifindex)
	}
	return 0
}

// pin pins a link just attached.
func (f *FastPath) pin(l link.Link, hook string, ifindex int) error {
	if !f.Pinned() {
		return nil
	}
	p, err := f.linkPin(hook, ifindex)
	if err == nil {
		err = l.Pin(p)
	}
	if err != nil {
		return fmt.Errorf("fast path: pin the %s link: %w", hook, err)
	}
	f.linkPaths[l] = p
	return nil
}

// unpinLink removes a pinned link, which detaches it once no process holds
// it.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if err == nil {
		err = errors.Join(l.Unpin(), l.Close())
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// Not a link we can load: remove the file itself.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("fast path: remove %s: %w", path, err)
		}
	}
	return nil
}

// DropOtherLinks detaches the links an earlier run pinned on interfaces
// this run did not attach to.
func (f *FastPath) DropOtherLinks() error {
	if !f.Pinned() {
		return nil
	}
	keep := map[string]bool{}
	for _, p := range f.linkPaths {
		keep[p] = true
	}
	entries, err := os.ReadDir(f.pinPath)
	if err != nil {
		return fmt.Errorf("fast path: pin path: %w", err)
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(f.pinPath, e.Name())
		if e.IsDir() || keep[p] || !linkName.MatchString(e.Name()) {
			continue
		}
		errs = append(errs, unpinLink(p))
	}
	return errors.Join(errs...)
}

// Unpin removes every pin: the links detach and the maps are freed when
// Close lets go of them. For a daemon that stops with no call left.
func (f *FastPath) Unpin() error {
	if !f.Pinned() {
		return nil
	}
	var errs []error
	for _, l := range f.links {
		if f.linkPaths[l] != "" {
			errs = append(errs, l.Unpin())
		}
	}
	f.linkPaths = nil
	errs = append(errs, f.detachClsact()) // not a link: removed, not unpinned
	for _, m := range []*ebpf.Map{f.objs.Ports, f.objs.Stats} {
		if m.IsPinned() {
			errs = append(errs, m.Unpin())
		}
	}
	errs = append(errs, os.Remove(f.mapsDirPath))
	os.Remove(f.pinPath) // a directory of its own, empty now; not a mount point
	return errors.Join(errs...)
}

// Entries returns the open ports and what each does: after a restart, the
// pinholes and forwarding an earlier run left.
func (f *FastPath) Entries() (map[uint16]Pinhole, error) {
	out := map[uint16]Pinhole{}
	var (
		key uint32
		e   fastpathPortEntry
	)
	it := f.objs.Ports.Iterate()
	for it.Next(&key, &e) {
		out[uint16(key)] = e.pinhole()
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("fast path: read ports: %w", err)
	}
	return out, nil
}

// pinhole turns an entry back into what Open was given.
func (e fastpathPortEntry) pinhole() Pinhole {
	var p Pinhole
	peer := netip.AddrPortFrom(addrOf(e.Peer), port16(e.PeerPort))
	if e.Flags&portStrict != 0 {
		p.Peer = peer
	}
	if e.Flags&portForward != 0 {
		p.Forward = &Forward{
			From: netip.AddrPortFrom(addrOf(e.OutSaddr), port16(e.OutSport)),
			To:   netip.AddrPortFrom(addrOf(e.OutDaddr), port16(e.OutDport)),
		}
		if e.OutIfindex != 0 {
			p.Forward.Via = &NextHop{Ifindex: int(e.OutIfindex),
				Src: net.HardwareAddr(e.OutSmac[:]), Dst: net.HardwareAddr(e.OutDmac[:])}
		}
		if e.Flags&portForwardPeer != 0 {
			p.ForwardFrom = peer
		}
	}
	return p
}

// port16 undoes be16.
func port16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return uint16(b[0])<<8 | uint16(b[1])
}

// RemovePins removes what a run left pinned under pinPath, for a daemon
// that starts without the fast path (or with another pin path): the links
// detach, the maps go. It returns how many links it detached.
func RemovePins(pinPath string) (int, error) {
	entries, err := os.ReadDir(pinPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fast path: pin path: %w", err)
	}
	if err := checkPinPath(pinPath); errors.Is(err, ErrPinPathRoot) {
		return 0, err
	} else if err != nil {
		return 0, nil // not on a bpf filesystem: nothing of ours can be pinned there
	}
	n := 0
	var errs []error
	for _, e := range entries {
		p := filepath.Join(pinPath, e.Name())
		switch {
		case !e.IsDir() && linkName.MatchString(e.Name()):
			if err := unpinLink(p); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		case e.IsDir() && mapsDirName.MatchString(e.Name()):
			errs = append(errs, os.RemoveAll(p))
		}
	}
	os.Remove(pinPath)
	return n, errors.Join(errs...)
}
