package media

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pion/srtp/v3"
)

// Side names a leg of the call.
type Side int

const (
	SideA Side = iota // the caller's leg
	SideB             // the callee's leg
)

func (s Side) String() string {
	switch s {
	case SideA:
		return "A"
	case SideB:
		return "B"
	}
	return "Side(" + strconv.Itoa(int(s)) + ")"
}

// Other is the side across the call.
func (s Side) Other() Side { return 1 - s }

// Peer is what signalling says about one side's media endpoint.
type Peer struct {
	RTP  netip.AddrPort // signalled RTP address; zero value = unknown yet
	RTCP netip.AddrPort // signalled RTCP address (a=rtcp); zero = RTP port+1
	Mux  bool           // rtcp-mux (RFC 5761): RTCP travels on the RTP port both ways
}

// sockKind indexes the two sockets (and addresses) of a leg.
type sockKind int

const (
	rtpSock sockKind = iota
	rtcpSock
)

func (k sockKind) String() string {
	if k == rtpSock {
		return "rtp"
	}
	return "rtcp"
}

const (
	minRTP = 12 // fixed RTP header (RFC 3550 §5.1)
	// minRTCP is an RR with no report blocks (RFC 3550 §6.4.2): the smallest
	// RTCP packet with an SSRC, sent alone under reduced-size RTCP (RFC 5506).
	minRTCP = 8
)

// Stream relays one media line (m=) of a call. It holds two port pairs: one
// facing side A's peer and one facing side B's peer. A packet from a side's
// peer leaves by the other side's socket, so each peer sees media come from
// the very port it sends to (symmetric RTP, RFC 4961). Safe for concurrent
// use.
type Stream struct {
	sess   *Session
	strict bool
	legs   [2]leg         // by Side
	wg     sync.WaitGroup // per-port transport: the legs' readers
	// kernel is what the kernel relays for socket k of the leg facing a
	// side (Offload), nil when nothing; guarded by sess.mu.
	kernel [2][2]*offloaded
	// kernelRefused is what the kernel could not take for that socket; it
	// is not asked again until the addresses change. Guarded by sess.mu.
	kernelRefused [2][2]offloaded
	// kernelGen is the Offload generation each entry was installed under.
	kernelGen [2][2]uint64
	// holes says the ports' pinholes are open (openPinholes).
	holes atomic.Bool

	// terminated: SetMedia was called, the relay terminates the stream's
	// media (SRTP, codecs) and packets go through the legs' directions.
	// Until then they pass as they came.
	terminated atomic.Bool
	// kernelOK: the packets may leave as they came in both directions, so
	// the kernel may relay them (not terminated, or nothing to do).
	kernelOK atomic.Bool
	mediaMu  sync.Mutex   // serialises SetMedia
	media    [2]*LegMedia // by Side; nil until negotiated
}

// endpoint is what a steered port belongs to: socket k of the leg facing
// side of stream st.
type endpoint struct {
	st   *Stream
	side Side
	kind sockKind
}

// leg is the SBC's end facing one side's peer.
type leg struct {
	side    Side
	rtpPort int         // 0 until the transport opened the pair
	sock    [2]*socket  // by sockKind; per-port transport only
	ep      [2]endpoint // by sockKind; steered transport only
	in      counters    // packets received from this side's peer
	// Steered transport only, IPv4 addresses as big-endian uint32, 0 =
	// unknown: local is the address this side's peer sends to, the one to
	// send it media from; routeSrc is what the kernel would pick to reach
	// its signalled address, until the peer has sent anything.
	local, routeSrc atomic.Uint32

	// remote is read on every packet without locking; mu serialises the
	// rare writers (latching, SetRemote), which replace it whole.
	remote atomic.Pointer[remote]
	mu     sync.Mutex

	// dir is the state of the packets from this side's peer (SetMedia).
	dir direction
	// keys are this leg's SRTP, rx and tx their contexts: rx decrypts
	// what the peer sends (used by dir), tx encrypts what goes to it (used
	// by the other leg's dir). Guarded by the stream's mediaMu.
	keys   *SRTP
	rx, tx *srtp.Context
	// secure: the peer sends SRTP; a source is latched only once one of
	// its packets authenticates.
	secure atomic.Bool
}

// remote is an immutable snapshot of what is known of one side's peer.
type remote struct {
	mux       bool
	signalled [2]netip.AddrPort // by sockKind; RTCP defaulted to RTP port+1
	latched   [2]netip.AddrPort // learnt source per socket (symmetric mode)
}

// dst is where media for this peer goes on socket k: the latched source
// once known, the signalled address until then.
func (r *remote) dst(k sockKind) netip.AddrPort {
	if r.latched[k].IsValid() {
		return r.latched[k]
	}
	return r.signalled[k]
}

func newStream(s *Session) *Stream {
	st := &Stream{sess: s, strict: s.relay.strict}
	st.kernelOK.Store(true)
	for i := range st.legs {
		st.legs[i].side = Side(i)
		st.legs[i].remote.Store(&remote{})
	}
	return st
}

// LocalPorts returns the ports the peer on side must send to.
func (st *Stream) LocalPorts(side Side) (rtp, rtcp int) {
	p := st.legs[side].rtpPort
	return p, p + 1
}

// SetRemote records the signalled endpoint of side's peer; call it again on
// every offer/answer. When the RTP or RTCP address changes, what was latched
// for that side is forgotten so the new address takes effect; the same
// address again (a session refresh) keeps it, so a NATed peer's media does
// not go astray until its next packet.
func (st *Stream) SetRemote(side Side, p Peer) {
	next := remote{mux: p.Mux}
	rtp := usable(p.RTP)
	rtcp := usable(p.RTCP)
	if !rtcp.IsValid() && rtp.IsValid() && rtp.Port() < 65535 {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	next.signalled = [2]netip.AddrPort{rtp, rtcp}

	l := &st.legs[side]
	l.mu.Lock()
	cur := l.remote.Load()
	keep := cur.signalled == next.signalled
	if keep {
		next.latched = cur.latched
	}
	l.remote.Store(&next)
	l.mu.Unlock()
	if !keep && rtp.IsValid() {
		st.sess.relay.tr.remoteChanged(l, rtp)
	}
	st.openPinholes()
	st.sess.relay.nudgeOffload(st.sess) // what the kernel may relay changed
	st.sess.log.Debug("remote set", "side", side.String(), "rtp", rtp, "rtcp", rtcp, "mux", p.Mux, "relatch", !keep)
}

// openPinholes opens the stream's ports in the kernel's filter once both
// sides' peers are signalled: the answer (or a 183 with SDP, early media)
// fixes the call's endpoints, and until then nothing may come in. They
// stay open until the stream closes.
func (st *Stream) openPinholes() {
	if st.holes.Load() {
		return
	}
	for i := range st.legs {
		if !st.legs[i].remote.Load().signalled[rtpSock].IsValid() {
			return
		}
	}
	s := st.sess
	s.mu.Lock() // against Close, which shuts them after setting closed
	defer s.mu.Unlock()
	if s.closed || !st.holes.CompareAndSwap(false, true) {
		return
	}
	for i := range st.legs {
		if err := s.relay.openPinholes(&st.legs[i]); err != nil {
			s.log.Error("media ports stay closed in the kernel: the call's media is dropped", "error", err)
		}
	}
}

// usable returns a as a destination, or the zero value when it cannot be one:
// unset, port 0, or an unspecified address (the old c=0.0.0.0 hold).
func usable(a netip.AddrPort) netip.AddrPort {
	if !a.IsValid() || a.Port() == 0 || a.Addr().IsUnspecified() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Stats returns the counters of both directions.
func (st *Stream) Stats() Stats {
	s := Stats{AtoB: st.legs[SideA].in.snapshot(), BtoA: st.legs[SideB].in.snapshot()}
	s.AtoB.Quality = st.legs[SideA].dir.quality()
	s.BtoA.Quality = st.legs[SideB].dir.quality()
	st.kernelStats(&s)
	return s
}

// forwarding is where a relayed datagram goes, and what to count once it
// has gone.
type forwarding struct {
	b []byte // what to send: the datagram, transformed in place

	out      *leg    // the leg it leaves by
	sock     *socket // per-port transport: the socket to send from
	port     int     // the local port it leaves from
	dst      netip.AddrPort
	counters *counters // of the direction it came in
	rtcp     bool
}

// forward decides the fate of one datagram that arrived on socket k of the
// leg facing side from at now (Relay.clock): where it goes, or false when it
// is dropped (and counted so). It is the hot path of both transports: it does not allocate
// (except on the latch path, once per socket) and b is not kept.
func (st *Stream) forward(from Side, k sockKind, b []byte, src netip.AddrPort, now int64) (forwarding, bool) {
	in, out := &st.legs[from], &st.legs[from.Other()]
	rtcp, ok := classify(k, b)
	var latchLater bool
	if ok {
		ok, latchLater = in.accept(st, k, src)
	}
	if !ok {
		in.in.dropped.Add(1)
		return forwarding{}, false
	}
	st.sess.touch(now)
	ko, dst := out.route(rtcp)
	if !dst.IsValid() {
		in.in.dropped.Add(1)
		return forwarding{}, false
	}
	if st.terminated.Load() {
		var ok bool
		if b, ok = st.transform(in, out, b, rtcp, now); !ok {
			in.in.dropped.Add(1)
			return forwarding{}, false
		}
	}
	if latchLater && !in.latch(st, k, src) {
		in.in.dropped.Add(1) // another source authenticated first
		return forwarding{}, false
	}
	return forwarding{b: b, out: out, sock: out.sock[ko], port: out.rtpPort + int(ko), dst: dst, counters: &in.in, rtcp: rtcp}, true
}

// receive relays one datagram on the per-port transport: forward, send from
// the other leg's socket, count.
func (st *Stream) receive(from Side, k sockKind, b []byte, src netip.AddrPort) {
	f, ok := st.forward(from, k, b, src, st.sess.relay.clock())
	if !ok {
		return
	}
	if f.sock.writeTo(f.b, f.dst) != nil {
		f.counters.dropped.Add(1)
		return
	}
	f.counters.forwarded(f.rtcp, len(f.b))
}

// classify checks b no further than needed to relay it and tells RTCP from
// RTP. RFC 5761 §4: a second byte in 192..223 is an RTCP packet type, since
// RTP payload types 64..95 are not used with rtcp-mux. So RTCP is found on
// either socket, but RTP only on the RTP socket.
func classify(k sockKind, b []byte) (rtcp, ok bool) {
	if len(b) < minRTCP || len(b) > maxPacket || b[0]>>6 != 2 {
		return false, false
	}
	if b[1] >= 192 && b[1] <= 223 {
		return true, true
	}
	return false, k == rtpSock && len(b) >= minRTP
}

// accept decides whether src may send on socket k of this leg. Strict mode
// takes only the signalled address. Symmetric mode takes the first source
// and latches it, then only that source until SetRemote changes the address.
//
// An SRTP peer's source is latched only once its packet has authenticated
// (latchLater: the caller latches after the transform): else one forged
// packet from anywhere would take the stream over.
func (l *leg) accept(st *Stream, k sockKind, src netip.AddrPort) (ok, latchLater bool) {
	r := l.remote.Load()
	if st.strict {
		return src == r.signalled[k], false // a zero address never equals a source
	}
	if r.latched[k].IsValid() {
		return src == r.latched[k], false
	}
	if l.secure.Load() {
		return true, true
	}
	return l.latch(st, k, src), false
}

// latch records src as the peer's address on socket k unless another
// reader (or SetRemote) got there first.
func (l *leg) latch(st *Stream, k sockKind, src netip.AddrPort) bool {
	l.mu.Lock()
	cur := l.remote.Load()
	if cur.latched[k].IsValid() {
		l.mu.Unlock()
		return src == cur.latched[k]
	}
	next := *cur
	next.latched[k] = src
	l.remote.Store(&next)
	l.mu.Unlock()
	st.sess.relay.nudgeOffload(st.sess)
	st.sess.log.Debug("latched", "side", l.side.String(), "socket", k.String(), "source", src, "signalled", cur.signalled[k])
	return true
}

// route picks the socket and address for a packet to this leg's peer. RTCP
// for a peer using rtcp-mux goes on its RTP port (RFC 5761 §5.1).
func (l *leg) route(rtcp bool) (sockKind, netip.AddrPort) {
	r := l.remote.Load()
	k := rtpSock
	if rtcp && !r.mux {
		k = rtcpSock
	}
	return k, r.dst(k)
}

// freePorts returns the stream's pairs to a; call once no reader or worker
// can reach the stream any more.
func (st *Stream) freePorts(a *portAllocator) {
	for i := range st.legs {
		if p := st.legs[i].rtpPort; p != 0 {
			a.free(p)
		}
	}
}
