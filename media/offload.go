package media

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"time"

	"sbc/bpf"
)

// Offload is a kernel fast path that relays a port's datagrams itself
// (package firewall). The relay hands it a direction of a stream once both
// peers' addresses are known (latched, or signalled in strict mode) and
// takes it back when they change; the userspace path stays ready under it,
// and takes over whatever the kernel passes up (a new source, a packet it
// cannot route).
type Offload interface {
	// Forward relays what from sends to port: it leaves from src to dst.
	// Others' packets to port are dropped when strict, else passed up.
	Forward(port uint16, from, src, dst netip.AddrPort, strict bool) error
	// Unforward passes port's packets up again.
	Unforward(port uint16) error
	// PortStats are port's counters since the port was opened.
	PortStats(port uint16) (bpf.PortStats, error)
	// Generation changes when the next hops Forward resolved may have
	// (routes, neighbours): the relay then forwards its entries again.
	Generation() uint64
}

// offloadEvery is how often the relay looks for streams to hand to the
// kernel, or to take back. A latch asks for a look at once (nudgeOffload),
// so a stream's first packets take the userspace path only until both of
// its peers have sent; a change of address waits for the tick.
const offloadEvery = 100 * time.Millisecond

// offloaded is what is installed in the kernel for one socket of one leg:
// packets from `from` leave from src to dst.
type offloaded struct {
	from, src, dst netip.AddrPort
}

// SetOffload hands eligible streams to o from now on, until Close. Call it
// before the first session, after SetPinholes: o relays only through open
// pinholes, and shutting them is what removes its entries.
func (r *Relay) SetOffload(o Offload) error {
	if r.pinholes == nil {
		return errors.New("media: SetOffload before SetPinholes")
	}
	r.offload = o
	r.offloadStop = make(chan struct{})
	r.offloadDone = make(chan struct{})
	r.offloadSoon = make(chan *Session, offloadSoonQueue)
	go r.offloader()
	return nil
}

// offloadSoonQueue bounds the sessions waiting for an early offload pass;
// past it a latch waits for the next tick (retryOffload).
const offloadSoonQueue = 1024

// nudgeOffload asks the offloader to look at s now rather than at its next
// tick: a peer just latched, so a direction may have become eligible. It
// never blocks (the caller relays packets).
func (r *Relay) nudgeOffload(s *Session) {
	if r.offloadSoon == nil {
		return
	}
	select {
	case r.offloadSoon <- s:
	default: // a burst of latches: the next tick
		r.retryOffload(s)
	}
}

func (r *Relay) offloader() {
	defer close(r.offloadDone)
	every := offloadEvery
	if r.offloadTick > 0 {
		every = r.offloadTick
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastGen, lastFull := r.offload.Generation(), time.Now()
	for {
		select {
		case <-r.offloadStop:
			return
		case s := <-r.offloadSoon:
			s.offload()
			continue
		case <-t.C:
		}
		// Every session when a next hop may have changed, and now and then
		// whatever happens; else only those waiting to try again. What
		// changes a stream otherwise (a latch, new addresses) nudges.
		gen := r.offload.Generation()
		full := gen != lastGen || time.Since(lastFull) >= offloadSweepEvery
		var sessions []*Session
		if full {
			r.mu.Lock()
			sessions = make([]*Session, 0, len(r.sessions))
			for s := range r.sessions {
				sessions = append(sessions, s)
			}
			r.mu.Unlock()
			lastGen, lastFull = gen, time.Now()
		}
		r.retryMu.Lock()
		if !full {
			for s := range r.retry {
				sessions = append(sessions, s)
			}
		}
		clear(r.retry)
		r.retryMu.Unlock()
		for _, s := range sessions {
			s.offload()
		}
	}
}

// offloadSweepEvery is how often the offloader looks at every session
// even when nothing asked it to: a safety net, cheap enough at any number
// of calls (a few hundred nanoseconds a session).
const offloadSweepEvery = 10 * time.Second

// retryOffload has the session looked at again at the next tick: the
// kernel could not take a stream yet.
func (r *Relay) retryOffload(s *Session) {
	r.retryMu.Lock()
	if r.retry == nil {
		r.retry = map[*Session]struct{}{}
	}
	r.retry[s] = struct{}{}
	r.retryMu.Unlock()
}

// stopOffloader ends the offloader; idempotent.
func (r *Relay) stopOffloader() {
	if r.offloadStop == nil {
		return
	}
	r.offloadStopOnce.Do(func() { close(r.offloadStop) })
	<-r.offloadDone
}

// offload brings the session's entries in the kernel in line with what its
// streams know. Holding s.mu keeps it from installing an entry for a port
// that Close is letting go (Close marks the session closed under s.mu
// first).
func (s *Session) offload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, st := range s.streams {
		for from := range st.legs {
			for k := range 2 {
				st.offloadSocket(Side(from), sockKind(k))
			}
		}
	}
}

// offloadSocket installs, changes or removes the kernel entry of socket k
// of the leg facing side from.
func (st *Stream) offloadSocket(from Side, k sockKind) {
	r := st.sess.relay
	in, out := &st.legs[from], &st.legs[from.Other()]
	want, ok := st.offloadable(in, out, k)
	cur := &st.kernel[from][k]
	port := uint16(in.rtpPort + int(k))
	gen := r.offload.Generation() // before Forward: a change meanwhile brings it back here
	if *cur != nil && ok && **cur == want && st.kernelGen[from][k] != gen {
		// A route or neighbour changed: resolve the next hop again.
		err := r.offload.Forward(port, want.from, want.src, want.dst, st.strict)
		if err == nil {
			st.kernelGen[from][k] = gen
			return
		}
		ok = false // back to userspace, and offered again below when it can be
	}
	if *cur != nil && (!ok || **cur != want) {
		if err := r.offload.Unforward(port); err != nil {
			r.log.Warn("take a stream back from the kernel", "port", port, "error", err)
			return
		}
		*cur = nil
	}
	if !ok || *cur != nil || st.kernelRefused[from][k] == want {
		return
	}
	err := r.offload.Forward(port, want.from, want.src, want.dst, st.strict)
	switch {
	case err == nil:
		*cur = &want
		st.kernelGen[from][k] = gen
		st.sess.hasKernel.Store(true)
		st.sess.log.Debug("relayed in the kernel", "side", from.String(), "socket", k.String(), "from", want.from, "src", want.src, "dst", want.dst)
	case errors.Is(err, ErrOffloadNotYet): // asked again at the next tick
		r.retryOffload(st.sess)
	default:
		// Not again for these addresses (no Ethernet next hop, say).
		st.kernelRefused[from][k] = want
		st.sess.log.Debug("not relayed in the kernel", "side", from.String(), "socket", k.String(), "error", err)
	}
}

// ErrOffloadNotYet is what an Offload's Forward wraps when it cannot
// forward yet but will (a next hop not yet resolved): the stream stays in
// userspace and the relay asks again.
var ErrOffloadNotYet = errors.New("not yet")

// offloadable says what the kernel should do for socket k of in: forward
// what in's peer sends to out's peer, once both addresses are certain
// (latched; in strict mode the signalled ones) and the relay's source
// address on out is known. Streams with rtcp-mux on either leg stay in
// userspace (RTCP would change ports).
func (st *Stream) offloadable(in, out *leg, k sockKind) (offloaded, bool) {
	ri, ro := in.remote.Load(), out.remote.Load()
	if !st.kernelOK.Load() || ri.mux || ro.mux || in.rtpPort == 0 || out.rtpPort == 0 {
		return offloaded{}, false
	}
	from, dst := ri.latched[k], ro.latched[k]
	if st.strict {
		from, dst = ri.signalled[k], ro.signalled[k]
	}
	src, ok := st.sess.relay.localAddr(out)
	if !from.IsValid() || !dst.IsValid() || !ok {
		return offloaded{}, false
	}
	// The kernel forwards IPv4 to IPv4 and IPv6 to IPv6, not across.
	v4 := dst.Addr().Unmap().Is4()
	if from.Addr().Unmap().Is4() != v4 || src.Unmap().Is4() != v4 {
		return offloaded{}, false
	}
	return offloaded{from: from, src: netip.AddrPortFrom(src, uint16(out.rtpPort+int(k))), dst: dst}, true
}

// localAddr is the address the relay sends to l's peer from: the one the
// peer sends to (steered transport), else the bind address.
func (r *Relay) localAddr(l *leg) (netip.Addr, bool) {
	if v := l.local.Load(); v != 0 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		return netip.AddrFrom4(a), true
	}
	if r.bindIP.IsValid() && !r.bindIP.IsUnspecified() {
		return r.bindIP, true
	}
	return netip.Addr{}, false
}

// kernelStats adds what the kernel forwarded for the stream to s: packets
// counted where they came in, bytes as UDP payload like the userspace path.
func (st *Stream) kernelStats(s *Stats) {
	o := st.sess.relay.offload
	if o == nil || !st.sess.hasKernel.Load() {
		return
	}
	for from := range st.legs {
		d := &s.AtoB
		if Side(from) == SideB {
			d = &s.BtoA
		}
		for k := range 2 {
			ps, err := o.PortStats(uint16(st.legs[from].rtpPort + k))
			if err != nil || ps.Forwarded == 0 {
				continue
			}
			headers := uint64(28) // IPv4 and UDP
			rem := st.legs[from].remote.Load()
			if peer := cmp.Or(rem.latched[k], rem.signalled[k]); peer.Addr().Unmap().Is6() {
				headers = 48 // IPv6 and UDP
			}
			payload := ps.ForwardedBytes - headers*ps.Forwarded
			if sockKind(k) == rtcpSock {
				d.RTCPPackets += ps.Forwarded
				d.RTCPBytes += payload
			} else {
				d.RTPPackets += ps.Forwarded
				d.RTPBytes += payload
			}
			d.Kernel += ps.Forwarded
		}
	}
}

// kernelLastSeen is when the kernel last forwarded a packet for one of the
// session's ports, or zero. Reading the counters costs a system call per
// port, and the reaper asks every second for every call; so a reading
// younger than half the media timeout is answered from the last one: the
// call cannot be silent for the whole timeout before the next real
// reading (the counters only move forward).
func (s *Session) kernelLastSeen() time.Time {
	o := s.relay.offload
	if o == nil || !s.hasKernel.Load() {
		return time.Time{}
	}
	now := time.Now()
	s.kernelMu.Lock()
	defer s.kernelMu.Unlock()
	if !s.kernelSeen.IsZero() && now.Sub(s.kernelSeen) < s.relay.timeout/2 {
		return s.kernelSeen
	}
	var last time.Duration
	for _, st := range s.Streams() {
		for i := range st.legs {
			for k := range 2 {
				// Forwarded packets only: the rest went up to userspace,
				// which counted them if it accepted them.
				if ps, err := o.PortStats(uint16(st.legs[i].rtpPort + k)); err == nil {
					last = max(last, ps.LastForwarded)
				}
			}
		}
	}
	if last == 0 {
		return time.Time{}
	}
	s.kernelSeen = now.Add(-(bpf.Monotonic() - last))
	return s.kernelSeen
}

// offloadState is the Relay's part.
type offloadState struct {
	offload         Offload
	offloadStop     chan struct{}
	offloadDone     chan struct{}
	offloadSoon     chan *Session // sessions a latch made worth a look
	offloadTick     time.Duration // tests: other than offloadEvery
	retryMu         sync.Mutex
	retry           map[*Session]struct{} // sessions to look at again at the next tick
	offloadStopOnce sync.Once
}
