package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"sbc/bpf"
)

// A restarted daemon takes over the calls a previous run left: it opens
// their streams on the same ports (AdoptStream) while the kernel, whose
// maps outlived the previous run, may still forward some of their packets
// (Inherit). Ports a previous run left open that no call takes are shut
// (ShutInherited).

// Inherit hands the relay the kernel's entries a previous run left (from
// the firewall's pinned maps), by port. Call it after SetOffload and before
// the first session.
func (r *Relay) Inherit(entries map[uint16]bpf.Pinhole) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inherited = entries
}

// ShutInherited shuts the pinholes a previous run left that no adopted
// stream took: their calls are gone. It returns how many ports it shut.
func (r *Relay) ShutInherited() int {
	r.mu.Lock()
	left := r.inherited
	r.inherited = nil
	r.mu.Unlock()
	n := 0
	for port := range left {
		if r.pinholes == nil {
			break
		}
		if err := r.pinholes.Shut(port); err != nil {
			r.log.Warn("shut a port a previous run left open", "port", port, "error", err)
			continue
		}
		n++
	}
	return n
}

// inheritedEntry returns and forgets the entry a previous run left for port.
func (r *Relay) inheritedEntry(port uint16) (bpf.Pinhole, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.inherited[port]
	delete(r.inherited, port)
	return e, ok
}

// AdoptStream opens a stream on ports a previous run gave it (the RTP port
// facing each side) with the peers signalling agreed on. Where the kernel
// still forwards one of its directions, the latched addresses are read
// back from the entry and the entry is kept: its packets never stop.
// legs, where not nil, is what each leg negotiated (SetMedia), in force
// before the first packet is read.
func (s *Session) AdoptStream(ports [2]int, peers [2]Peer, legs [2]*LegMedia) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.relay
	st := newStream(s)
	for i, m := range legs {
		if m == nil {
			continue
		}
		if err := st.SetMedia(Side(i), *m); err != nil {
			return nil, err
		}
	}
	st.holes.Store(true) // its pinholes are handled below, inherited ones kept
	fail := func(err error) (*Stream, error) {
		s.closeStreams([]*Stream{st})
		return nil, err
	}
	for i := range st.legs {
		if !r.ports.take(ports[i]) {
			return fail(fmt.Errorf("adopt media port %d: %w", ports[i], errPortTaken))
		}
		if err := r.tr.open(st, &st.legs[i], &st.wg, ports[i]); err != nil {
			if st.legs[i].rtpPort == 0 {
				r.ports.free(ports[i])
			}
			return fail(err)
		}
	}
	for i := range st.legs {
		st.SetRemote(Side(i), peers[i])
	}
	for from := range st.legs {
		in, out := &st.legs[from], &st.legs[Side(from).Other()]
		for k := range 2 {
			port := uint16(in.rtpPort + k)
			e, ok := r.inheritedEntry(port)
			if !ok {
				if err := r.openPinhole(port); err != nil {
					return fail(err)
				}
				continue
			}
			if e.Forward == nil || !e.ForwardFrom.IsValid() || r.offload == nil {
				continue // open; the userspace path relays it
			}
			src, dst := e.Forward.From, e.Forward.To
			in.adoptLatch(sockKind(k), e.ForwardFrom)
			out.adoptLatch(sockKind(k), dst)
			if src.Addr().Is4() {
				a := src.Addr().As4()
				out.local.Store(binary.BigEndian.Uint32(a[:]))
			}
			st.kernel[from][k] = &offloaded{from: e.ForwardFrom, src: src, dst: dst}
			// Not a generation the firewall hands out: the next offload
			// round resolves the next hop again, in case it changed while
			// no daemon watched.
			st.kernelGen[from][k] = ^uint64(0)
			s.hasKernel.Store(true)
		}
	}
	s.streams = append(s.streams, st)
	return st, nil
}

// errPortTaken: a port pair to adopt is already held.
var errPortTaken = errors.New("already held by another stream, or outside the range")

// adoptLatch records src as latched on socket k, as the kernel entry a
// previous run installed says.
func (l *leg) adoptLatch(k sockKind, src netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := *l.remote.Load()
	next.latched[k] = src
	l.remote.Store(&next)
}
