//go:build linux

package media

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"sbc/media/rawudp"
)

// A worker is one goroutine of the steered transport (steered.go) with its
// two sockets: it takes the datagrams of the ports steered to it in batches
// and sends the relayed ones in batches.

// batchSize is the most datagrams one recvmmsg takes and one sendmmsg sends.
const batchSize = rawudp.MaxBatch

// origDstSpace is room for the IP_ORIGDSTADDR control message:
// CMSG_SPACE(sizeof(struct sockaddr_in)) is 32 bytes on 64-bit Linux, 28 on
// 32-bit.
const origDstSpace = 32

// worker owns one steered socket and one raw socket. Its buffers are
// reused for every batch: the hot path does not allocate.
type worker struct {
	t    *steered
	fd   int      // steered UDP socket, non-blocking
	file *os.File // fd, for the netpoller
	rc   syscall.RawConn
	raw  int // IPPROTO_RAW socket
	// unrouted counts datagrams that reached no stream: port just shut,
	// no original destination, socket errors.
	unrouted atomic.Uint64
	busy     atomic.Uint64

	n     int // datagrams of the last recvmmsg
	errno syscall.Errno
	read  func(fd uintptr) bool // made once: a method value would allocate per call

	msgs  [batchSize]unix.Mmsghdr
	iov   [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet4
	oob   [batchSize][origDstSpace / 8]uint64 // 8-byte aligned, as struct cmsghdr wants
	bufs  [batchSize][rawudp.HeaderLen + readBuffer]byte

	out  rawudp.Batch
	sent [batchSize]sentPacket
}

// sentPacket is what to count once a queued datagram has gone out.
type sentPacket struct {
	c    *counters
	rtcp bool
	n    int
}

func newWorker(t *steered, bind netip.Addr) (*worker, error) {
	w := &worker{t: t, fd: -1, raw: -1}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("steered socket: %w", err)
	}
	w.fd = fd
	fail := func(err error) (*worker, error) {
		w.closeRx()
		w.closeTx()
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1); err != nil {
		return fail(fmt.Errorf("steered socket: IP_RECVORIGDSTADDR: %w", err))
	}
	setBuffers(fd)
	// Port 0: the socket needs no port of the range; sk_lookup brings them.
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: bind.As4()}); err != nil {
		return fail(fmt.Errorf("steered socket: bind %v: %w", bind, err))
	}
	if w.raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
		return fail(fmt.Errorf("raw socket: %w", err))
	}
	setBuffers(w.raw)
	w.file = os.NewFile(uintptr(fd), "media-steered")
	if w.rc, err = w.file.SyscallConn(); err != nil {
		return fail(err)
	}
	for i := range w.msgs {
		w.iov[i].Base = &w.bufs[i][rawudp.HeaderLen]
		w.iov[i].SetLen(readBuffer)
		h := &w.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		h.Iov = &w.iov[i]
		h.Iovlen = 1
		h.Control = (*byte)(unsafe.Pointer(&w.oob[i][0]))
		w.rearm(i)
	}
	w.read = w.recv
	return w, nil
}

// setBuffers asks for 4 MiB socket buffers: a batch-driven worker drains
// its socket in bursts. The FORCE options pass net.core.[rw]mem_max with
// CAP_NET_ADMIN; otherwise the plain ones are capped by the sysctls.
func setBuffers(fd int) {
	const size = 4 << 20
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
	}
}

// control is message i's control buffer as bytes.
func (w *worker) control(i int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&w.oob[i][0])), origDstSpace)
}

func (w *worker) rearm(i int) {
	h := &w.msgs[i].Hdr
	h.Namelen = unix.SizeofSockaddrInet4
	h.SetControllen(origDstSpace)
	h.Flags = 0
}

// recv is the netpoller callback: one non-blocking recvmmsg. RawSyscall
// (the call cannot block) saves the scheduler hand-off of a Syscall.
func (w *worker) recv(fd uintptr) bool {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false // park until readable
	}
	w.n, w.errno = int(n), e
	return true
}

// run relays until the socket is closed. busy is odd while a batch is
// being relayed, so that quiesce can tell when every batch taken before a
// port was shut is done.
func (w *worker) run() {
	for {
		if err := w.rc.Read(w.read); err != nil {
			return
		}
		switch {
		case w.errno == 0 && w.n > 0:
			w.busy.Add(1)
			w.relay(w.n)
			w.busy.Add(1)
		case w.errno != 0 && w.errno != unix.EINTR:
			// A socket error (ENOMEM, say) that the next call may meet
			// again: count it and do not spin on it.
			w.unrouted.Add(1)
			time.Sleep(time.Millisecond)
		}
	}
}

// relay handles n received datagrams and sends what is to be relayed.
func (w *worker) relay(n int) {
	out, now := 0, w.t.clock()
	for i := range n {
		m := &w.msgs[i]
		ln, flags, ctl := int(m.Len), m.Hdr.Flags, int(m.Hdr.Controllen)
		w.rearm(i)
		// The one control message, IP_ORIGDSTADDR: the sockaddr_in the
		// datagram was sent to.
		c := w.control(i)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&w.oob[i][0]))
		if flags&unix.MSG_CTRUNC != 0 || ctl < unix.CmsgLen(unix.SizeofSockaddrInet4) ||
			h.Level != unix.SOL_IP || h.Type != unix.IP_ORIGDSTADDR {
			w.unrouted.Add(1)
			continue
		}
		sin := c[unix.CmsgLen(0):]
		local := [4]byte(sin[4:8])
		ep := w.t.lookup(uint16(sin[2])<<8 | uint16(sin[3]))
		if ep == nil {
			w.unrouted.Add(1) // a port shut while the datagram queued
			continue
		}
		in := &ep.st.legs[ep.side]
		if flags&unix.MSG_TRUNC != 0 { // over readBuffer: no RTP/RTCP
			in.in.dropped.Add(1)
			continue
		}
		sa := &w.names[i]
		sport := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network order in memory
		src := netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sport[0])<<8|uint16(sport[1]))
		b := w.bufs[i][rawudp.HeaderLen : rawudp.HeaderLen+ln]
		fwd, ok := ep.st.forward(ep.side, ep.kind, b, src, now)
		if !ok {
			continue
		}
		if !fwd.dst.Addr().Is4() { // signalled IPv6 to an IPv4 relay
			fwd.counters.dropped.Add(1)
			continue
		}
		if in.sawLocal(local) {
			ep.st.sess.relay.nudgeOffload(ep.st.sess) // the address to relay from is known now
		}
		dst := fwd.dst.Addr().As4()
		ln = len(fwd.b) // SRTP may have added or removed a tag
		rawudp.PutHeaders(w.bufs[i][:rawudp.HeaderLen], w.t.source(fwd.out, local), dst, uint16(fwd.port), fwd.dst.Port(), fwd.b)
		w.out.Set(out, w.bufs[i][:rawudp.HeaderLen+ln], dst)
		w.sent[out] = sentPacket{c: fwd.counters, rtcp: fwd.rtcp, n: ln}
		out++
	}
	w.flush(out)
}

// flush sends the queued datagrams and counts them. A datagram the kernel
// refuses is dropped and counted; a full send buffer drops the rest of the
// batch rather than retrying into it.
func (w *worker) flush(out int) {
	for i := 0; i < out; {
		sent, e := w.out.Send(w.raw, i, out)
		if e != 0 || sent <= 0 {
			if e == unix.EAGAIN || e == unix.ENOBUFS {
				for _, p := range w.sent[i:out] {
					p.c.dropped.Add(1)
				}
				return
			}
			w.sent[i].c.dropped.Add(1)
			i++
			continue
		}
		for _, p := range w.sent[i : i+sent] {
			p.c.forwarded(p.rtcp, p.n)
		}
		i += sent
	}
}

// closeRx closes the steered socket, which ends run.
func (w *worker) closeRx() {
	if w.file != nil {
		w.file.Close()
	} else if w.fd >= 0 {
		unix.Close(w.fd)
	}
}

func (w *worker) closeTx() {
	if w.raw >= 0 {
		unix.Close(w.raw)
	}
}
