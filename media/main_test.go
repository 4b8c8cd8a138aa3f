package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// reader must end on Session.Close / Relay.Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPortMin..testPortMax is the loopback range of these tests, below the
// ephemeral ports (32768-60999) the peers' sockets get: a steered relay
// would take the datagrams of a peer on an open media port.
const (
	testPortMin = 26000
	testPortMax = 26999
)

func testConfig() Config {
	return Config{BindIP: "127.0.0.1", PortMin: testPortMin, PortMax: testPortMax, Timeout: time.Minute,
		Steering: SteeringOff}
}

// eachTransport runs body as the subtests "sockets" (one socket per port)
// and "steered"; newTestRelay takes the transport from the subtest's name.
// Steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW), as make test
// runs in CI.
func eachTransport(t *testing.T, body func(t *testing.T)) {
	t.Run("sockets", body)
	t.Run("steered", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("steering needs root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)")
		}
		body(t)
	})
}

// newTestRelay starts a Relay on loopback, logging into the test log, and
// checks on cleanup that closing it returned every port.
func newTestRelay(t testing.TB, mutate func(*Config)) *Relay {
	t.Helper()
	cfg := testConfig()
	if strings.HasSuffix(t.Name(), "/steered") {
		cfg.Steering = SteeringOn
	}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.SetDefaults()
	r, err := NewRelay(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Relay.Close: %v", err)
		}
		if free, total := r.FreePairs(), r.TotalPairs(); free != total {
			t.Errorf("after Relay.Close FreePairs = %d, want TotalPairs = %d", free, total)
		}
	})
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// syncBuffer is a log sink safe for the concurrent writers of a session.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newSessionStream opens a session with one stream, closed on cleanup.
func newSessionStream(t testing.TB, r *Relay) (*Session, *Stream) {
	t.Helper()
	s := r.NewSession(t.Name())
	t.Cleanup(s.Close)
	st, err := s.AddStream()
	if err != nil {
		t.Fatalf("AddStream: %v", err)
	}
	return s, st
}

// peer is a SIP endpoint's media socket on loopback.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen peer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c}
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// sendTo sends b to the SBC's loopback port.
func (p *peer) sendTo(port int, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, loopback(port)); err != nil {
		p.t.Fatalf("peer send: %v", err)
	}
}

// recv waits for one datagram.
func (p *peer) recv() ([]byte, netip.AddrPort) {
	p.t.Helper()
	buf := make([]byte, readBuffer)
	p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, src, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("peer %v recv: %v", p.addr(), err)
	}
	return buf[:n], src
}

// expect waits for b and checks it came from the SBC's port from.
func (p *peer) expect(b []byte, from int) {
	p.t.Helper()
	got, src := p.recv()
	if !bytes.Equal(got, b) {
		p.t.Fatalf("peer %v got %x, want %x", p.addr(), got, b)
	}
	if src != loopback(from) {
		p.t.Fatalf("peer %v got packet from %v, want from SBC port %v", p.addr(), src, loopback(from))
	}
}

// expectNothing checks that no datagram arrives for a moment.
func (p *peer) expectNothing() {
	p.t.Helper()
	buf := make([]byte, readBuffer)
	p.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, src, err := p.conn.ReadFromUDPAddrPort(buf)
	if err == nil {
		p.t.Fatalf("peer %v got unexpected %x from %v", p.addr(), buf[:n], src)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		p.t.Fatalf("peer %v recv: %v", p.addr(), err)
	}
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// rtpPacket is a PCMU packet with a payload of n bytes.
func rtpPacket(seq uint16, n int) []byte {
	b := make([]byte, 12+n)
	b[0] = 0x80 // V=2
	b[1] = 0    // PT 0, PCMU
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], 0x11223344)
	for i := 12; i < len(b); i++ {
		b[i] = byte(seq)
	}
	return b
}

// rtcpPacket is a receiver report (PT 201) with one report block, tagged
// so that packets can be told apart.
func rtcpPacket(tag byte) []byte {
	b := make([]byte, 32)
	b[0] = 0x81 // V=2, RC=1
	b[1] = 201  // RR
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)/4-1))
	binary.BigEndian.PutUint32(b[4:], 0x11223344)
	b[31] = tag
	return b
}

// waitFor polls cond: counters are bumped just after the send a peer sees.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitStats waits until st's stats equal want exactly.
func waitStats(t testing.TB, st *Stream, want Stats) {
	t.Helper()
	var got Stats
	deadline := time.Now().Add(2 * time.Second)
	for got = st.Stats(); got != want; got = st.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats:\n got %+v\nwant %+v", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// slogText logs everything as text into w.
func slogText(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
