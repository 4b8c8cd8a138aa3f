package bpf

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGeneratedUpToDate rebuilds the objects from src/ and compares them with
// the committed ones, so a change to the C source cannot land without
// `make generate`. It needs clang-14 and libbpf-dev.
func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		t.Skip("clang-14 not installed (apt-get install clang-14 llvm-14 libbpf-dev): the committed objects are not checked")
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("libbpf-dev not installed: the committed objects are not checked")
	}
	for _, ident := range []string{"steer", "fastpath"} {
		dir := t.TempDir()
		cmd := exec.Command("go", "tool", "bpf2go", "-cc", "clang-14",
			"-cflags", "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu",
			"-target", "bpfel", "-output-dir", dir, ident, "src/"+ident+".c")
		cmd.Env = append(os.Environ(), "GOPACKAGE=bpf")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bpf2go: %v\n%s", err, out)
		}
		for _, f := range []string{ident + "_bpfel.o", ident + "_bpfel.go"} {
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
}

func TestAttachSteeringRejectsBadConfig(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		name string
		cfg  SteerConfig
		want string
	}{
		{"empty range", SteerConfig{PortMin: 2000, PortMax: 1000, IP: ip, Sockets: []int{3}}, "bad port range"},
		{"ipv6", SteerConfig{PortMin: 1000, PortMax: 2000, IP: netip.MustParseAddr("::1"), Sockets: []int{3}}, "not an IPv4"},
		{"no sockets", SteerConfig{PortMin: 1000, PortMax: 2000, IP: ip}, "0 sockets"},
	} {
		if _, err := AttachSteering(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// TestSteering: an open port's datagrams reach the steering socket whatever
// it is bound to; a shut port is back to the regular lookup.
func TestSteering(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sk_lookup needs root (CAP_BPF, CAP_NET_ADMIN)")
	}
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	raw, err := sock.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	const port = 27500
	s, err := AttachSteering(SteerConfig{PortMin: port, PortMax: port + 9, IP: netip.MustParseAddr("127.0.0.1"), Sockets: []int{fd}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	second, err := AttachSteering(SteerConfig{PortMin: port, PortMax: port + 9, IP: netip.MustParseAddr("127.0.0.1"), Sockets: []int{fd}})
	if err != nil {
		t.Fatal(err)
	}
	if second.Others() < 1 {
		t.Errorf("second program: Others() = %d, want at least 1 (the first)", second.Others())
	}
	second.Close()
	if err := s.Open(port+3, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(port+10, 0); err == nil {
		t.Error("Open of a port out of the range: no error")
	}
	if err := s.Open(port+3, 1); err == nil {
		t.Error("Open on socket 1 of 1: no error")
	}
	send := func(p int) {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello"))
	}
	send(port + 3)
	buf := make([]byte, 16)
	sock.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err := sock.ReadFromUDP(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("open port: read %q, %v; want hello", buf[:n], err)
	}
	if err := s.Shut(port + 3); err != nil {
		t.Fatal(err)
	}
	send(port + 3)
	sock.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := sock.ReadFromUDP(buf); err == nil {
		t.Errorf("shut port still steered: read %q", buf[:n])
	}
}
