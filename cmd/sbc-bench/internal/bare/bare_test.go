//go:build linux

package bare

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
)

func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		t.Skip("clang-14 not installed (apt-get install clang-14 llvm-14 libbpf-dev): the committed objects are not checked")
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("libbpf-dev not installed: the committed objects are not checked")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "tool", "bpf2go", "-cc", "clang-14",
		"-cflags", "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu",
		"-target", "bpfel", "-output-dir", dir, "bare", "src/bare.c")
	cmd.Env = append(os.Environ(), "GOPACKAGE=bare")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go: %v\n%s", err, out)
	}
	for _, f := range []string{"bare_bpfel.o", "bare_bpfel.go"} {
		fresh, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s is stale: run make generate and commit it", f)
		}
	}
}

// frame is an Ethernet/IPv4/UDP frame with valid checksums.
func frame(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip)))
	udp := b[34:]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	binary.BigEndian.PutUint16(udp[6:], udpSum(ip, udp))
	return b
}

func sum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// udpSum is the UDP checksum over the pseudo-header of ip and udp (whose
// checksum field is counted as it is).
func udpSum(ip, udp []byte) uint16 {
	pseudo := append(append([]byte{}, ip[12:20]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	c := ^fold(sum(pseudo) + sum(udp))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// TestForward runs the program on a crafted frame: a port with an entry is
// rewritten (addresses, ports, MACs, both checksums still valid) and sent
// out of the entry's interface; another port is passed.
func TestForward(t *testing.T) {
	f, err := Load()
	if err != nil {
		t.Fatalf("load (root and a BPF-capable kernel are required): %v", err)
	}
	defer f.Close()
	e := Entry{Src: netip.MustParseAddrPort("192.0.2.1:30002"), Dst: netip.MustParseAddrPort("203.0.113.2:6000"),
		Ifindex: 1, SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	if err := f.Put(30000, e); err != nil {
		t.Fatal(err)
	}
	run := func(in []byte) (uint32, []byte) {
		out := make([]byte, len(in))
		ret, err := f.objs.XdpBare.Run(&ebpf.RunOptions{Data: in, DataOut: out})
		if err != nil {
			t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
		}
		return ret, out
	}
	payload := bytes.Repeat([]byte{0x80, 8, 1, 2}, 43)
	in := frame(netip.MustParseAddrPort("198.51.100.2:4000"), netip.MustParseAddrPort("192.0.2.1:30000"), payload)
	ret, out := run(in)
	const xdpPass, xdpTX = 2, 3
	if ret != xdpTX { // the test runner's ingress interface is lo, index 1, as the entry's
		t.Fatalf("verdict %d, want XDP_TX (%d)", ret, xdpTX)
	}
	want := frame(netip.MustParseAddrPort("192.0.2.1:30002"), netip.MustParseAddrPort("203.0.113.2:6000"), payload)
	copy(want[0:6], e.DstMAC)
	copy(want[6:12], e.SrcMAC)
	if !bytes.Equal(out, want) {
		t.Errorf("rewritten frame\n got %x\nwant %x", out, want)
	}
	other := frame(netip.MustParseAddrPort("198.51.100.2:4000"), netip.MustParseAddrPort("192.0.2.1:30004"), payload)
	if ret, out := run(other); ret != xdpPass || !bytes.Equal(out, other) {
		t.Errorf("a port without an entry: verdict %d, changed %v; want pass, unchanged", ret, !bytes.Equal(out, other))
	}
	if err := f.Delete(30000); err != nil {
		t.Fatal(err)
	}
	if ret, _ := run(in); ret != xdpPass {
		t.Errorf("after Delete: verdict %d, want pass", ret)
	}
}
