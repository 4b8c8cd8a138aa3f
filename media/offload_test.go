package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sbc/bpf"
)

// fakeOffload records what the relay hands the kernel.
type fakeOffload struct {
	mu      sync.Mutex
	entries map[uint16]offloaded
	stats   map[uint16]bpf.PortStats
	calls   int
	reads   int    // PortStats calls
	refuse  bool   // Forward fails for good
	gen     uint64 // Generation
}

func (f *fakeOffload) Generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

func (f *fakeOffload) Forward(port uint16, from, src, dst netip.AddrPort, strict bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.refuse {
		return errors.New("no Ethernet next hop")
	}
	f.entries[port] = offloaded{from: from, src: src, dst: dst}
	return nil
}

func (f *fakeOffload) Unforward(port uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entries, port)
	return nil
}

func (f *fakeOffload) PortStats(port uint16) (bpf.PortStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.stats[port], nil
}

func (f *fakeOffload) entry(port int) (offloaded, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[uint16(port)]
	return e, ok
}

func TestOffloadFollowsLatching(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		fo := &fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}
		if err := r.SetOffload(fo); err == nil {
			t.Fatal("SetOffload without pinholes succeeded")
		}
		r.SetPinholes(&pinholeLog{open: map[uint16]bool{}})
		if err := r.SetOffload(fo); err != nil {
			t.Fatal(err)
		}
		s := r.NewSession("call-1")
		st, err := s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		a, b := newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		st.SetRemote(SideB, Peer{RTP: b.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)

		// Only A has sent: B's source is not certain yet, nothing goes down.
		a.sendTo(aPort, rtpPacket(1, 160))
		b.recv()
		s.offload()
		if _, ok := fo.entry(aPort); ok {
			t.Fatal("handed to the kernel before the far peer latched")
		}
		// Both have: each direction's RTP goes down, from the relay's far port.
		b.sendTo(bPort, rtpPacket(1, 160))
		a.recv()
		waitFor(t, "both RTP directions in the kernel", func() bool {
			_, ok1 := fo.entry(aPort)
			_, ok2 := fo.entry(bPort)
			return ok1 && ok2
		})
		e, _ := fo.entry(aPort)
		if e.from != a.addr() || e.dst != b.addr() || e.src != netip.AddrPortFrom(r.bindIP, uint16(bPort)) {
			t.Errorf("A's port forwards %+v; want from %v, out of %v:%d to %v", e, a.addr(), r.bindIP, bPort, b.addr())
		}
		if _, ok := fo.entry(aPort + 1); ok {
			t.Error("RTCP handed down before any RTCP was latched")
		}

		// What the kernel relayed shows in the stats, counted where it came
		// in (once the worker has counted A's packet, which it may do after
		// sending it on).
		waitFor(t, "A's packet counted", func() bool { return s.Stats().AtoB.RTPPackets == 1 })
		fo.mu.Lock()
		fo.stats[uint16(aPort)] = bpf.PortStats{Forwarded: 10, ForwardedBytes: 10 * (28 + 172)}
		fo.mu.Unlock()
		if got := s.Stats().AtoB; got.RTPPackets != 11 || got.Kernel != 10 || got.RTPBytes != 11*172 {
			t.Errorf("A to B stats %+v; want 11 RTP packets of 172 bytes, 10 by the kernel", got)
		}

		// A route or neighbour changed: both directions are forwarded again
		// (the next hops resolved anew), and stay in the kernel.
		fo.mu.Lock()
		before := fo.calls
		fo.gen++
		fo.mu.Unlock()
		s.offload()
		s.offload()
		fo.mu.Lock()
		again := fo.calls - before
		fo.mu.Unlock()
		if _, ok := fo.entry(aPort); !ok || again != 2 {
			t.Errorf("after a next-hop change: %d Forward calls, entry kept %v; want 2 (one per direction, once), kept", again, ok)
		}

		// A new address for B (a re-INVITE): its direction comes back up.
		st.SetRemote(SideB, Peer{RTP: netip.AddrPortFrom(b.addr().Addr(), b.addr().Port()+100)})
		s.offload()
		if _, ok := fo.entry(aPort); ok {
			t.Error("A's port still forwarded to B's old address after SetRemote")
		}

		// After Close nothing goes down again.
		s.Close()
		before = fo.calls
		s.offload()
		if fo.calls != before {
			t.Error("Forward after the session closed")
		}
	})
}

// sharedFake is one kernel map behind both interfaces, as in package
// firewall: Shut removes a port's entry, forwarding or not.
type sharedFake struct{ *fakeOffload }

func (f sharedFake) Open(port uint16) error { return nil }
func (f sharedFake) Shut(port uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entries, port)
	return nil
}

// TestOffloadNeverOutlivesItsCall closes calls while the offloader is
// handing their streams down: no entry may survive its call.
func TestOffloadNeverOutlivesItsCall(t *testing.T) {
	r := newTestRelay(t, nil)
	fo := sharedFake{&fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}}
	r.SetPinholes(fo)
	if err := r.SetOffload(fo); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		s := r.NewSession(fmt.Sprintf("call-%d", round))
		st, err := s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		a, b := newPeer(t), newPeer(t)
		st.SetRemote(SideA, Peer{RTP: a.addr()})
		st.SetRemote(SideB, Peer{RTP: b.addr()})
		aPort, _ := st.LocalPorts(SideA)
		bPort, _ := st.LocalPorts(SideB)
		a.sendTo(aPort, rtpPacket(1, 160))
		b.recv()
		b.sendTo(bPort, rtpPacket(1, 160))
		a.recv()
		// Close at a different moment of the offloader's tick each round.
		time.Sleep(time.Duration(round) * offloadEvery / 10)
		s.Close()
	}
	time.Sleep(2 * offloadEvery) // a tick that would install a stale entry
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if len(fo.entries) != 0 || fo.calls == 0 {
		t.Errorf("%d entries outlived their calls (after %d Forward calls): %v", len(fo.entries), fo.calls, fo.entries)
	}
}

// TestOffloadRefusedIsNotRetried: a stream the kernel cannot take is not
// offered again every tick, only when its addresses change.
func TestOffloadRefusedIsNotRetried(t *testing.T) {
	r := newTestRelay(t, nil)
	fo := &fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}, refuse: true}
	r.SetPinholes(&pinholeLog{open: map[uint16]bool{}})
	if err := r.SetOffload(fo); err != nil {
		t.Fatal(err)
	}
	s := r.NewSession("call-1")
	st, err := s.AddStream()
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPeer(t), newPeer(t)
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	bPort, _ := st.LocalPorts(SideB)
	a.sendTo(aPort, rtpPacket(1, 160))
	b.recv()
	b.sendTo(bPort, rtpPacket(1, 160))
	a.recv()
	for range 3 {
		s.offload()
	}
	fo.mu.Lock()
	calls := fo.calls
	fo.mu.Unlock()
	if calls != 2 { // one per RTP direction
		t.Errorf("%d Forward calls after 3 rounds; want 2, one per direction, not retried", calls)
	}
	s.Close()
}

// TestOffloadAtLatch: a latch hands the stream down at once, not at the
// next tick (here an hour away).
func TestOffloadAtLatch(t *testing.T) {
	r := newTestRelay(t, nil)
	r.offloadTick = time.Hour
	fo := &fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}
	r.SetPinholes(&pinholeLog{open: map[uint16]bool{}})
	if err := r.SetOffload(fo); err != nil {
		t.Fatal(err)
	}
	s := r.NewSession("call-1")
	st, err := s.AddStream()
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPeer(t), newPeer(t)
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	bPort, _ := st.LocalPorts(SideB)
	a.sendTo(aPort, rtpPacket(1, 160))
	b.recv()
	b.sendTo(bPort, rtpPacket(1, 160))
	a.recv()
	waitFor(t, "both RTP directions in the kernel without a tick", func() bool {
		_, ok1 := fo.entry(aPort)
		_, ok2 := fo.entry(bPort)
		return ok1 && ok2
	})
	s.Close()
}

// TestKernelLastSeenReadsSparingly: the reaper's question (is the call
// silent?) reads the kernel's counters only when the last reading is older
// than half the media timeout.
func TestKernelLastSeenReadsSparingly(t *testing.T) {
	r := newTestRelay(t, nil) // media timeout 1 min
	fo := &fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}
	r.SetPinholes(&pinholeLog{open: map[uint16]bool{}})
	if err := r.SetOffload(fo); err != nil {
		t.Fatal(err)
	}
	s := r.NewSession("call-1")
	st, err := s.AddStream()
	if err != nil {
		t.Fatal(err)
	}
	aPort, _ := st.LocalPorts(SideA)
	fo.mu.Lock()
	fo.stats[uint16(aPort)] = bpf.PortStats{Forwarded: 1, LastForwarded: bpf.Monotonic() - time.Second}
	fo.mu.Unlock()
	s.hasKernel.Store(true)
	reads := func() int {
		fo.mu.Lock()
		defer fo.mu.Unlock()
		return fo.reads
	}
	first := s.kernelLastSeen()
	if n := reads(); n != 4 {
		t.Fatalf("%d counter reads for a stream's 4 ports, want 4", n)
	}
	if d := time.Since(first); d < time.Second-50*time.Millisecond || d > 2*time.Second {
		t.Errorf("last activity %v ago, want the kernel's, 1 s ago", d)
	}
	s.LastActivity()
	if n := reads(); n != 4 {
		t.Errorf("%d counter reads after a second question, want still 4", n)
	}
	s.kernelMu.Lock()
	s.kernelSeen = s.kernelSeen.Add(-31 * time.Second) // as if the reading were old
	s.kernelMu.Unlock()
	s.LastActivity()
	if n := reads(); n != 8 {
		t.Errorf("%d counter reads once the reading is older than half the timeout, want 8", n)
	}
	s.Close()
}

// TestOffloadIPv6: an IPv6 stream is handed to the kernel like an IPv4
// one, from the relay's IPv6 address; its kernel bytes count IPv6
// headers. A leg of the other family keeps the stream in userspace.
func TestOffloadIPv6(t *testing.T) {
	r := newTestRelay(t, func(c *Config) { c.BindIP = "::1" })
	fo := &fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}
	r.SetPinholes(&pinholeLog{open: map[uint16]bool{}})
	if err := r.SetOffload(fo); err != nil {
		t.Fatal(err)
	}
	peer6 := func() *net.UDPConn {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatalf("IPv6 loopback: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := peer6(), peer6()
	addr := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	s := r.NewSession("v6")
	st, err := s.AddStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetRemote(SideA, Peer{RTP: addr(a)})
	st.SetRemote(SideB, Peer{RTP: addr(b)})
	aPort, _ := st.LocalPorts(SideA)
	bPort, _ := st.LocalPorts(SideB)
	relay := func(port int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv6loopback, Port: port} }
	buf := make([]byte, 2048)
	a.WriteToUDP(rtpPacket(1, 172), relay(aPort))
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := b.Read(buf); err != nil {
		t.Fatalf("B got nothing: %v", err)
	}
	b.WriteToUDP(rtpPacket(1, 172), relay(bPort))
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := a.Read(buf); err != nil {
		t.Fatalf("A got nothing: %v", err)
	}
	waitFor(t, "both directions in the kernel", func() bool {
		_, ok1 := fo.entry(aPort)
		_, ok2 := fo.entry(bPort)
		return ok1 && ok2
	})
	e, _ := fo.entry(aPort)
	if want := (offloaded{from: addr(a), src: netip.AddrPortFrom(netip.IPv6Loopback(), uint16(bPort)), dst: addr(b)}); e != want {
		t.Errorf("A's port forwards %+v, want %+v", e, want)
	}
	waitFor(t, "A's packet counted", func() bool { return s.Stats().AtoB.RTPPackets == 1 })
	fo.mu.Lock()
	fo.stats[uint16(aPort)] = bpf.PortStats{Forwarded: 10, ForwardedBytes: 10 * (48 + 184)}
	fo.mu.Unlock()
	if got := s.Stats().AtoB; got.RTPPackets != 11 || got.RTPBytes != 11*184 {
		t.Errorf("A to B stats %+v; want 11 RTP packets of 184 bytes", got)
	}

	// B moves to an IPv4 address: its direction leaves the kernel.
	st.SetRemote(SideB, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:9")})
	s.offload()
	if e, ok := fo.entry(aPort); ok && e.dst.Addr().Is4() {
		t.Errorf("forwarding IPv6 to IPv4 in the kernel: %+v", e)
	}
}
