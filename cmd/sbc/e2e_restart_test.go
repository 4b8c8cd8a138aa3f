//go:build linux

package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/netlab"
)

// TestE2EFastPathRestart kills the daemon (SIGKILL), or has it hand over
// (SIGUSR2, an upgrade), during a call whose media the kernel forwards, and
// starts it again. The call was set up by sipp across the netlab; RTP from
// the carrier's side is echoed by the callee's sipp and counted where it
// was sent from. While no daemon runs the echoes keep coming (the pinned
// program and maps forward them); the restarted daemon takes the call over
// from its state file, and the caller's BYE, sent to the new daemon, ends
// the call on both sides.
func TestE2EFastPathRestart(t *testing.T) {
	t.Run("kill", func(t *testing.T) {
		testRestart(t, true, func(d *sbcDaemon) {
			d.cmd.Process.Kill()
			<-d.done
		})
	})
	t.Run("hand-over", func(t *testing.T) {
		testRestart(t, false, func(d *sbcDaemon) {
			d.signal(t, syscall.SIGUSR2)
			<-d.done
			if d.code != 0 || len(d.find(func(l logLine) bool { return strings.HasPrefix(l.msg(), "handing over") })) != 1 {
				t.Errorf("SIGUSR2: exit %d; want 0 and a \"handing over\" line", d.code)
			}
		})
	})
}

// testRestart runs the test with stopFirst ending the first daemon; with
// failedStart a daemon that cannot listen (its SIP port taken) comes
// between, which takes the call over and must exit leaving it whole.
func testRestart(t *testing.T, failedStart bool, stopFirst func(*sbcDaemon)) {
	requireRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount a bpf filesystem: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	pins := filepath.Join(mnt, "sbc") // the root is refused
	state := t.TempDir()

	lab := netlab.New(t)
	cfg := labConfig(lab)
	cfg.PinPath, cfg.StateDir = pins, state
	first := startLabDaemon(t, lab, cfg)
	carrier, customer := lab.CarrierLink.Leaf.IPv4, lab.CustomerLink.Leaf.IPv4
	moved := func(scenario string) string { return labScenario(t, scenario, cfg.IP, carrier, customer) }
	uas := startSipp(t, sippOpts{name: "uas", scenario: moved("uas_basic.xml"), ip: customer.String(), port: 5080,
		mediaPort: 6000, calls: 1, timeout: 40 * time.Second, extra: []string{"-rtp_echo"}, netns: lab.Customer,
		// The BYE comes after the kill, a failed start and the restart:
		// its wait is not the daemon's to meet in 10 s.
		recvTimeout: 30 * time.Second})
	uac := startSipp(t, sippOpts{name: "uac", scenario: moved("uac_basic.xml"), ip: carrier.String(), port: 5060,
		mediaPort: 6000, calls: 1, timeout: 35 * time.Second, pause: 9 * time.Second,
		remote: netip.AddrPortFrom(cfg.IP, 5060).String(), netns: lab.Carrier})

	// The call's state file says which port faces the caller.
	var port int
	deadline := time.Now().Add(10 * time.Second)
	for port == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		files, _ := filepath.Glob(filepath.Join(state, "*.json"))
		if len(files) != 1 {
			continue
		}
		var rec struct {
			Streams []struct{ Ports [2]int } `json:"streams"`
		}
		if b, err := os.ReadFile(files[0]); err == nil && json.Unmarshal(b, &rec) == nil && len(rec.Streams) == 1 {
			port = rec.Streams[0].Ports[0]
		}
	}
	if port == 0 {
		t.Fatal("no call state file with the call's media ports")
	}

	// RTP from the carrier's side, 50 packets/s; the echoes counted.
	conn, err := lab.Carrier.ListenUDP(netip.AddrPortFrom(carrier, 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoes := &arrivals{}
	go echoes.count(conn)
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.IP, uint16(port)))
		pkt := make([]byte, 172)
		pkt[0] = 0x80
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint16(pkt[2:], uint16(n))
			binary.BigEndian.PutUint32(pkt[4:], uint32(160*n))
			binary.BigEndian.PutUint32(pkt[8:], 0x5bc0ffee)
			conn.WriteToUDP(pkt, dst)
			n++
		}
	}()

	time.Sleep(1500 * time.Millisecond) // latched both ways, handed to the kernel
	if echoes.since(time.Time{}) == 0 {
		t.Fatal("no RTP echo before the kill: the call's media does not cross")
	}
	stopFirst(first)
	killed := time.Now()
	time.Sleep(2 * time.Second)
	during := echoes.between(killed, time.Now())
	t.Logf("echoes in the 2 s without a daemon: %d (50/s sent)", during)
	if during < 80 {
		t.Errorf("%d RTP echoes in the 2 s after the kill; want about 100: the kernel keeps forwarding the call", during)
	}

	if failedStart {
		startFailing(t, lab, cfg)
		failed := time.Now()
		time.Sleep(time.Second)
		if n := echoes.between(failed, time.Now()); n < 40 {
			t.Errorf("%d RTP echoes in the second after a daemon failed to start; want about 50: it must leave the call's kernel entries", n)
		}
	}

	second := startLabDaemon(t, lab, cfg)
	restarted := time.Now()
	taken := second.find(func(l logLine) bool { return l.msg() == "call taken over from a previous run" })
	if len(taken) != 1 {
		t.Fatalf("the restarted daemon logged %d \"call taken over\" lines; want 1", len(taken))
	}
	// The caller hangs up after its pause: to the new daemon, which ends
	// both legs.
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := second.callsEnded(t, 1)[0]
	if end.str("ended_by") != "caller" {
		t.Errorf("call ended %v; want by the caller's BYE", end)
	}
	if k, _ := end.num("a_to_b_kernel_packets"); k < 100 {
		t.Errorf("a_to_b_kernel_packets %v; want the kernel's count over the whole call (> 100)", k)
	}
	if after := echoes.between(restarted, time.Now()); after == 0 {
		t.Error("no RTP echo after the restart")
	}
	close(stop)
	<-sent
	if files, _ := filepath.Glob(filepath.Join(state, "*.json")); len(files) != 0 {
		t.Errorf("call state left after the call ended: %v", files)
	}

	// A clean stop with no call left removes the pins: nothing stays
	// attached.
	second.stop(t)
	left, _ := os.ReadDir(pins)
	for _, e := range left {
		if filepath.Ext(e.Name()) != ".debug" {
			t.Errorf("pinned after a clean stop: %s", e.Name())
		}
	}
}

// startFailing runs a daemon with cfg whose SIP port is taken: it takes
// the calls over, fails to listen and exits keeping them.
func startFailing(t *testing.T, lab *netlab.Lab, cfg sbctest.DaemonConfig) {
	t.Helper()
	taken, err := lab.SBC.ListenUDP(netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if cfg.Control.DataDir == "" {
		cfg.Control.DataDir = dataDir(t, false)
	}
	path := filepath.Join(t.TempDir(), "sbc.toml")
	if err := os.WriteFile(path, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := lab.SBC.Command(buildSBC(t), "run", "-config", path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFail ||
		!strings.Contains(string(out), "exiting with the calls of the previous run left for the next one") {
		t.Fatalf("a daemon with its SIP port taken: %v; want exit %d leaving the calls\n%s", err, exitFail, lastBytes(string(out), 4000))
	}
}

// arrivals records when datagrams arrive on a socket.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) count(conn *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			return
		}
		a.mu.Lock()
		a.times = append(a.times, time.Now())
		a.mu.Unlock()
	}
}

func (a *arrivals) between(from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, t := range a.times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

func (a *arrivals) since(from time.Time) int { return a.between(from, time.Now().Add(time.Hour)) }
