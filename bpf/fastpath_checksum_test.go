package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Test-run flags of TC programs (linux/bpf.h).
const (
	// testSKBChecksumComplete (BPF_F_TEST_SKB_CHECKSUM_COMPLETE, Linux
	// 6.11): the skb is CHECKSUM_COMPLETE, as from a NIC that sums what it
	// receives, and the run fails with EBADMSG when the program leaves
	// skb->csum wrong for the bytes it wrote.
	testSKBChecksumComplete = 1 << 2
	// testSKBNonLinear (BPF_F_TEST_SKB_NON_LINEAR, Linux 6.18): only the
	// first skbContext.DataEnd bytes are linear, the rest in a page, as
	// a NIC or GRO may leave them.
	testSKBNonLinear = 1 << 3
)

// skbContext is struct __sk_buff up to data_end, what a test run takes of
// it (the rest must be zero).
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol uint32
	VlanPresent, VlanTCI, VlanProto, Priority  uint32
	IngressIfindex, Ifindex, TCIndex           uint32
	CB                                         [5]uint32
	Hash, TCClassid, Data, DataEnd             uint32
}

// runTC feeds frame to the TC program with test-run flags; linear is the
// linear part with testSKBNonLinear. It skips the test where the kernel
// lacks the flags. It returns the verdict and the linear part of the frame
// as the program left it.
func runTC(t testing.TB, prog *ebpf.Program, frame []byte, flags uint32, linear int) (int, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256), Flags: flags}
	if flags&testSKBNonLinear != 0 {
		opts.Context = skbContext{DataEnd: uint32(linear)}
	}
	ret, err := prog.Run(opts)
	switch {
	case errors.Is(err, unix.EINVAL) && flags != 0:
		t.Skipf("test-run flags %#x not supported by this kernel: %v", flags, err)
	case errors.Is(err, unix.EBADMSG):
		t.Fatalf("skb->csum left wrong for the rewritten packet (CHECKSUM_COMPLETE): %v", err)
	case err != nil:
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return int(ret), opts.DataOut
}

// zeroSumPayload returns the payload with which the UDP checksum of a
// packet rewritten to fw comes to 0.
func zeroSumPayload(fw *Forward) []byte {
	payload := bytes.Repeat([]byte{0xa5}, 172)
	payload[170], payload[171] = 0, 0
	out := packet{src: fw.From.Addr(), dst: fw.To.Addr(), sport: fw.From.Port(), dport: fw.To.Port(),
		payload: payload, noUDPSum: true}.untagged()
	// Its checksum with the last word 0, c, is ~s for s the folded sum;
	// that word as 0xffff - s makes the sum 0xffff, the checksum 0.
	s := ^checksumOf(out)
	binary.BigEndian.PutUint16(payload[170:], 0xffff-s)
	return payload
}

// checksumOf computes the UDP checksum of an untagged IPv4 or IPv6 (no
// extension headers) frame from its pseudo-header and UDP datagram, with
// the checksum field as it is: 0 for a frame whose checksum verifies (or,
// the field 0, the checksum it needs).
func checksumOf(frame []byte) uint16 {
	var pseudo, udp []byte
	if binary.BigEndian.Uint16(frame[12:]) == unix.ETH_P_IPV6 {
		ip := frame[14:54]
		udp = frame[54:]
		pseudo = append(append([]byte{}, ip[8:40]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
	} else {
		ihl := int(frame[14]&0x0f) * 4
		ip := frame[14 : 14+ihl]
		udp = frame[14+ihl:]
		pseudo = append(append([]byte{}, ip[12:20]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	}
	return fold(sum(pseudo) + sum(udp))
}

// TestFastPathZeroChecksum: a forwarded datagram whose UDP checksum comes
// to 0 after the rewrite carries 0xffff, as a computed 0 is sent (RFC 768;
// in IPv6 a 0 would mean none, which receivers drop: RFC 8200, 8.1), in
// both programs and both families.
func TestFastPathZeroChecksum(t *testing.T) {
	via := &NextHop{Ifindex: 1, Src: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Dst: net.HardwareAddr{2, 0, 0, 0, 0, 4}}
	media6, carrier6 := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:1::7")
	fw4 := &Forward{From: netip.AddrPortFrom(mediaIP, 20012), To: netip.AddrPortFrom(customer, 5004), Via: via}
	fw6 := &Forward{From: netip.MustParseAddrPort("[2001:db8::10]:20012"), To: netip.MustParseAddrPort("[2001:db8:2::9]:5004"), Via: via}
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP, IP6: media6})
			redirect := map[string]int{"xdp": xdpTX, "tc": tcRedirect}[p.name] // ifindex 1: the test run's
			for _, c := range []struct {
				name string
				fw   *Forward
				in   packet
			}{
				{"IPv4", fw4, packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}},
				{"IPv6", fw6, packet{src: carrier6, dst: media6, sport: 4000, dport: 20010}},
			} {
				if err := f.Open(20010, Pinhole{Forward: c.fw}); err != nil {
					t.Fatal(err)
				}
				c.in.payload = zeroSumPayload(c.fw)
				in := c.in.bytes()
				if checksumOf(in) != 0 || binary.BigEndian.Uint16(in[len(in)-len(c.in.payload)-2:]) == 0 {
					t.Fatalf("%s: the crafted packet's own checksum is wrong or 0", c.name)
				}
				got, out := run(t, p.prog(f), in)
				if got != redirect {
					t.Fatalf("%s: verdict %d, want %d (forwarded); counters %+v", c.name, got, redirect, counters(t, f))
				}
				sumAt := len(in) - len(c.in.payload) - 2
				if sum := binary.BigEndian.Uint16(out[sumAt:]); sum != 0xffff || checksumOf(out) != 0 {
					t.Errorf("%s: UDP checksum %#04x (verifies: %v), want 0xffff", c.name, sum, checksumOf(out) == 0)
				}
			}
		})
	}
}

// TestFastPathChecksumComplete: on a CHECKSUM_COMPLETE skb (a NIC that
// sums what it receives) the TC program's rewrite leaves skb->csum right
// for the bytes it changed, IPv4 and IPv6, and its filtering changes none.
func TestFastPathChecksumComplete(t *testing.T) {
	via := &NextHop{Ifindex: 1, Src: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Dst: net.HardwareAddr{2, 0, 0, 0, 0, 4}}
	media6, carrier6 := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:1::7")
	f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP, IP6: media6})
	fw4 := &Forward{From: netip.AddrPortFrom(mediaIP, 20012), To: netip.AddrPortFrom(customer, 5004), Via: via}
	fw6 := &Forward{From: netip.MustParseAddrPort("[2001:db8::10]:20012"), To: netip.MustParseAddrPort("[2001:db8:2::9]:5004"), Via: via}
	for _, c := range []struct {
		name string
		fw   *Forward // nil: the port open, not forwarding
		in   packet
		want int
	}{
		{"IPv4 forwarded", fw4, packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}, tcRedirect},
		{"IPv4 forwarded, no UDP checksum", fw4, packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, noUDPSum: true}, tcRedirect},
		{"IPv6 forwarded", fw6, packet{src: carrier6, dst: media6, sport: 4000, dport: 20010}, tcRedirect},
		{"IPv6 passed", nil, packet{src: carrier6, dst: media6, sport: 4000, dport: 20010}, tcOK},
		{"IPv6 dropped", nil, packet{src: carrier6, dst: media6, sport: 4000, dport: 20020}, tcShot},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := f.Open(20010, Pinhole{Forward: c.fw}); err != nil {
				t.Fatal(err)
			}
			in := c.in.bytes()
			got, out := runTC(t, f.objs.TcMedia, in, testSKBChecksumComplete, 0)
			if got != c.want {
				t.Errorf("verdict %d, want %d", got, c.want)
			}
			switch {
			case c.fw != nil && c.in.src.Is6():
				checkRewritten6(t, out[:len(in)], c.fw)
			case c.fw != nil:
				checkRewritten(t, out[:len(in)], c.fw, c.in.noUDPSum)
			}
		})
	}
}
