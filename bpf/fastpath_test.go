package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"sbc/sbc/sbctest/netlab"
)

// The programs' return codes (linux/bpf.h, linux/pkt_cls.h).
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
	tcOK        = 0
	tcShot      = 2
	tcRedirect  = 7
)

var (
	mediaIP  = netip.MustParseAddr("192.0.2.10")
	carrier  = netip.MustParseAddr("198.51.100.7")
	customer = netip.MustParseAddr("203.0.113.9")
)

const portMin, portMax = 20000, 20099

// packet is an Ethernet frame the tests feed the programs.
type packet struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8 // 17 unless set
	ipOptions    int   // bytes of IPv4 options (a multiple of 4)
	ext6         int   // IPv6 destination-options headers (8 bytes each) before UDP
	hopByHop     int   // bytes of an IPv6 hop-by-hop options header (a multiple of 8) before those
	fragOff      uint16
	noUDPSum     bool
	payload      []byte
	vlans        []uint16 // 802.1Q tags (the first 802.1ad when two), outermost first
}

// tagged inserts p's VLAN tags after the Ethernet addresses of frame.
func (p packet) tagged(frame []byte) []byte {
	if len(p.vlans) == 0 {
		return frame
	}
	out := append([]byte{}, frame[:12]...)
	for i, id := range p.vlans {
		tpid := uint16(unix.ETH_P_8021Q)
		if i == 0 && len(p.vlans) > 1 {
			tpid = 0x88a8 // 802.1ad outer tag
		}
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, id)
	}
	return append(out, frame[12:]...)
}

func (p packet) bytes() []byte { return p.tagged(p.untagged()) }

func (p packet) untagged() []byte {
	proto := p.proto
	if proto == 0 {
		proto = unix.IPPROTO_UDP
	}
	payload := p.payload
	if payload == nil {
		payload = bytes.Repeat([]byte{0xa5}, 172)
	}
	eth := make([]byte, 14)
	copy(eth[0:6], []byte{0x02, 0, 0, 0, 0, 0x01})
	copy(eth[6:12], []byte{0x02, 0, 0, 0, 0, 0x02})
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], p.sport)
	binary.BigEndian.PutUint16(udp[2:], p.dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	if p.src.Is6() {
		binary.BigEndian.PutUint16(eth[12:], unix.ETH_P_IPV6)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)+8*p.ext6+p.hopByHop))
		ip[6], ip[7] = proto, 17 // hop limit 17: the fast path must set its own
		if p.ext6 > 0 {
			ip[6] = 60 // destination options
		}
		if p.hopByHop > 0 {
			next := ip[6]
			ip[6] = 0 // hop-by-hop options
			hbh := make([]byte, p.hopByHop)
			hbh[0], hbh[1] = next, byte(p.hopByHop/8-1)
			hbh[2], hbh[3] = 1, byte(p.hopByHop-4) // PadN over the option bytes
			ip = append(ip, hbh...)
		}
		for i := range p.ext6 {
			next := byte(60)
			if i == p.ext6-1 {
				next = proto
			}
			ip = append(ip, next, 0, 1, 4, 0, 0, 0, 0) // PadN over the 6 option bytes
		}
		s, d := p.src.As16(), p.dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, proto)
		if !p.noUDPSum {
			binary.BigEndian.PutUint16(udp[6:], fold(sum(pseudo)+sum(udp)))
		}
		return append(append(eth, ip...), udp...)
	}
	binary.BigEndian.PutUint16(eth[12:], unix.ETH_P_IP)
	ihl := 20 + p.ipOptions
	ip := make([]byte, ihl)
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(udp)))
	binary.BigEndian.PutUint16(ip[6:], p.fragOff)
	ip[8], ip[9] = 17, proto // TTL 17: the fast path must set its own
	for i := 20; i < ihl; i++ {
		ip[i] = 1 // NOP options
	}
	s, d := p.src.As4(), p.dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], fold(sum(ip)))
	if !p.noUDPSum {
		binary.BigEndian.PutUint16(udp[6:], udpSum(ip, udp))
	}
	return append(append(eth, ip...), udp...)
}

// sum is the 32-bit one's complement sum of b as big-endian 16-bit words.
func sum(b []byte) uint32 {
	var s uint32
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// udpSum is the UDP checksum of udp (its checksum field zero) under ip.
func udpSum(ip, udp []byte) uint16 {
	pseudo := append(append([]byte{}, ip[12:20]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	c := fold(sum(pseudo) + sum(udp))
	if c == 0 {
		return 0xffff
	}
	return c
}

func loadFastPath(t testing.TB, c FastPathConfig) *FastPath {
	t.Helper()
	f, err := LoadFastPath(c)
	if err != nil {
		t.Fatalf("load (root and a BPF-capable kernel are required): %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// program is one of the two entry points, with its return codes.
type program struct {
	name             string
	prog             func(*FastPath) *ebpf.Program
	drop, pass, send int
}

var programs = []program{
	{"xdp", func(f *FastPath) *ebpf.Program { return f.objs.XdpMedia }, xdpDrop, xdpPass, xdpTX},
	{"tc", func(f *FastPath) *ebpf.Program { return f.objs.TcMedia }, tcShot, tcOK, tcRedirect},
}

// run feeds frame to the program and returns its verdict and the frame as
// the program left it.
func run(t testing.TB, prog *ebpf.Program, frame []byte) (int, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return int(ret), out[:len(frame)]
}

func counters(t testing.TB, f *FastPath) Counters {
	t.Helper()
	c, err := f.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFastPathFilter(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP})
			prog := p.prog(f)
			toPort := func(port uint16) packet {
				return packet{src: carrier, dst: mediaIP, sport: 4000, dport: port}
			}
			verdict := func(what string, pk packet, want int) {
				t.Helper()
				if got, _ := run(t, prog, pk.bytes()); got != want {
					t.Errorf("%s: verdict %d, want %d", what, got, want)
				}
			}

			verdict("closed media port", toPort(20010), p.drop)
			verdict("closed port, IPv4 options", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, ipOptions: 8}, p.drop)
			verdict("below the range", toPort(portMin-1), p.pass)
			verdict("above the range", toPort(portMax+1), p.pass)
			verdict("TCP to the range", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, proto: unix.IPPROTO_TCP}, p.pass)
			verdict("another destination", packet{src: carrier, dst: customer, sport: 4000, dport: 20010}, p.pass)
			verdict("first fragment to a closed port", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, fragOff: 0x2000}, p.drop)
			verdict("later fragment", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010, fragOff: 0x2010}, p.pass)
			if c := counters(t, f); c.Closed != 3 || c.Fragments != 1 {
				t.Errorf("counters %+v, want 3 closed and 1 fragment", c)
			}

			if err := f.Open(20010, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			pk := toPort(20010)
			verdict("open port", pk, p.pass)
			verdict("open port, another source", packet{src: customer, dst: mediaIP, sport: 9, dport: 20010}, p.pass)
			st, err := f.Stats(20010)
			if err != nil {
				t.Fatal(err)
			}
			if ipLen := uint64(len(pk.bytes()) - 14); st.Packets != 2 || st.Bytes != 2*ipLen || st.Forwarded != 0 {
				t.Errorf("stats %+v, want 2 packets of %d bytes, none forwarded", st, ipLen)
			}
			if now := Monotonic(); st.LastSeen <= 0 || st.LastSeen > now {
				t.Errorf("last seen %v, want before now (%v)", st.LastSeen, now)
			}

			// Strict latching: only the latched peer gets through.
			peer := netip.AddrPortFrom(carrier, 4000)
			if err := f.Open(20010, Pinhole{Peer: peer}); err != nil {
				t.Fatal(err)
			}
			verdict("strict, the peer", pk, p.pass)
			verdict("strict, another port of the peer's host", packet{src: carrier, dst: mediaIP, sport: 4001, dport: 20010}, p.drop)
			verdict("strict, another host", packet{src: customer, dst: mediaIP, sport: 4000, dport: 20010}, p.drop)
			if c := counters(t, f); c.NotPeer != 2 {
				t.Errorf("not-peer drops %d, want 2", c.NotPeer)
			}
			if st, _ := f.Stats(20010); st.Packets != 3 {
				t.Errorf("changing an open port's entry reset its counters: %+v", st)
			}

			if err := f.Shut(20010); err != nil {
				t.Fatal(err)
			}
			verdict("shut port", pk, p.drop)
			if err := f.Open(20010, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stats(20010); st.Packets != 0 {
				t.Errorf("a port opened again kept its old counters: %+v", st)
			}
		})
	}
}

func TestFastPathDeny(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP})
			prog := p.prog(f)
			if err := f.Open(20010, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			banned4 := netip.MustParsePrefix("198.51.100.0/24")
			banned6 := netip.MustParsePrefix("2001:db8:bad::/48")
			for _, b := range []netip.Prefix{banned4, banned6} {
				if err := f.Deny(b); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				what string
				pk   packet
				want int
			}{
				{"banned, to an open media port", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}, p.drop},
				{"banned, to SIP over TCP", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 5060, proto: unix.IPPROTO_TCP}, p.drop},
				{"banned IPv6", packet{src: netip.MustParseAddr("2001:db8:bad:1::1"), dst: netip.MustParseAddr("2001:db8::1"), sport: 1, dport: 5060}, p.drop},
				{"next door to the ban", packet{src: netip.MustParseAddr("198.51.101.7"), dst: mediaIP, sport: 4000, dport: 20010}, p.pass},
			} {
				if got, _ := run(t, prog, c.pk.bytes()); got != c.want {
					t.Errorf("%s: verdict %d, want %d", c.what, got, c.want)
				}
			}
			if c := counters(t, f); c.Denied != 3 {
				t.Errorf("denied %d, want 3", c.Denied)
			}
			if err := f.Allow(banned4); err != nil {
				t.Fatal(err)
			}
			if got, _ := run(t, prog, packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}.bytes()); got != p.pass {
				t.Errorf("after Allow: verdict %d, want %d", got, p.pass)
			}
		})
	}
}

func TestFastPathIPv6(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			// No media address named: every destination's media range is filtered.
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax})
			prog := p.prog(f)
			pk := packet{src: netip.MustParseAddr("2001:db8:1::2"), dst: netip.MustParseAddr("2001:db8:1::1"), sport: 4000, dport: 20010}
			if got, _ := run(t, prog, pk.bytes()); got != p.drop {
				t.Errorf("IPv6 to a closed media port: verdict %d, want %d", got, p.drop)
			}
			if err := f.Open(20010, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			if got, _ := run(t, prog, pk.bytes()); got != p.pass {
				t.Errorf("IPv6 to an open media port: verdict %d, want %d", got, p.pass)
			}
			// Extension headers in front of UDP are walked...
			withExt := pk
			withExt.ext6, withExt.dport = 2, 20012
			if got, _ := run(t, prog, withExt.bytes()); got != p.drop {
				t.Errorf("IPv6 with 2 extension headers to a closed media port: verdict %d, want %d", got, p.drop)
			}
			// ... a longer chain than the program walks is closed by default.
			withExt.ext6, withExt.dport = 5, 20010
			if got, _ := run(t, prog, withExt.bytes()); got != p.drop {
				t.Errorf("IPv6 with 5 extension headers: verdict %d, want %d", got, p.drop)
			}
			// A strict IPv6 pinhole: the latched peer only.
			if err := f.Open(20014, Pinhole{Peer: netip.MustParseAddrPort("[2001:db8:1::2]:4000")}); err != nil {
				t.Fatal(err)
			}
			strict := pk
			strict.dport = 20014
			if got, _ := run(t, prog, strict.bytes()); got != p.pass {
				t.Errorf("IPv6 from the strict peer: verdict %d, want %d", got, p.pass)
			}
			strict.sport = 4002
			if got, _ := run(t, prog, strict.bytes()); got != p.drop {
				t.Errorf("IPv6 from another port of the strict peer: verdict %d, want %d", got, p.drop)
			}
			// Forwarding keeps the address family.
			mixed := &Forward{From: netip.MustParseAddrPort("192.0.2.1:20016"), To: netip.MustParseAddrPort("[2001:db8:2::2]:5004")}
			if err := f.Open(20016, Pinhole{Forward: mixed}); err == nil {
				t.Error("forwarding from IPv4 to IPv6 was accepted")
			}
		})
	}
}

func TestFastPathMalformed(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP})
			prog := p.prog(f)
			full := packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}.bytes()
			// Cut in the IP header and in the UDP header:
			// nothing to judge by, so the stack gets it (and drops it).
			for _, n := range []int{14 + 19, 14 + 20 + 7} {
				if p.name == "tc" && n < 14+20 {
					continue // the kernel's test run refuses an skb shorter than an IPv4 header (EINVAL)
				}
				frame := append([]byte{}, full[:n]...)
				if got, _ := run(t, prog, frame); got != p.pass {
					t.Errorf("cut at %d bytes: verdict %d, want %d", n, got, p.pass)
				}
			}
			bad := append([]byte{}, full...)
			bad[14] = 0x43 // IHL 3
			if got, _ := run(t, prog, bad); got != p.pass {
				t.Errorf("IHL 3: verdict %d, want %d", got, p.pass)
			}
			if c := counters(t, f); c.Closed != 0 {
				t.Errorf("malformed packets counted as closed-port drops: %+v", c)
			}
		})
	}
}

func TestLoadFastPathRejectsBadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  FastPathConfig
		want string
	}{
		{"empty range", FastPathConfig{PortMin: 2000, PortMax: 1000}, "bad port range"},
		{"IPv6 as IP4", FastPathConfig{PortMin: 1000, PortMax: 2000, IP4: netip.MustParseAddr("::1")}, "not an IPv4"},
		{"IPv4 as IP6", FastPathConfig{PortMin: 1000, PortMax: 2000, IP6: mediaIP}, "not an IPv6"},
	} {
		if _, err := LoadFastPath(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestFastPathForward(t *testing.T) {
	// The SBC's namespace of a netlab: the carrier sends to the SBC's address
	// on its side, the packet leaves on the customer's side to the customer.
	// Forwarding is off there, as on an SBC.
	lab := netlab.New(t)
	cust := lab.CustomerLink
	media := lab.CarrierLink.SBC.IPv4
	carrier := lab.CarrierLink.Leaf.IPv4
	fw := &Forward{From: netip.AddrPortFrom(cust.SBC.IPv4, 20012), To: netip.AddrPortFrom(cust.Leaf.IPv4, 5004),
		Via: &NextHop{Ifindex: cust.SBC.Index, Src: cust.SBC.MAC, Dst: cust.Leaf.MAC}}
	// The customer's MAC as a permanent neighbour, for the FIB case.
	if out, err := lab.SBC.Command("ip", "neigh", "replace", cust.Leaf.IPv4.String(), "lladdr", cust.Leaf.MAC.String(),
		"dev", cust.SBC.Name, "nud", "permanent").CombinedOutput(); err != nil {
		t.Fatalf("ip neigh: %v\n%s", err, out)
	}
	for _, p := range programs {
		// BPF_PROG_TEST_RUN looks routes up in the caller's namespace: the
		// whole case runs on a thread in the SBC's.
		err := lab.SBC.Do(func() error {
			t := &named{T: t, name: p.name}
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: media})
			prog := p.prog(f)
			redirect := xdpRedirect // out of to-customer, in by lo (the test run's interface)
			if p.name == "tc" {
				redirect = tcRedirect
			}
			in := packet{src: carrier, dst: media, sport: 4000, dport: 20010}.bytes()
			unchanged := func(what string) {
				t.Helper()
				if got, out := run(t, prog, in); got != p.pass || !bytes.Equal(out, in) {
					t.Errorf("%s: verdict %d (want pass %d), packet changed %v", what, got, p.pass, !bytes.Equal(out, in))
				}
			}

			// The next hop from userspace: no FIB, no forwarding needed.
			if err := f.Open(20010, Pinhole{Peer: netip.AddrPortFrom(carrier, 4000), Forward: fw}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				noSum   bool
				options int
			}{{false, 0}, {true, 0}, {false, 12}} {
				in := packet{src: carrier, dst: media, sport: 4000, dport: 20010, noUDPSum: c.noSum, ipOptions: c.options}.bytes()
				got, out := run(t, prog, in)
				if got != redirect {
					t.Fatalf("%+v: verdict %d, want %d (redirect); counters %+v", c, got, redirect, counters(t, f))
				}
				checkRewritten(t, out, fw, c.noSum)
				checkMACs(t, out, cust.SBC.MAC, cust.Leaf.MAC)
				if head := 14 + 20 + c.options + 8; !bytes.Equal(out[head:], in[head:]) || !bytes.Equal(out[34:34+c.options], in[34:34+c.options]) {
					t.Errorf("%+v: payload or IP options changed", c)
				}
			}
			st, _ := f.Stats(20010)
			if c := counters(t, f); st.Forwarded != 3 || c.Forwarded != 3 {
				t.Errorf("forwarded: port %d, global %d; want 3", st.Forwarded, c.Forwarded)
			}
			// Strict: another source is dropped, not forwarded.
			if got, _ := run(t, prog, packet{src: customer, dst: media, sport: 4000, dport: 20010}.bytes()); got != p.drop {
				t.Errorf("strict forward, another source: verdict %d, want %d", got, p.drop)
			}

			// Forwarding only the latched source's: another source goes to
			// userspace (which may latch it), not dropped.
			if err := f.Open(20010, Pinhole{Forward: fw, ForwardFrom: netip.AddrPortFrom(carrier, 4000)}); err != nil {
				t.Fatal(err)
			}
			if got, _ := run(t, prog, in); got != redirect {
				t.Errorf("forward from the latched source: verdict %d, want %d", got, redirect)
			}
			other := packet{src: customer, dst: media, sport: 4000, dport: 20010}.bytes()
			if got, out := run(t, prog, other); got != p.pass || !bytes.Equal(out, other) {
				t.Errorf("forward, another source: verdict %d (want pass %d), packet changed %v", got, p.pass, !bytes.Equal(out, other))
			}
			if st, _ := f.Stats(20010); st.Forwarded != 4 || st.ForwardedBytes != 4*uint64(len(in)-14)+12 {
				t.Errorf("after four forwarded: %+v; want 4 packets of %d bytes (one with 12 bytes of IP options)", st, len(in)-14)
			}

			// No next hop and forwarding off: the FIB declines, userspace relays.
			fib := &Forward{From: fw.From, To: fw.To}
			if err := f.Open(20010, Pinhole{Forward: fib}); err != nil {
				t.Fatal(err)
			}
			unchanged("FIB with forwarding off")
			if c := counters(t, f); c.NoRoute != 1 {
				t.Errorf("no-route count %d, want 1", c.NoRoute)
			}

			// Forwarding on: the FIB names the interface and the MACs.
			sysctl(t, lab.SBC, "net.ipv4.conf.all.forwarding", "1")
			defer sysctl(t, lab.SBC, "net.ipv4.conf.all.forwarding", "0")
			got, out := run(t, prog, in)
			if got != redirect {
				t.Fatalf("FIB: verdict %d, want %d (redirect); counters %+v", got, redirect, counters(t, f))
			}
			checkRewritten(t, out, fib, false)
			checkMACs(t, out, cust.SBC.MAC, cust.Leaf.MAC)

			// No route to the far peer: userspace gets it unchanged.
			if err := f.Open(20010, Pinhole{Forward: &Forward{From: fw.From, To: netip.MustParseAddrPort("10.99.0.1:5004")}}); err != nil {
				t.Fatal(err)
			}
			unchanged("no route")

			// A neighbour not yet resolved: XDP leaves it to userspace (the
			// stack resolves it); TC redirects and lets the kernel resolve
			// the MACs.
			unresolved := &Forward{From: fw.From, To: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.50"), 5004)}
			if err := f.Open(20010, Pinhole{Forward: unresolved}); err != nil {
				t.Fatal(err)
			}
			if p.name == "xdp" {
				unchanged("unresolved neighbour")
			} else {
				got, out := run(t, prog, in)
				if got != tcRedirect {
					t.Errorf("unresolved neighbour: verdict %d, want redirect %d", got, tcRedirect)
				}
				checkRewritten(t, out, unresolved, false)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	}
}

// TestFastPathForward6 is TestFastPathForward for IPv6: addresses, ports
// and hop limit rewritten, the UDP checksum right over the new
// pseudo-header; what cannot be forwarded (extension headers, a zero
// checksum, IPv4 to an IPv6 entry) goes to userspace unchanged.
func TestFastPathForward6(t *testing.T) {
	lab := netlab.New(t)
	cust := lab.CustomerLink
	media := lab.CarrierLink.SBC.IPv6
	carrier := lab.CarrierLink.Leaf.IPv6
	fw := &Forward{From: netip.AddrPortFrom(cust.SBC.IPv6, 20012), To: netip.AddrPortFrom(cust.Leaf.IPv6, 5004),
		Via: &NextHop{Ifindex: cust.SBC.Index, Src: cust.SBC.MAC, Dst: cust.Leaf.MAC}}
	if out, err := lab.SBC.Command("ip", "-6", "neigh", "replace", cust.Leaf.IPv6.String(), "lladdr", cust.Leaf.MAC.String(),
		"dev", cust.SBC.Name, "nud", "permanent").CombinedOutput(); err != nil {
		t.Fatalf("ip neigh: %v\n%s", err, out)
	}
	for _, p := range programs {
		err := lab.SBC.Do(func() error {
			t := &named{T: t, name: p.name}
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP6: media})
			prog := p.prog(f)
			redirect := xdpRedirect
			if p.name == "tc" {
				redirect = tcRedirect
			}
			pk := packet{src: carrier, dst: media, sport: 4000, dport: 20010}
			in := pk.bytes()
			if err := f.Open(20010, Pinhole{Peer: netip.AddrPortFrom(carrier, 4000), Forward: fw}); err != nil {
				t.Fatal(err)
			}
			got, out := run(t, prog, in)
			if got != redirect {
				t.Fatalf("verdict %d, want %d (redirect); counters %+v", got, redirect, counters(t, f))
			}
			checkRewritten6(t, out, fw)
			checkMACs(t, out, cust.SBC.MAC, cust.Leaf.MAC)
			if !bytes.Equal(out[62:], in[62:]) {
				t.Error("payload changed")
			}
			if st, _ := f.Stats(20010); st.Forwarded != 1 || st.ForwardedBytes != uint64(len(in)-14) {
				t.Errorf("stats %+v; want 1 forwarded of %d bytes", st, len(in)-14)
			}
			for _, c := range []struct {
				what string
				pk   packet
			}{
				{"an extension header", packet{src: carrier, dst: media, sport: 4000, dport: 20010, ext6: 1}},
				{"a zero UDP checksum", packet{src: carrier, dst: media, sport: 4000, dport: 20010, noUDPSum: true}},
			} {
				in := c.pk.bytes()
				if got, out := run(t, prog, in); got != p.pass || !bytes.Equal(out, in) {
					t.Errorf("%s: verdict %d (want pass %d), packet changed %v", c.what, got, p.pass, !bytes.Equal(out, in))
				}
			}
			// IPv4 to a port forwarding IPv6: userspace's.
			if err := f.Open(20010, Pinhole{Forward: fw}); err != nil {
				t.Fatal(err)
			}
			v4 := packet{src: lab.CarrierLink.Leaf.IPv4, dst: lab.CarrierLink.SBC.IPv4, sport: 4000, dport: 20010}.bytes()
			if got, out := run(t, prog, v4); got != p.pass || !bytes.Equal(out, v4) {
				t.Errorf("IPv4 to an IPv6 forward: verdict %d (want pass %d)", got, p.pass)
			}

			// The FIB's next hop, forwarding on.
			fib := &Forward{From: fw.From, To: fw.To}
			if err := f.Open(20010, Pinhole{Forward: fib}); err != nil {
				t.Fatal(err)
			}
			if got, out := run(t, prog, in); got != p.pass || !bytes.Equal(out, in) {
				t.Errorf("FIB with forwarding off: verdict %d (want pass %d)", got, p.pass)
			}
			sysctl(t, lab.SBC, "net.ipv6.conf.all.forwarding", "1")
			defer sysctl(t, lab.SBC, "net.ipv6.conf.all.forwarding", "0")
			got, out = run(t, prog, in)
			if got != redirect {
				t.Fatalf("FIB: verdict %d, want %d (redirect); counters %+v", got, redirect, counters(t, f))
			}
			checkRewritten6(t, out, fib)
			checkMACs(t, out, cust.SBC.MAC, cust.Leaf.MAC)
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	}
}

// checkRewritten6 checks a forwarded frame's IPv6 and UDP headers.
func checkRewritten6(t testing.TB, out []byte, fw *Forward) {
	t.Helper()
	if binary.BigEndian.Uint16(out[12:]) != unix.ETH_P_IPV6 {
		t.Fatalf("not IPv6 any more: ethertype %#04x", binary.BigEndian.Uint16(out[12:]))
	}
	ip, udp := out[14:54], out[54:]
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
	if got := netip.AddrPortFrom(src, sport); got != fw.From {
		t.Errorf("source %v, want %v", got, fw.From)
	}
	if got := netip.AddrPortFrom(dst, dport); got != fw.To {
		t.Errorf("destination %v, want %v", got, fw.To)
	}
	if ip[7] != 64 {
		t.Errorf("hop limit %d, want 64", ip[7])
	}
	udp = udp[:binary.BigEndian.Uint16(udp[4:])]
	pseudo := append(append([]byte{}, ip[8:40]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
	if fold(sum(pseudo)+sum(udp)) != 0 {
		t.Errorf("UDP checksum %#04x does not verify", binary.BigEndian.Uint16(udp[6:]))
	}
}

func sysctl(t testing.TB, ns *netlab.Namespace, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if out, err := ns.Command("sh", "-c", "echo "+value+" > "+path).CombinedOutput(); err != nil {
		t.Fatalf("sysctl %s=%s: %v\n%s", key, value, err, out)
	}
}

func checkMACs(t testing.TB, frame []byte, src, dst net.HardwareAddr) {
	t.Helper()
	if !bytes.Equal(frame[6:12], src) || !bytes.Equal(frame[0:6], dst) {
		t.Errorf("MACs %v -> %v, want %v -> %v", net.HardwareAddr(frame[6:12]), net.HardwareAddr(frame[0:6]), src, dst)
	}
}

// named prefixes a test's failures with a name, and makes Fatal usable off
// the test's goroutine: it reports, then ends the calling goroutine (a
// netlab Do's, which returns an error for it).
type named struct {
	*testing.T
	name string
}

func (n *named) Errorf(format string, args ...any) { n.T.Errorf(n.name+": "+format, args...) }
func (n *named) Fatalf(format string, args ...any) {
	n.T.Errorf(n.name+": "+format, args...)
	runtime.Goexit()
}
func (n *named) Fatal(args ...any) {
	n.T.Error(append([]any{n.name + ":"}, args...)...)
	runtime.Goexit()
}

// checkRewritten checks a forwarded frame's IPv4 and UDP headers.
func checkRewritten(t testing.TB, out []byte, fw *Forward, noSum bool) {
	t.Helper()
	ihl := int(out[14]&0x0f) * 4
	ip, udp := out[14:14+ihl], out[14+ihl:]
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
	if got := netip.AddrPortFrom(src, sport); got != fw.From {
		t.Errorf("source %v, want %v", got, fw.From)
	}
	if got := netip.AddrPortFrom(dst, dport); got != fw.To {
		t.Errorf("destination %v, want %v", got, fw.To)
	}
	if ip[8] != 64 {
		t.Errorf("TTL %d, want 64", ip[8])
	}
	if fold(sum(ip)) != 0 {
		t.Errorf("IP header checksum %#04x is wrong", binary.BigEndian.Uint16(ip[10:]))
	}
	got := binary.BigEndian.Uint16(udp[6:])
	if noSum {
		if got != 0 {
			t.Errorf("UDP checksum %#04x, want 0 (the sender sent none)", got)
		}
		return
	}
	zeroed := append([]byte{}, udp...)
	zeroed[6], zeroed[7] = 0, 0
	if want := udpSum(ip, zeroed); got != want {
		t.Errorf("UDP checksum %#04x, want %#04x", got, want)
	}
}

// TestFastPathBan: a banned source loses what it sends to the SIP ports
// (UDP and TCP, IPv4 and IPv6 by prefix), nothing else, until unbanned.
func TestFastPathBan(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP, SIPPorts: []uint16{5060}})
			prog := p.prog(f)
			if err := f.Open(20010, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			scanner4 := netip.MustParseAddr("192.0.2.66")
			ban4, ban6 := netip.PrefixFrom(scanner4, 32), netip.MustParsePrefix("2001:db8:66::/64")
			for _, b := range []netip.Prefix{ban4, ban6} {
				if err := f.Ban(b); err != nil {
					t.Fatal(err)
				}
			}
			v6dst := netip.MustParseAddr("2001:db8::1")
			cases := []struct {
				what string
				pk   packet
				want int
			}{
				{"UDP to SIP", packet{src: scanner4, dst: mediaIP, sport: 5060, dport: 5060}, p.drop},
				{"TCP to SIP", packet{src: scanner4, dst: mediaIP, sport: 4000, dport: 5060, proto: unix.IPPROTO_TCP}, p.drop},
				{"IPv6, another host of the /64, to SIP", packet{src: netip.MustParseAddr("2001:db8:66::9"), dst: v6dst, sport: 5060, dport: 5060}, p.drop},
				{"to an open media port", packet{src: scanner4, dst: mediaIP, sport: 4000, dport: 20010}, p.pass},
				{"to another port", packet{src: scanner4, dst: mediaIP, sport: 4000, dport: 53}, p.pass},
				{"another source to SIP", packet{src: netip.MustParseAddr("192.0.2.67"), dst: mediaIP, sport: 5060, dport: 5060}, p.pass},
			}
			for _, c := range cases {
				if got, _ := run(t, prog, c.pk.bytes()); got != c.want {
					t.Errorf("%s: verdict %d, want %d", c.what, got, c.want)
				}
			}
			if c := counters(t, f); c.Banned != 3 || c.Denied != 0 {
				t.Errorf("banned %d, denied %d; want 3, 0", c.Banned, c.Denied)
			}
			for _, b := range []netip.Prefix{ban4, ban6, ban4} { // twice: no error
				if err := f.Unban(b); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := run(t, prog, cases[0].pk.bytes()); got != p.pass {
				t.Errorf("after Unban: verdict %d, want %d", got, p.pass)
			}
		})
	}
}

func TestFastPathSIPRateLimit(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			// 10 packets/s after a burst of 5: at test speed, 5 get through.
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP,
				SIPPorts: []uint16{5060, 5061}, SIPRate: 10, SIPBurst: 5})
			prog := p.prog(f)
			trunk := netip.MustParseAddr("198.51.100.20")
			if err := f.Trust(netip.PrefixFrom(trunk, 32)); err != nil {
				t.Fatal(err)
			}
			attacker := netip.MustParseAddr("192.0.2.66")
			send := func(src netip.Addr, dport uint16, proto uint8, n int) (passed int) {
				for range n {
					pk := packet{src: src, dst: mediaIP, sport: 5060, dport: dport, proto: proto, payload: []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")}
					if got, _ := run(t, prog, pk.bytes()); got == p.pass {
						passed++
					} else if got != p.drop {
						t.Fatalf("verdict %d", got)
					}
				}
				return passed
			}
			if n := send(attacker, 5060, unix.IPPROTO_UDP, 8); n != 5 {
				t.Errorf("attacker, UDP to 5060: %d of 8 passed, want the burst of 5", n)
			}
			if n := send(attacker, 5061, unix.IPPROTO_TCP, 3); n != 0 {
				t.Errorf("attacker, TCP to the other SIP port: %d of 3 passed, want 0 (one bucket per source)", n)
			}
			if n := send(attacker, 8080, unix.IPPROTO_TCP, 3); n != 3 {
				t.Errorf("attacker, not a SIP port: %d of 3 passed, want 3", n)
			}
			if n := send(netip.MustParseAddr("192.0.2.67"), 5060, unix.IPPROTO_UDP, 5); n != 5 {
				t.Errorf("another source: %d of 5 passed, want 5", n)
			}
			// Another CPU stored a later time in a source's empty bucket:
			// no credit comes of it.
			racer := netip.MustParseAddr("192.0.2.77")
			if err := f.objs.SipBuckets.Put(denyKey(netip.PrefixFrom(racer, 32)),
				fastpathBucket{LastNs: uint64(Monotonic() + time.Second)}); err != nil {
				t.Fatal(err)
			}
			if n := send(racer, 5060, unix.IPPROTO_UDP, 5); n != 0 {
				t.Errorf("a bucket stamped in the future: %d of 5 passed, want 0", n)
			}
			// IPv6: one bucket per /64, extension headers or not.
			v6 := func(addr string, ext int) int {
				pk := packet{src: netip.MustParseAddr(addr), dst: netip.MustParseAddr("2001:db8::1"), sport: 5060, dport: 5060, ext6: ext}
				if got, _ := run(t, prog, pk.bytes()); got == p.pass {
					return 1
				}
				return 0
			}
			passed := 0
			for i := range 8 {
				passed += v6(fmt.Sprintf("2001:db8:66::%x", i+1), i%2)
			}
			if passed != 5 {
				t.Errorf("IPv6 hosts of one /64, with and without extension headers: %d of 8 passed, want the burst of 5", passed)
			}
			if n := send(trunk, 5060, unix.IPPROTO_UDP, 50); n != 50 {
				t.Errorf("trusted trunk: %d of 50 passed, want all", n)
			}
			if c := counters(t, f); c.RateLimited != 14 {
				t.Errorf("rate-limited %d, want 14", c.RateLimited)
			}
			start := time.Now()
			time.Sleep(250 * time.Millisecond) // 2.5 packets of credit, more if the sleep ran late
			n := send(attacker, 5060, unix.IPPROTO_UDP, 5)
			if want := min(int(time.Since(start)/(100*time.Millisecond))+1, 5); n < 2 || n > want { // +1: credit left from before
				t.Errorf("after %v: %d of 5 passed, want 2 to %d", time.Since(start), n, want)
			}
		})
	}
}

func TestLoadFastPathRejectsBadSIPLimit(t *testing.T) {
	for _, c := range []FastPathConfig{
		{PortMin: 1000, PortMax: 2000, SIPPorts: []uint16{1, 2, 3, 4, 5}},
		{PortMin: 1000, PortMax: 2000, SIPPorts: []uint16{5060}, SIPRate: 10},
		{PortMin: 1000, PortMax: 2000, SIPPorts: []uint16{5060}, SIPRate: -1, SIPBurst: 1},
	} {
		if _, err := LoadFastPath(c); err == nil {
			t.Errorf("%+v: loaded", c)
		}
	}
}

// TestFastPathVLAN: frames with one or two VLAN tags are filtered like
// untagged ones (closed ports dropped, open ones passed) in both programs,
// IPv4 and IPv6, and a tagged frame to a forwarding port goes to userspace
// unchanged (its next hop would need the tag); three tags are not looked
// into.
func TestFastPathVLAN(t *testing.T) {
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			f := loadFastPath(t, FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP,
				IP6: netip.MustParseAddr("2001:db8::10")})
			fw := &Forward{From: netip.AddrPortFrom(mediaIP, 20012), To: netip.AddrPortFrom(customer, 5004),
				Via: &NextHop{Ifindex: 1, Src: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Dst: net.HardwareAddr{2, 0, 0, 0, 0, 4}}}
			if err := f.Open(20010, Pinhole{Forward: fw}); err != nil {
				t.Fatal(err)
			}
			if err := f.Open(20020, Pinhole{}); err != nil {
				t.Fatal(err)
			}
			for _, tags := range [][]uint16{{100}, {200, 100}} {
				for _, c := range []struct {
					src, dst netip.Addr
					dport    uint16
					want     int
				}{
					{carrier, mediaIP, 20002, p.drop},
					{carrier, mediaIP, 20020, p.pass},
					{carrier, mediaIP, 20010, p.pass},
					{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("2001:db8::10"), 20002, p.drop},
					{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("2001:db8::10"), 20020, p.pass},
				} {
					in := packet{src: c.src, dst: c.dst, sport: 4000, dport: c.dport, vlans: tags}.bytes()
					got, out := run(t, p.prog(f), in)
					if got != c.want || (got == p.pass && !bytes.Equal(out, in)) {
						t.Errorf("%d tags, %v -> port %d: verdict %d (want %d), changed %v", len(tags), c.dst, c.dport, got, c.want, !bytes.Equal(out, in))
					}
				}
			}
			in := packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20002, vlans: []uint16{1, 2, 3}}.bytes()
			if got, _ := run(t, p.prog(f), in); got != p.pass {
				t.Errorf("three tags: verdict %d, want pass", got)
			}
		})
	}
}
