package netlab

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// txChecksumOff turns off transmit checksum offload on the interface ifname
// of the calling thread's namespace (`ethtool -K ifname tx off`), so its
// UDP and TCP packets carry full checksums, as from a real NIC.
func txChecksumOff(ifname string) error {
	if err := ethtoolSet(ifname, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return fmt.Errorf("turn off tx checksum offload on %s: %w", ifname, err)
	}
	return nil
}

// groOn turns on generic receive offload on ifname (`ethtool -K ifname gro
// on`). On a veth that gives its receive side a NAPI instance, which a
// frame an XDP program redirects to the peer veth (ndo_xdp_xmit) needs:
// without it the kernel drops such frames. Real NICs have their own.
func groOn(ifname string) error {
	if err := ethtoolSet(ifname, unix.ETHTOOL_SGRO, 1); err != nil {
		return fmt.Errorf("turn on GRO on %s: %w", ifname, err)
	}
	return nil
}

// ethtoolSet runs a legacy ETHTOOL_S* value ioctl: vishvananda/netlink has
// no ethtool netlink family.
func ethtoolSet(ifname string, cmd, data uint32) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	val := struct{ cmd, data uint32 }{cmd: cmd, data: data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // the rest of struct ifreq's union
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&val)
	if errno != 0 {
		return errno
	}
	return nil
}
