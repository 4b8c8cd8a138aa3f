//go:build linux

package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"sbc/media/rawudp"
)

// newSteeredRelay is a relay that must steer: root only.
func newSteeredRelay(t *testing.T, mutate func(*Config)) *Relay {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	r := newTestRelay(t, func(c *Config) {
		c.Steering = SteeringOn
		if mutate != nil {
			mutate(c)
		}
	})
	if !r.Steered() {
		t.Fatal("Steered() = false with media.steering = on")
	}
	return r
}

// TestSteeredClosedPortsRefuse: a port of the range that belongs to no
// stream is not open: the sender gets ICMP port unreachable, as if nothing
// listened, before the stream exists and after it is closed.
func TestSteeredClosedPortsRefuse(t *testing.T) {
	r := newSteeredRelay(t, nil)
	s := r.NewSession("refuse")
	st, err := s.AddStream()
	if err != nil {
		t.Fatal(err)
	}
	open, _ := st.LocalPorts(SideA)
	closed := open + 2
	if b, _ := st.LocalPorts(SideB); b == closed {
		closed += 2
	}
	refused := func(port int) bool {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(loopback(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(rtpPacket(1, 10))
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 10))
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	if !refused(closed) {
		t.Errorf("port %d of no stream: not refused", closed)
	}
	if refused(open) {
		t.Errorf("port %d of a live stream: refused", open)
	}
	s.Close()
	if !refused(open) {
		t.Errorf("port %d after Session.Close: not refused", open)
	}
}

// TestSteeredFileDescriptors: a thousand streams open no descriptor each.
func TestSteeredFileDescriptors(t *testing.T) {
	r := newSteeredRelay(t, func(c *Config) { c.PortMax = c.PortMin + 4*1000 - 1 })
	before := openFiles(t)
	s := r.NewSession("many")
	t.Cleanup(s.Close)
	for range 1000 {
		if _, err := s.AddStream(); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFiles(t); after > before {
		t.Errorf("1000 streams took %d file descriptors, want none", after-before)
	}
}

func openFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSteeredRelayDoesNotAllocate drives a worker's batch directly with a
// datagram as recvmmsg leaves it: relaying it (lookup, checks, headers,
// checksum, sendmmsg, counting) allocates nothing.
func TestSteeredRelayDoesNotAllocate(t *testing.T) {
	r := newSteeredRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	w := r.tr.(*steered).workers[0]
	pkt := rtpPacket(1, 160)
	fake := func() { // what recvmmsg writes for one datagram from a to aPort
		copy(w.bufs[0][rawudp.HeaderLen:], pkt)
		w.msgs[0].Len = uint32(len(pkt))
		h := &w.msgs[0].Hdr
		h.Controllen = origDstSpace
		c := w.control(0)
		*(*uint64)(unsafe.Pointer(&c[0])) = uint64(unix.CmsgLen(unix.SizeofSockaddrInet4))
		*(*int32)(unsafe.Pointer(&c[8])) = unix.SOL_IP
		*(*int32)(unsafe.Pointer(&c[12])) = unix.IP_ORIGDSTADDR
		binary.BigEndian.PutUint16(c[18:], uint16(aPort))
		copy(c[20:24], []byte{127, 0, 0, 1})
		src := a.addr()
		w.names[0].Addr = src.Addr().As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&w.names[0].Port))[:], src.Port())
	}
	// The worker's goroutine shares these buffers; it stays parked in the
	// netpoller because nothing is sent to the relay in this test.
	const runs = 200
	if n := testing.AllocsPerRun(runs, func() { fake(); w.relay(1) }); n != 0 {
		t.Errorf("%v allocs per relayed datagram, want 0", n)
	}
	if got := st.Stats().AtoB.RTPPackets; got != runs+1 {
		t.Errorf("AtoB RTP packets = %d, want %d", got, runs+1)
	}
	b.expect(pkt, func() int { p, _ := st.LocalPorts(SideB); return p }())
}

// TestSteeringFallback: where steering cannot work (IPv6 here) "auto" falls
// back to one socket per port and says why; "on" refuses to start.
func TestSteeringFallback(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig()
	cfg.BindIP, cfg.Steering = "::1", SteeringAuto
	cfg.SetDefaults()
	r, err := NewRelay(cfg, slogText(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Steered() {
		t.Error("Steered() = true on an IPv6 address")
	}
	if !strings.Contains(logs.String(), "steering unavailable") || !strings.Contains(logs.String(), "IPv4 only") {
		t.Errorf("log does not say why steering is off:\n%s", logs.String())
	}
	cfg.Steering = SteeringOn
	if _, err := NewRelay(cfg, nil); err == nil || !strings.Contains(err.Error(), `media.steering = "on"`) {
		t.Errorf("NewRelay with steering on, IPv6: err = %v, want one naming media.steering", err)
	}
}

func TestParsePortList(t *testing.T) {
	got, err := parsePortList("1000,2000-2002,65535")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{1000, 2000, 2001, 2002, 65535} {
		if !got[p] {
			t.Errorf("port %d missing", p)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d ports, want 5", len(got))
	}
	if back := formatPortList(got); back != "1000,2000-2002,65535" {
		t.Errorf("formatPortList = %q, want the list back", back)
	}
	for _, bad := range []string{"x", "10-", "20-10", "1,,2"} {
		if _, err := parsePortList(bad); err == nil {
			t.Errorf("parsePortList(%q): no error", bad)
		}
	}
}

// TestSteeredReservesEphemeralOverlap: a range inside the kernel's
// ephemeral ports is reserved while the relay runs, so no other socket is
// given one of them, and given back at Close; other reserved ports stay.
func TestSteeredReservesEphemeralOverlap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	const lo, hi = 40000, 40099
	if n, err := ephemeralClash(lo, hi); err != nil || n != hi-lo+1 {
		t.Skipf("%d-%d is not wholly in this machine's unreserved ephemeral ports (%d, %v)", lo, hi, n, err)
	}
	// A long list of someone else's (past the 512 bytes os.ReadFile takes
	// from /proc at a time), which must survive.
	var others []int
	for p := 1100; len(others) < 300; p += 3 {
		others = append(others, p)
	}
	if err := editReserved(func(set map[int]bool) {
		for _, p := range others {
			set[p] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		editReserved(func(set map[int]bool) {
			for _, p := range others {
				delete(set, p)
			}
		})
	})

	var logs syncBuffer
	cfg := testConfig()
	cfg.PortMin, cfg.PortMax, cfg.Steering = lo, hi, SteeringOn
	cfg.SetDefaults()
	r, err := newRelay(cfg, slogText(&logs), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ephemeralClash(lo, hi); err != nil || n != 0 {
		t.Errorf("after start %d ports of %d-%d still unreserved (%v)", n, lo, hi, err)
	}
	if !strings.Contains(logs.String(), "media port range reserved") {
		t.Errorf("the reservation is not logged:\n%s", logs.String())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := ephemeralClash(lo, hi); n != hi-lo+1 {
		t.Errorf("after Close %d of %d ports unreserved, want all given back", n, hi-lo+1)
	}
	set, err := readReserved()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range others {
		if !set[p] {
			t.Fatalf("port %d, reserved by someone else, lost", p)
		}
	}
}

// TestQuiesceWaitsForBusyWorkers: quiesce returns only once a worker that
// was in a batch has finished it, and at once for idle workers.
func TestQuiesceWaitsForBusyWorkers(t *testing.T) {
	st := &steered{workers: []*worker{{}, {}}}
	st.workers[1].busy.Add(1) // in a batch
	done := make(chan struct{})
	go func() { st.quiesce(); close(done) }()
	select {
	case <-done:
		t.Fatal("quiesce returned while a worker was in a batch")
	case <-time.After(20 * time.Millisecond):
	}
	st.workers[1].busy.Add(1)
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("quiesce did not return after the batch ended")
	}
}

// TestSteeredWarnsOfAnotherProgram: a second steered relay in the network
// namespace says that the first one's program runs before it.
func TestSteeredWarnsOfAnotherProgram(t *testing.T) {
	newSteeredRelay(t, nil)
	var logs syncBuffer
	cfg := testConfig()
	cfg.PortMin, cfg.PortMax, cfg.Steering = testPortMin+500, testPortMin+599, SteeringOn
	cfg.SetDefaults()
	r, err := NewRelay(cfg, slogText(&logs))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !strings.Contains(logs.String(), "another sk_lookup program") {
		t.Errorf("no warning of the first relay's program; log:\n%s", logs.String())
	}
}

// TestSteeredSourceIsWhatThePeerSendsTo: listening on 0.0.0.0, each peer
// gets media from the address it sends to, even when the two peers use
// different local addresses (a public and a private side, say).
func TestSteeredSourceIsWhatThePeerSendsTo(t *testing.T) {
	r := newSteeredRelay(t, func(c *Config) { c.BindIP, c.PublicIP = "0.0.0.0", "127.0.0.1" })
	_, st := newSessionStream(t, r)
	a := newPeer(t)
	bConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bConn.Close() })
	b := &peer{t: t, conn: bConn}
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	bPort, _ := st.LocalPorts(SideB)
	bSide := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(bPort))

	p1, p2 := rtpPacket(1, 160), rtpPacket(2, 160)
	if _, err := bConn.WriteToUDPAddrPort(p1, bSide); err != nil {
		t.Fatal(err)
	}
	a.expect(p1, aPort) // from 127.0.0.1:aPort, where A sends
	a.sendTo(aPort, p2)
	got, src := b.recv()
	if !bytes.Equal(got, p2) || src != bSide {
		t.Fatalf("B got %x from %v; want %x from %v, where B sends", got, src, p2, bSide)
	}
}

// TestSteeredWorkersCapped: more CPUs than the socket map holds still steer.
func TestSteeredWorkersCapped(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(maxWorkers + 16))
	r := newSteeredRelay(t, nil)
	if n := len(r.tr.(*steered).workers); n != maxWorkers {
		t.Errorf("%d workers with GOMAXPROCS %d, want %d", n, maxWorkers+16, maxWorkers)
	}
}

// TestSteeredReservationHandedOver: a relay that exits without giving its
// reservation back (killed, or handing over) leaves it, marked, to the next
// relay of the range, which gives it back at Close.
func TestSteeredReservationHandedOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	const lo, hi = 40100, 40199
	if n, err := ephemeralClash(lo, hi); err != nil || n != hi-lo+1 {
		t.Skipf("%d-%d is not wholly in this machine's unreserved ephemeral ports (%d, %v)", lo, hi, n, err)
	}
	markers := t.TempDir()
	start := func() *Relay {
		t.Helper()
		cfg := testConfig()
		cfg.PortMin, cfg.PortMax, cfg.Steering = lo, hi, SteeringOn
		cfg.SetDefaults()
		r, err := newRelay(cfg, slogText(&syncBuffer{}), markers)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := start()
	first.unreserve = nil // killed: nothing given back
	first.Close()
	if n, _ := ephemeralClash(lo, hi); n != 0 {
		t.Fatalf("%d ports unreserved after the first relay died; want the range kept", n)
	}
	second := start()
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := ephemeralClash(lo, hi); n != hi-lo+1 {
		t.Errorf("after the second relay's Close %d of %d ports unreserved; want the first one's reservation given back too", n, hi-lo+1)
	}
	if reservationLeft(markers, lo, hi) {
		t.Error("the marker outlived the reservation")
	}
}
