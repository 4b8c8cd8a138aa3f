//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Before Linux 6.6 there is no tcx: a TC program is attached the older
// way, as a direct-action bpf filter on the ingress of a clsact qdisc,
// through netlink. Such a filter is not a bpf link: it stays attached when
// the process dies, holding the program and its maps. So the daemon always
// attaches with the same priority and handle, replacing what an earlier
// run left (pinned maps taken over, or a fresh program), and Close removes
// it unless the fast path is pinned.

// clsactPrio and clsactHandle name the daemon's filter on an interface.
const (
	clsactPrio   = 0xc5b // "sbc"
	clsactHandle = 1
)

func clsactFilter(ifindex, fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: netlink.MakeHandle(0, clsactHandle), Protocol: unix.ETH_P_ALL, Priority: clsactPrio},
		Fd: fd, Name: "sbc_tc_media", DirectAction: true,
	}
}

// attachClsact attaches the TC program to the interface's ingress through
// a clsact qdisc (created if missing), in the calling thread's network
// namespace, replacing the filter an earlier run left.
func (f *FastPath) attachClsact(ifindex int) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fast path: netlink: %w", err)
	}
	defer h.Close()
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("fast path: add a clsact qdisc to interface %d: %w", ifindex, err)
	}
	if err := h.FilterReplace(clsactFilter(ifindex, f.objs.TcMedia.FD())); err != nil {
		return fmt.Errorf("fast path: attach the TC filter to interface %d: %w", ifindex, err)
	}
	f.clsact = append(f.clsact, ifindex)
	return nil
}

// detachClsact removes the filters attachClsact put, in the calling
// thread's network namespace (the qdisc stays: others may use it).
func (f *FastPath) detachClsact() error {
	if len(f.clsact) == 0 {
		return nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fast path: netlink: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, ifindex := range f.clsact {
		err := h.FilterDel(clsactFilter(ifindex, f.objs.TcMedia.FD()))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("fast path: detach the TC filter from interface %d: %w", ifindex, err))
		}
	}
	f.clsact = nil
	return errors.Join(errs...)
}

// dropClsact removes a filter of ours an earlier run left on the
// interface's ingress, in the calling thread's namespace: attaching XDP
// there must not leave the old TC program running behind it.
func dropClsact(ifindex int) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fast path: netlink: %w", err)
	}
	defer h.Close()
	err = h.FilterDel(clsactFilter(ifindex, 0))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("fast path: remove an old TC filter from interface %d: %w", ifindex, err)
	}
	return nil
}

// DropClsactExcept removes the filters of ours that an earlier run left on
// the ingress of interfaces other than keep, in the calling thread's
// network namespace: a daemon killed while unpinned leaves them holding
// its program, which would keep dropping the media ports of a new run. It
// returns how many it removed.
func DropClsactExcept(keep []int) (int, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return 0, fmt.Errorf("fast path: netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("fast path: list interfaces: %w", err)
	}
	n := 0
	var errs []error
	for _, l := range links {
		if slices.Contains(keep, l.Attrs().Index) {
			continue
		}
		fs, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			continue // no clsact there
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == clsactPrio && bf.Handle == netlink.MakeHandle(0, clsactHandle) {
				if err := h.FilterDel(clsactFilter(l.Attrs().Index, 0)); err != nil {
					errs = append(errs, fmt.Errorf("fast path: remove an old TC filter from %s: %w", l.Attrs().Name, err))
					continue
				}
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}
