//go:build linux

package ladder

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and ')'.
	line := "4242 (kamailio) x) S 1 4240 4240 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 1 0 100 1000 10 18446744073709551615\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if got != (procStat{state: 'S', pgrp: 4240, cpu: 1750 * time.Millisecond}) {
		t.Errorf("parseStat = %+v; want state S, pgrp 4240, cpu 1.75s", got)
	}
	for _, bad := range []string{"4242 kamailio S 1", "4242 (k) S 1 2", "4242 (k) S 1 x 0 0 0 0 0 0 0 0 a b"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestUDPBound(t *testing.T) {
	text := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  101: 2A00007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1234 2 0000000000000000 0\n" +
		"  102: 00000000:A410 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1235 2 0000000000000000 0\n"
	got, err := udpBound([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.42:5060"), netip.MustParseAddrPort("0.0.0.0:42000")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("udpBound = %v; want %v", got, want)
	}
	if _, err := udpBound([]byte("header\n 1: 7F:13C4 x\n")); err == nil {
		t.Error("udpBound accepted a short address")
	}

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 41)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := waitBound(t.Context(), c.LocalAddr().(*net.UDPAddr).AddrPort(), 2*time.Second, nil); err != nil {
		t.Errorf("waitBound on a bound socket: %v", err)
	}
}

// TestProcStopKillsGroup: stop ends the leader with the signal, kills what
// of its group ignores it, and returns once the group's output is closed.
func TestProcStopKillsGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", `(trap "" TERM; exec sleep 60) & echo started; exec sleep 60`)
	started := make(chan struct{}, 1)
	p, err := startProc("test", cmd, func(line string) {
		if line == "started" {
			started <- struct{}{}
		}
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cpu, err := groupCPU([]int{p.pid()})
	if err != nil || cpu < 0 {
		t.Fatalf("groupCPU = %v, %v", cpu, err)
	}
	if !p.stop(syscall.SIGTERM, 5*time.Second) {
		t.Error("the leader did not end on SIGTERM")
	}
	// SIGKILL is delivered asynchronously: give the kernel a moment to end
	// the group's last member.
	n := liveInGroup(t, p.pid())
	for deadline := time.Now().Add(time.Second); n != 0 && time.Now().Before(deadline); n = liveInGroup(t, p.pid()) {
		time.Sleep(10 * time.Millisecond)
	}
	if n != 0 {
		t.Errorf("%d processes left in the group a second after stop", n)
	}
	if p.stop(syscall.SIGTERM, time.Second) != true {
		t.Error("a second stop changed the outcome")
	}
}

// liveInGroup counts the processes of group pgid that are not zombies.
func liveInGroup(t *testing.T, pgid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := parseStat(b); err == nil && st.pgrp == pgid && st.state != 'Z' {
			n++
		}
	}
	return n
}
