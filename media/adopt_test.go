package media

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"sbc/bpf"
)

// TestAllocatorTake checks take against a model: a taken pair is never
// handed out until freed, every other pair still is, once.
func TestAllocatorTake(t *testing.T) {
	a := newPortAllocator(20000, 20199) // 100 pairs
	held := map[int]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		port := 20000 + 2*rng.IntN(100)
		switch rng.IntN(3) {
		case 0:
			if got := a.take(port); got == held[port] {
				t.Fatalf("take(%d) = %v with the pair held %v", port, got, held[port])
			}
			held[port] = true
		case 1:
			if p, ok := a.alloc(); ok {
				if held[p] {
					t.Fatalf("alloc handed out %d, which is held", p)
				}
				held[p] = true
			} else if countTrue(held) != 100 {
				t.Fatalf("alloc found nothing with %d pairs held", countTrue(held))
			}
		case 2:
			if got := a.free(port); got != held[port] {
				t.Fatalf("free(%d) = %v with the pair held %v", port, got, held[port])
			}
			delete(held, port)
		}
		if a.freePairs() != 100-countTrue(held) {
			t.Fatalf("freePairs = %d with %d held", a.freePairs(), countTrue(held))
		}
	}
	if a.take(20001) || a.take(20200) || a.take(19998) {
		t.Error("take of an odd or out-of-range port succeeded")
	}
}

func countTrue(m map[int]bool) (n int) {
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// TestAdoptStream takes over a stream a previous run left, half of it
// still forwarded by the kernel.
func TestAdoptStream(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		fo := sharedFake{&fakeOffload{entries: map[uint16]offloaded{}, stats: map[uint16]bpf.PortStats{}}}
		opened := &pinholeLog{open: map[uint16]bool{}}
		r.SetPinholes(kernelPinholes{opened, fo})
		if err := r.SetOffload(fo); err != nil {
			t.Fatal(err)
		}
		a, b := newPeer(t), newPeer(t)
		const aPort, bPort, gone = testPortMin + 100, testPortMin + 200, testPortMin + 300
		bind := netip.MustParseAddr("127.0.0.1")
		// A to B in the kernel; B to A went up to userspace; a port of a
		// call that is gone.
		aToB := offloaded{from: a.addr(), src: netip.AddrPortFrom(bind, bPort), dst: b.addr()}
		fo.entries[aPort] = aToB
		fo.stats[aPort] = bpf.PortStats{Forwarded: 50, ForwardedBytes: 50 * (28 + 172)}
		r.Inherit(map[uint16]bpf.Pinhole{
			aPort:     {ForwardFrom: aToB.from, Forward: &bpf.Forward{From: aToB.src, To: aToB.dst}},
			bPort:     {},
			aPort + 1: {},
			gone:      {},
		})

		s := r.NewSession("adopted")
		st, err := s.AdoptStream([2]int{aPort, bPort}, [2]Peer{{RTP: a.addr()}, {RTP: b.addr()}}, [2]*LegMedia{})
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := st.LocalPorts(SideB); p != bPort {
			t.Fatalf("adopted B port %d, want %d", p, bPort)
		}
		// Only the ports without an entry were opened: the others are open.
		if got, want := opened.ports(), []uint16{bPort + 1}; !slices.Equal(got, want) {
			t.Errorf("opened %v, want %v", got, want)
		}
		// The kernel's counters are the call's from the start.
		if got := s.Stats().AtoB; got.Kernel != 50 || got.RTPPackets != 50 {
			t.Errorf("A to B stats %+v; want the kernel's 50 packets", got)
		}
		// B to A runs in userspace, to the address A latched in the kernel.
		b.sendTo(bPort, rtpPacket(7, 160))
		a.expect(rtpPacket(7, 160), aPort)
		// The kernel entry stays as it was, refreshed once for its next hop.
		s.offload()
		if e, ok := fo.entry(aPort); !ok || e != aToB {
			t.Errorf("A's kernel entry %+v (present %v), want %+v kept", e, ok, aToB)
		}
		// The port of no call is shut; the adopted ones are not.
		if n := r.ShutInherited(); n != 1 {
			t.Errorf("ShutInherited shut %d ports, want 1", n)
		}
		// The ports are held: a second adoption of them fails, and a new
		// stream gets others.
		if _, err := r.NewSession("twice").AdoptStream([2]int{aPort, bPort + 2}, [2]Peer{}, [2]*LegMedia{}); !errors.Is(err, errPortTaken) {
			t.Errorf("adopting a held port: %v, want errPortTaken", err)
		}
		s.Close()
		if _, ok := fo.entry(aPort); ok {
			t.Error("the kernel entry outlived the adopted call")
		}
	})
}

// kernelPinholes logs what is opened and shuts ports in the fake kernel
// map too.
type kernelPinholes struct {
	log    *pinholeLog
	kernel sharedFake
}

func (k kernelPinholes) Open(port uint16) error { return k.log.Open(port) }
func (k kernelPinholes) Shut(port uint16) error {
	k.log.Shut(port)
	return k.kernel.Shut(port)
}

// TestAdoptStreamPortHeldElsewhere: a port a previous run had, since bound
// by another socket, is not taken over (steering would steal that
// socket's datagrams): the adoption fails and the pair goes back.
func TestAdoptStreamPortHeldElsewhere(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		const port = testPortMin + 100
		other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		free := r.FreePairs()
		if _, err := r.NewSession("held").AdoptStream([2]int{port, port + 2}, [2]Peer{}, [2]*LegMedia{}); err == nil {
			t.Fatal("adopted a port another socket holds")
		}
		if r.FreePairs() != free {
			t.Errorf("%d pairs free after the failed adoption, want %d", r.FreePairs(), free)
		}
	})
}

// TestAdoptStreamMedia: a terminated stream taken over gets its legs'
// media back before it relays: SRTP from A reaches B decrypted, never as
// it came.
func TestAdoptStreamMedia(t *testing.T) {
	r := newTestRelay(t, nil)
	a, b := newPeer(t), newPeer(t)
	ka := keys(t, AES_CM_128_HMAC_SHA1_80)
	s := r.NewSession("adopt-media")
	t.Cleanup(s.Close)
	legs := [2]*LegMedia{{Formats: pcmuTE, SRTP: ka}, {Formats: pcma}}
	st, err := s.AdoptStream([2]int{r.ports.min, r.ports.min + 2}, [2]Peer{{RTP: a.addr()}, {RTP: b.addr()}}, legs)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Media(SideA); m == nil || !reflect.DeepEqual(m.SRTP, ka) || st.kernelOK.Load() {
		t.Fatalf("adopted media %v, kernel eligible %v", m, st.kernelOK.Load())
	}
	aPort, _ := st.LocalPorts(SideA)
	in := audio(0, 1, 5)
	a.sendTo(aPort, newSRTPPeer(t, ka).seal(in))
	got, _ := b.recv()
	checkRelayed(t, got, in, pcmuTE[0], pcma[0])
}
