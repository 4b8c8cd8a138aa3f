package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are mounted, as by `ip netns add`.
const RunDir = "/var/run/netns"

// Namespace is one of a lab's network namespaces. Its methods may be called
// from any goroutine; none changes the calling goroutine's thread.
type Namespace struct {
	Name string // as `ip netns list` shows it
	Path string // its mount, for nsenter --net=PATH or setns(2)

	h netns.NsHandle // open from creation to the lab's cleanup
}

// Do runs f on a goroutine locked to an OS thread inside the namespace and
// returns f's error. Sockets f creates stay in the namespace; goroutines it
// starts do not run there. f must not call t.FailNow (it is not the test's
// goroutine). If the thread cannot be moved back to its namespace, the
// runtime discards it rather than let other goroutines run there.
func (n *Namespace) Do(f func() error) error {
	return onThread(func() error {
		if err := netns.Set(n.h); err != nil {
			return fmt.Errorf("enter netns %s: %w", n.Name, err)
		}
		return f()
	})
}

// Command returns a command that runs name inside the namespace, through
// `ip netns exec` (which execs name in place, so killing the process kills
// name, and gives it a /sys of the namespace, as tshark needs).
func (n *Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// ListenUDP opens a UDP socket bound to addr inside the namespace.
func (n *Namespace) ListenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	var c *net.UDPConn
	err := n.Do(func() error {
		var err error
		c, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

// onThread runs f on a new goroutine locked to its OS thread and moves that
// thread back to its network namespace afterwards. Only when that succeeds
// is the thread unlocked; otherwise the goroutine exits locked and the
// runtime terminates the thread.
func onThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get thread's netns: %w", err)
			return
		}
		defer orig.Close()
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		ferr := errors.New("netlab: function exited the goroutine") // runtime.Goexit
		defer func() {
			if err := netns.Set(orig); err != nil {
				errc <- errors.Join(ferr, fmt.Errorf("restore thread's netns (thread discarded): %w", err))
				return
			}
			restored = true
			errc <- ferr
		}()
		ferr = f()
	}()
	return <-errc
}

// runDirOnce serialises making RunDir a shared mount, as two labs built at
// once in one process would otherwise both bind it onto itself.
var runDirOnce sync.Mutex

// prepareRunDir creates RunDir and makes it a shared mount, as iproute2
// does, so that a namespace's unmount reaches the mount namespaces of
// `ip netns exec` processes too; without that a peer still running there
// would keep the namespace of a deleted lab alive.
func prepareRunDir() error {
	runDirOnce.Lock()
	defer runDirOnce.Unlock()
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", RunDir, err)
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", RunDir, err)
	}
	return nil
}

// newNamespace creates a network namespace mounted at RunDir/name.
func newNamespace(name string) (*Namespace, error) {
	path := filepath.Join(RunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount on %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		unmount(path)
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	return &Namespace{Name: name, Path: path, h: h}, nil
}

// remove closes the namespace's handle and unmounts it; the kernel frees the
// namespace, and the interfaces in it, once nothing else refers to it.
func (n *Namespace) remove() error {
	n.h.Close()
	if err := unmount(n.Path); err != nil {
		return fmt.Errorf("delete netns %s: %w", n.Name, err)
	}
	return nil
}

func unmount(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return err
	}
	return os.Remove(path)
}
