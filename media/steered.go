//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sbc/bpf"
)

// The steered transport receives the whole port range on a few sockets, one
// per worker goroutine: a BPF sk_lookup program (package bpf) delivers every
// datagram to an open media port to the worker socket that port was given,
// and IP_RECVORIGDSTADDR tells which port it was sent to. A worker takes up
// to batchSize datagrams per recvmmsg and sends the relayed ones with one
// sendmmsg on a raw socket, writing the IP and UDP headers itself, because a
// UDP socket cannot send from a port it is not bound to (worker.go). Two
// file descriptors per worker instead of one per port, and far fewer syscalls
// per packet under load (docs/research/relay-steering/FINDINGS.md).
// IPv4 only; it needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW.

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
func (t *steered) open(st *Stream, l *leg, _ *sync.WaitGroup, port int) error {
	if port == 0 {
		var err error
		if port, err = t.allocFree(); err != nil {
			return err
		}
	} else if err := t.probe(port); err != nil {
		// A port a previous run had (AdoptStream), since taken by a
		// socket whose datagrams steering would steal.
		return fmt.Errorf("media ports %d-%d: %w", port, port+1, err)
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

// sawLocal records a, where a datagram from l's peer was sent to, and
// reports whether that is news.
func (l *leg) sawLocal(a [4]byte) bool {
	if v := binary.BigEndian.Uint32(a[:]); l.local.Load() != v {
		l.local.Store(v)
		return true
	}
	return false
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
