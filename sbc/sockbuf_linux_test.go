package sbc

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSIPUDPListenerHasALargeReceiveBuffer(t *testing.T) {
	s := startServer(t, "")
	want := udpReceiveBuffer
	if os.Geteuid() != 0 { // SO_RCVBUF alone is capped by net.core.rmem_max
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Fatal(err)
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		want = min(want, max)
	}
	rc, err := s.udpConn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	rc.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	// The kernel reports twice the room asked for (socket(7)).
	if got != 2*want {
		t.Errorf("SO_RCVBUF of the SIP UDP listener = %d, want %d (uid %d)", got, 2*want, os.Geteuid())
	}
}
