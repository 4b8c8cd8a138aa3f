//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The harness measured against targets whose answer is known: nothing in
// between (no loss), a relay that drops every 10th packet (10 % loss), a
// target that never answers, one that dies.

func testConfig(calls int, d time.Duration) runConfig {
	return runConfig{
		calls: calls, duration: d, rate: 200, setupTimeout: 5 * time.Second, inFlight: 64,
		senders: 2, receivers: 2, drain: 300 * time.Millisecond,
		uacIP: defaultUACIP, uasIP: defaultUASIP, sipLog: slog.New(slog.DiscardHandler),
	}
}

// checkCounts checks what must hold for any run of calls calls of d.
func checkCounts(t *testing.T, res *result, calls int, d time.Duration) {
	t.Helper()
	wantSent := uint64(2 * calls * int(d/tick)) // 2 streams per call, 50 pps
	if res.Sent != wantSent || res.SendErrors != 0 {
		t.Errorf("sent %d (send errors %d); want %d: %d calls × 2 streams × %d packets", res.Sent, res.SendErrors, wantSent, calls, d/tick)
	}
	if res.Received+res.Lost != res.Sent {
		t.Errorf("received %d + lost %d != sent %d", res.Received, res.Lost, res.Sent)
	}
	if res.Misrouted != 0 || res.Foreign != 0 || res.Duplicates != 0 || res.Unstamped != 0 {
		t.Errorf("misrouted %d, foreign %d, duplicates %d, unstamped %d; want none", res.Misrouted, res.Foreign, res.Duplicates, res.Unstamped)
	}
	if math.Abs(res.MediaS-d.Seconds()) > 0.1 {
		t.Errorf("media phase %.3fs; want %v", res.MediaS, d)
	}
	if res.LatencyUs.P50 <= 0 || res.LatencyUs.P50 > res.LatencyUs.P99 || res.LatencyUs.P99 > res.LatencyUs.Max {
		t.Errorf("latency p50 %v p99 %v max %v: want 0 < p50 <= p99 <= max", res.LatencyUs.P50, res.LatencyUs.P99, res.LatencyUs.Max)
	}
}

// TestDirect runs the generator both ways: a write per packet, and batches
// of 8 on a raw socket (root only; without CAP_NET_RAW it writes too).
func TestDirect(t *testing.T) {
	for _, batch := range []int{0, 8} {
		t.Run(fmt.Sprintf("send-batch=%d", batch), func(t *testing.T) {
			testDirect(t, batch)
		})
	}
}

func testDirect(t *testing.T, batch int) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const calls, d = 20, 2 * time.Second
	cfg := testConfig(calls, d)
	cfg.sendBatch = batch
	res, err := runOnce(t.Context(), cfg, &directTarget{})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, res, calls, d)
	if res.Lost != 0 || res.LossPct != 0 || res.WorstStreamLossPct != 0 || res.StarvedStreams != 0 {
		t.Errorf("direct: lost %d (%.3f %%, worst stream %.2f %%, %d starved); want none",
			res.Lost, res.LossPct, res.WorstStreamLossPct, res.StarvedStreams)
	}
	if want := float64(calls * 2 * 50); math.Abs(res.RelayedPPS-want) > 0.05*want {
		t.Errorf("relayed %.0f pps; want about %.0f", res.RelayedPPS, want)
	}
	if res.Relay != nil || res.Counters != nil {
		t.Errorf("direct has no process and no counters; got %+v %+v", res.Relay, res.Counters)
	}
	canRaw := openRaw()
	if canRaw >= 0 {
		syscall.Close(canRaw)
	}
	if want := batch > 0 && canRaw >= 0; res.Gen.Batched != want {
		t.Errorf("batched sends = %v; want %v", res.Gen.Batched, want)
	}
}

func TestLossThroughADroppingRelay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const calls, d = 20, 2 * time.Second
	relay := &dropRelay{every: 10}
	res, err := runOnce(t.Context(), testConfig(calls, d), relay)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, res, calls, d)
	// Each stream sends 100 packets and loses exactly its 10th, 20th, ...
	if math.Abs(res.LossPct-10) > 0.5 {
		t.Errorf("loss %.3f %%; want 10 %% ± 0.5", res.LossPct)
	}
	// Evenly: every stream lost its tenth, none more, none starved.
	if res.WorstStreamLossPct < 9 || res.WorstStreamLossPct > 11 || res.StarvedStreams != 0 {
		t.Errorf("worst stream lost %.2f %%, %d streams starved; want about 10 %% and none",
			res.WorstStreamLossPct, res.StarvedStreams)
	}
	c := res.Counters
	if c == nil || res.Lost != c.Dropped || res.Received != c.Forwarded {
		t.Fatalf("harness: lost %d received %d; relay: %+v; want them equal", res.Lost, res.Received, c)
	}
	if res.Pass {
		t.Error("10 % loss passed")
	}
}

func TestSetupTimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// A SIP address where nobody answers.
	hole, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	cfg := testConfig(3, time.Second)
	cfg.setupTimeout = time.Second
	start := time.Now()
	_, err = runOnce(t.Context(), cfg, &fakeTarget{sip: hole.LocalAddr().(*net.UDPAddr).AddrPort()})
	if err == nil || !strings.Contains(err.Error(), "no final answer to the INVITE within 1s") {
		t.Fatalf("err = %v; want the setup timeout named", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %v; want about the 1s setup timeout", took)
	}
}

func TestTargetDies(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := &fakeTarget{dieAfter: 300 * time.Millisecond}
	start := time.Now()
	_, err := runOnce(t.Context(), testConfig(5, 5*time.Second), f)
	if !errors.Is(err, errTargetDied) {
		t.Fatalf("err = %v; want the target's death named", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("noticed after %v; want at once, not at the end of the 5s media phase", took)
	}
	if !f.stopped {
		t.Error("the dead target was not stopped")
	}
}

// fakeTarget routes SIP to sip (default: straight to the UAS, like direct)
// and, with dieAfter, pretends its process died that long after start.
type fakeTarget struct {
	sip      netip.AddrPort
	dieAfter time.Duration
	dead     chan struct{}
	timer    *time.Timer
	stopped  bool
}

func (*fakeTarget) name() string { return "fake" }
func (f *fakeTarget) start(_ context.Context, e env) error {
	if !f.sip.IsValid() {
		f.sip = e.uasAddr
	}
	f.dead = make(chan struct{})
	if f.dieAfter > 0 {
		f.timer = time.AfterFunc(f.dieAfter, func() { close(f.dead) })
	}
	return nil
}
func (f *fakeTarget) sipAddr() netip.AddrPort { return f.sip }
func (*fakeTarget) pid() int                  { return 0 }
func (f *fakeTarget) died() <-chan struct{}   { return f.dead }
func (f *fakeTarget) stop(context.Context) (relayReport, error) {
	if f.timer != nil {
		f.timer.Stop()
	}
	f.stopped = true
	return relayReport{}, nil
}
