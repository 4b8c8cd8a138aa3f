//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pion/rtp"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// The generator's sockets are raw non-blocking file descriptors, not
// net.UDPConns: a few receiver goroutines wait on all of them with epoll and
// drain each ready one with recvmmsg(2), instead of one goroutine parked per
// socket in Go's netpoller, and a few sender goroutines write to connected
// sockets (no address to pass or route to look up per packet).
//
// Batching across sockets is impossible in the kernel API (sendmmsg and
// recvmmsg take one socket), and each socket carries one 50 pps stream:
// sends go through a raw socket in batches when the process may open one
// (rawsend.go), else one write(2) each; recvmmsg pays off only when a
// receiver fell behind and packets queued, and then it takes them all in
// one call.

// udpSocket is one bound, non-blocking IPv4 UDP socket.
type udpSocket struct {
	fd    int
	local netip.AddrPort
	peer  netip.AddrPort // set by connect
}

// listenUDP binds ip:0 and learns the port the kernel chose.
func listenUDP(ip netip.Addr) (udpSocket, error) {
	if !ip.Is4() {
		return udpSocket{}, fmt.Errorf("listen udp %v: only IPv4", ip)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return udpSocket{}, fmt.Errorf("open udp socket: %w (open-files limit reached)", err)
		}
		return udpSocket{}, fmt.Errorf("open udp socket: %w", err)
	}
	// The kernel stamps each datagram as it is queued to the socket: the
	// arrival time, free of the receiver's own scheduling delay.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		return udpSocket{}, fmt.Errorf("setsockopt SO_TIMESTAMPNS: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip.As4()}); err != nil {
		syscall.Close(fd)
		return udpSocket{}, fmt.Errorf("bind udp %v:0: %w", ip, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return udpSocket{}, fmt.Errorf("getsockname: %w", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		syscall.Close(fd)
		return udpSocket{}, fmt.Errorf("getsockname: %T, want an IPv4 address", sa)
	}
	return udpSocket{fd: fd, local: netip.AddrPortFrom(ip, uint16(in4.Port))}, nil
}

// connect fixes the peer: writes go there and only its datagrams are
// received, which is what a symmetric RTP peer expects of the relay.
func (s *udpSocket) connect(to netip.AddrPort) error {
	if !to.Addr().Is4() {
		return fmt.Errorf("connect %v: only IPv4", to)
	}
	if err := syscall.Connect(s.fd, &syscall.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}); err != nil {
		return fmt.Errorf("connect udp %v to %v: %w", s.local, to, err)
	}
	s.peer = to
	return nil
}

func (s udpSocket) close() {
	if s.fd > 0 {
		syscall.Close(s.fd)
	}
}

// write sends b on a connected non-blocking socket. A full send buffer
// (EAGAIN) or a pending ICMP error (ECONNREFUSED) is returned, not waited on.
func write(fd int, b []byte) error {
	// RawSyscall: the socket never blocks, so the scheduler need not know.
	_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return e
	}
	return nil
}

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

// batch is a reusable recvmmsg vector of up to len(bufs) datagrams, each
// with room for its SCM_TIMESTAMPNS control message.
type batch struct {
	msgs []mmsghdr
	iovs []syscall.Iovec
	bufs [][]byte
	ctrl [][]byte
	// plain and hdr are for decrypting an SRTP run's packets.
	plain []byte
	hdr   rtp.Header
}

// ctrlLen holds one control message carrying a struct timespec.
var ctrlLen = syscall.CmsgSpace(16)

// readBuf is above packetLen so that an oversize datagram shows as such.
const readBuf = 2048

func newBatch(n int) *batch {
	b := &batch{msgs: make([]mmsghdr, n), iovs: make([]syscall.Iovec, n), bufs: make([][]byte, n), ctrl: make([][]byte, n),
		plain: make([]byte, readBuf)}
	for i := range n {
		b.ctrl[i] = make([]byte, ctrlLen)
		b.msgs[i].hdr.Control = &b.ctrl[i][0]
		b.bufs[i] = make([]byte, readBuf)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(readBuf)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.Iovlen = 1
	}
	return b
}

// recv reads up to len(b.bufs) datagrams from fd without blocking and
// returns how many; packet i is b.packet(i). Zero with a nil error means
// nothing was queued.
func (b *batch) recv(fd int) (int, error) {
	for i := range b.msgs { // the kernel shrinks it to what it wrote
		b.msgs[i].hdr.SetControllen(ctrlLen)
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.msgs[0])),
			uintptr(len(b.msgs)), syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EAGAIN:
			return 0, nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

func (b *batch) packet(i int) []byte { return b.bufs[i][:b.msgs[i].n] }

// stamp is the kernel's receive time of packet i in Unix ns; ok is false
// when the packet came without one.
func (b *batch) stamp(i int) (ns int64, ok bool) {
	h := &b.msgs[i].hdr
	c := b.ctrl[i]
	if int(h.Controllen) < syscall.CmsgLen(16) {
		return 0, false
	}
	cm := (*syscall.Cmsghdr)(unsafe.Pointer(&c[0]))
	if cm.Level != syscall.SOL_SOCKET || cm.Type != syscall.SCM_TIMESTAMPNS {
		return 0, false
	}
	d := c[syscall.CmsgLen(0):]
	sec := int64(binary.NativeEndian.Uint64(d[0:8]))
	nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
	return sec*1e9 + nsec, true
}

// poller is one epoll instance over many sockets, itself watched by Go's
// netpoller: a receiver waiting for packets parks like any goroutine
// blocked on a socket, instead of holding a thread (and, until sysmon
// notices, a P) in epoll_wait, which would starve the senders' timers on a
// machine with few cores.
type poller struct {
	fd   int
	file *os.File        // owns fd
	raw  syscall.RawConn // waits for fd to be readable
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	// An epoll fd is readable when one of the fds it watches is: Go's
	// netpoller can wait on it like on a socket.
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &poller{fd: fd, file: f, raw: raw}, nil
}

// add watches fd for input; events for it carry key.
func (p *poller) add(fd int, key int32) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: key}
	if err := syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// poll returns the events ready now, without waiting (level-triggered: a
// socket still holding data is reported again).
func (p *poller) poll(events []syscall.EpollEvent) int {
	for {
		n, err := syscall.EpollWait(p.fd, events, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return n
	}
}

// serve calls f until it returns true, parking in between until a watched
// socket is readable. f must drain (poll until nothing is ready) before it
// returns false, so that the next packet makes the epoll fd readable again.
// It returns early once wake was called.
func (p *poller) serve(f func() (done bool)) error {
	return p.raw.Read(func(uintptr) bool { return f() })
}

// wake makes serve return now, and from then on.
func (p *poller) wake() { p.file.SetReadDeadline(time.Now()) }

func (p *poller) close() { p.file.Close() }
