//go:build linux

// Package bare is sbc-bench's bare forwarder: an XDP program that only
// rewrites a UDP packet's addresses, ports and checksums and sends it out
// (bare.c), the yardstick the kernel fast path's cost is measured against.
package bare

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf/link"
)

// Forwarder is the loaded program, attached to interfaces with Attach.
type Forwarder struct {
	objs  bareObjects
	links []link.Link
}

// Load loads the program with no entry.
func Load() (*Forwarder, error) {
	f := &Forwarder{}
	if err := loadBareObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("bare forwarder: load: %w", err)
	}
	return f, nil
}

// Attach attaches it in the driver (native XDP) to an interface of the
// calling thread's network namespace.
func (f *Forwarder) Attach(ifindex int) error {
	l, err := link.AttachXDP(link.XDPOptions{Program: f.objs.XdpBare, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("bare forwarder: attach XDP to interface %d: %w", ifindex, err)
	}
	f.links = append(f.links, l)
	return nil
}

// Entry is what the program does with a packet to one port: it leaves
// from Src to Dst, out of Ifindex with the Ethernet addresses SrcMAC and
// DstMAC.
type Entry struct {
	Src, Dst       netip.AddrPort
	Ifindex        int
	SrcMAC, DstMAC net.HardwareAddr
}

// Put installs the entry of port.
func (f *Forwarder) Put(port uint16, e Entry) error {
	if !e.Src.Addr().Is4() || !e.Dst.Addr().Is4() || len(e.SrcMAC) != 6 || len(e.DstMAC) != 6 {
		return fmt.Errorf("bare forwarder: entry %+v: IPv4 and Ethernet only", e)
	}
	v := bareEntry{Saddr: ne32(e.Src.Addr().As4()), Daddr: ne32(e.Dst.Addr().As4()),
		Sport: ne16(e.Src.Port()), Dport: ne16(e.Dst.Port()), Ifindex: uint32(e.Ifindex),
		Smac: [6]uint8(e.SrcMAC), Dmac: [6]uint8(e.DstMAC)}
	if err := f.objs.Fwd.Put(uint32(port), v); err != nil {
		return fmt.Errorf("bare forwarder: put port %d: %w", port, err)
	}
	return nil
}

// Delete removes the entry of port.
func (f *Forwarder) Delete(port uint16) error {
	return f.objs.Fwd.Delete(uint32(port))
}

// Close detaches and frees the program.
func (f *Forwarder) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	return errors.Join(append(errs, f.objs.Close())...)
}

// ne32 and ne16 are the values whose memory holds the address or port in
// network order, as the program compares and writes them.
func ne32(b [4]byte) uint32 { return binary.NativeEndian.Uint32(b[:]) }

func ne16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}
