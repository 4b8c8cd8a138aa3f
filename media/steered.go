//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"sbc/bpf"
	"sbc/media/rawudp"
)

// The steered transport receives the whole port range on a few sockets, one
// per worker goroutine: a BPF sk_lookup program (package bpf) delivers every
// datagram to an open media port to the worker socket that port was given,
// and IP_RECVORIGDSTADDR tells which port it was sent to. A worker takes up
// to batchSize datagrams per recvmmsg and sends the relayed ones with one
// sendmmsg on a raw socket, writing the IP and UDP headers itself, because a
// UDP socket cannot send from a port it is not bound to. Three file
// descriptors per worker instead of one per port, and far fewer syscalls
// per packet under load (docs/research/relay-steering/FINDINGS.md).
// IPv4 only; it needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW.

// batchSize is the most datagrams one recvmmsg takes and one sendmmsg sends.
const batchSize = 64

// origDstSpace is room for the IP_ORIGDSTADDR control message:
// CMSG_SPACE(sizeof(struct sockaddr_in)) is 32 bytes on 64-bit Linux, 28 on
// 32-bit.
const origDstSpace = 32

type steered struct {
	bind    [4]byte
	bindAny bool // 0.0.0.0: every local address
	ports   *portAllocator
	clock   func() int64 // Relay.clock
	min     int
	slots   []atomic.Pointer[endpoint] // by port - min; nil = closed
	steer   *bpf.Steering
	workers []*worker
	wg      sync.WaitGroup
}

// newSteered binds the workers' sockets and attaches the steering program.
// Any failure (privileges, kernel) is returned for the caller to fall back.
func newSteered(bind netip.Addr, ports *portAllocator, portMin, portMax, workers int, clock func() int64) (_ *steered, err error) {
	if !bind.Is4() {
		return nil, fmt.Errorf("it is IPv4 only and media.bind_ip is %v", bind)
	}
	t := &steered{bind: bind.As4(), bindAny: bind.IsUnspecified(), ports: ports, clock: clock, min: portMin, slots: make([]atomic.Pointer[endpoint], portMax-portMin+1)}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	fds := make([]int, workers)
	for i := range fds {
		w, err := newWorker(t, bind)
		if err != nil {
			return nil, err
		}
		t.workers = append(t.workers, w)
		fds[i] = w.fd
	}
	t.steer, err = bpf.AttachSteering(bpf.SteerConfig{PortMin: uint16(portMin), PortMax: uint16(portMax), IP: bind, Sockets: fds})
	if err != nil {
		return nil, err
	}
	for _, w := range t.workers {
		t.wg.Go(w.run)
	}
	return t, nil
}

// open allocates the leg's pair, publishes its two ports and steers them to
// a worker, the same one for both so that a stream's RTP and RTCP keep their
// relative order.
func (t *steered) open(st *Stream, l *leg, _ *sync.WaitGroup) error {
	port, err := t.allocFree()
	if err != nil {
		return err
	}
	l.rtpPort = port
	w := (port / 2) % len(t.workers)
	for k := range l.ep {
		l.ep[k] = endpoint{st: st, side: l.side, kind: sockKind(k)}
		t.slots[port+k-t.min].Store(&l.ep[k])
	}
	for k := range 2 {
		if err := t.steer.Open(uint16(port+k), w); err != nil {
			t.shut(l)
			return fmt.Errorf("open media port %d: %w", port+k, err)
		}
	}
	return nil
}

// allocFree allocates a pair that no socket holds: steering would take the
// datagrams of a socket bound to one of its ports (another program's, or
// this daemon's own SIP listener). Held pairs go back to the queue's tail,
// as with one socket per port.
func (t *steered) allocFree() (int, error) {
	var busy error
	for tries := t.ports.freePairs(); tries > 0; tries-- {
		port, ok := t.ports.alloc()
		if !ok {
			break
		}
		err := t.probe(port)
		if err == nil {
			return port, nil
		}
		t.ports.free(port)
		if !isAddrInUse(err) {
			return 0, fmt.Errorf("probe media ports %d-%d: %w", port, port+1, err)
		}
		busy = err
	}
	if busy != nil {
		return 0, fmt.Errorf("%w: the free pairs are held by other sockets (last: %v)", ErrNoPorts, busy)
	}
	return 0, ErrNoPorts
}

// probe binds port and port+1 on the relay's address for a moment: an error
// says a socket holds one of them.
func (t *steered) probe(port int) error {
	for p := port; p <= port+1; p++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: t.bind, Port: p})
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// shut stops steering the leg's ports. A worker may still be relaying a
// packet it took before; the ports go back to the allocator's tail, so they
// are not handed out again soon.
func (t *steered) shut(l *leg) {
	for k := range 2 {
		t.steer.Shut(uint16(l.rtpPort + k)) // an error leaves the port open to a nil slot: dropped
		t.slots[l.rtpPort+k-t.min].Store(nil)
	}
}

// source is the address a datagram leaving by l is sent from: the one l's
// peer sends to, so that it sees media come from where it sends (RFC 4961);
// before that peer has sent anything, the relay's address, or with 0.0.0.0
// the kernel's choice towards the peer; else fallback, where the datagram
// being relayed came in.
func (t *steered) source(l *leg, fallback [4]byte) [4]byte {
	if v := l.local.Load(); v != 0 {
		return ip4(v)
	}
	if t.bindAny {
		if v := l.routeSrc.Load(); v != 0 {
			return ip4(v)
		}
		return fallback
	}
	return t.bind
}

// remoteChanged learns, when the relay listens on every address, which one
// the kernel would send from to rtp, for source until the peer sends.
func (t *steered) remoteChanged(l *leg, rtp netip.AddrPort) {
	l.local.Store(0) // a new peer may send to another address
	l.routeSrc.Store(0)
	if !t.bindAny || !rtp.Addr().Is4() {
		return
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.Connect(fd, &unix.SockaddrInet4{Addr: rtp.Addr().As4(), Port: int(rtp.Port())}) != nil {
		return
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		if in4, ok := sa.(*unix.SockaddrInet4); ok {
			l.routeSrc.Store(binary.BigEndian.Uint32(in4.Addr[:]))
		}
	}
}

// sawLocal records a, where a datagram from l's peer was sent to.
func (l *leg) sawLocal(a [4]byte) {
	if v := binary.BigEndian.Uint32(a[:]); l.local.Load() != v {
		l.local.Store(v)
	}
}

func ip4(v uint32) (a [4]byte) {
	binary.BigEndian.PutUint32(a[:], v)
	return a
}

// quiesce waits until every worker that was relaying a batch when it was
// called is done with it: after shut, no worker still holds a shut port's
// stream (a batch begun later finds the slot empty). A batch never blocks
// (non-blocking sends), so it takes microseconds.
func (t *steered) quiesce() {
	busy := make([]uint64, len(t.workers))
	for i, w := range t.workers {
		busy[i] = w.busy.Load()
	}
	for i, w := range t.workers {
		for n := 0; busy[i]%2 == 1 && w.busy.Load() == busy[i]; n++ {
			if n < 100 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}

// others is how many sk_lookup programs were attached before this one.
func (t *steered) others() int { return t.steer.Others() }

// unrouted sums the workers' datagrams that reached no stream.
func (t *steered) unrouted() uint64 {
	var n uint64
	for _, w := range t.workers {
		n += w.unrouted.Load()
	}
	return n
}

func (t *steered) lookup(port uint16) *endpoint {
	i := uint(int(port) - t.min)
	if i >= uint(len(t.slots)) {
		return nil
	}
	return t.slots[i].Load()
}

// close detaches the program and ends the workers.
func (t *steered) close() {
	if t.steer != nil {
		t.steer.Close()
	}
	for _, w := range t.workers {
		w.closeRx()
	}
	t.wg.Wait()
	for _, w := range t.workers {
		w.closeTx() // only now: a running worker may be sending
	}
}

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

	out  [batchSize]unix.Mmsghdr
	oiov [batchSize]unix.Iovec
	odst [batchSize]unix.RawSockaddrInet4
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

		o := &w.out[i].Hdr
		o.Name = (*byte)(unsafe.Pointer(&w.odst[i]))
		o.Namelen = unix.SizeofSockaddrInet4
		o.Iov = &w.oiov[i]
		o.Iovlen = 1
		w.odst[i].Family = unix.AF_INET
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
		in.sawLocal(local)
		dst := fwd.dst.Addr().As4()
		rawudp.PutHeaders(w.bufs[i][:rawudp.HeaderLen], w.t.source(fwd.out, local), dst, uint16(fwd.port), fwd.dst.Port(), b)
		w.oiov[out].Base = &w.bufs[i][0]
		w.oiov[out].SetLen(rawudp.HeaderLen + ln)
		w.odst[out].Addr = dst
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
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(w.raw), uintptr(unsafe.Pointer(&w.out[i])), uintptr(out-i), unix.MSG_DONTWAIT, 0, 0)
		sent := int(r)
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
