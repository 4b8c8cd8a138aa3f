package sbc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// banLog is a Banner that records what it was asked.
type banLog struct {
	mu  sync.Mutex
	ops []string
}

func (b *banLog) Ban(p netip.Prefix, d time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, fmt.Sprintf("ban %v %v", p, d))
	return nil
}

func (b *banLog) Unban(p netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, "unban "+p.String())
	return nil
}

// take returns what the banner was asked, once the list applied it.
func (b *banLog) take(l *banList) []string {
	l.apply()
	b.mu.Lock()
	defer b.mu.Unlock()
	ops := b.ops
	b.ops = nil
	return ops
}

func testBanList(threshold int) *banList {
	return &banList{threshold: threshold, window: time.Minute, banTime: 10 * time.Minute, wake: make(chan struct{}, 1),
		protected: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8:7::5/128")},
		fails:     map[netip.Prefix]failures{}, until: map[netip.Prefix]time.Time{}}
}

func TestBanList(t *testing.T) {
	b := testBanList(3)
	log := &banLog{}
	b.banner = log
	t0 := time.Unix(1e9, 0)
	src := netip.MustParseAddr("198.51.100.7")

	// Two failures, then the window passes: the count starts again.
	b.fail(src, t0)
	b.fail(src, t0.Add(time.Second))
	b.fail(src, t0.Add(2*time.Minute))
	b.fail(src, t0.Add(2*time.Minute+time.Second))
	if b.banned(src) || len(log.take(b)) != 0 {
		t.Fatal("banned with the failures spread over two windows")
	}
	b.fail(src, t0.Add(2*time.Minute+2*time.Second))
	if !b.banned(src) || b.banned(netip.MustParseAddr("198.51.100.8")) {
		t.Fatal("the third failure in a window did not ban the source alone")
	}
	if got, want := log.take(b), []string{"ban 198.51.100.7/32 10m0s"}; !slices.Equal(got, want) {
		t.Errorf("banner got %v, want %v", got, want)
	}
	// Failures while banned change nothing.
	b.fail(src, t0.Add(3*time.Minute))
	if len(log.take(b)) != 0 || b.total.Load() != 1 {
		t.Error("a banned source was banned again")
	}
	// Lifted when over, not before.
	b.expire(t0.Add(11 * time.Minute))
	if !b.banned(src) {
		t.Error("ban lifted early")
	}
	b.expire(t0.Add(13 * time.Minute))
	if b.banned(src) {
		t.Error("ban not lifted after ban_time")
	}
	if got, want := log.take(b), []string{"unban 198.51.100.7/32"}; !slices.Equal(got, want) {
		t.Errorf("banner got %v, want %v", got, want)
	}
}

// TestBanListIPv6ByPrefix: IPv6 sources are banned by their /64, v4-mapped
// ones as IPv4; a /64 holding a trunk's source is never banned, nor is a
// trunk's IPv4 source.
func TestBanListIPv6ByPrefix(t *testing.T) {
	b := testBanList(2)
	log := &banLog{}
	b.banner = log
	now := time.Now()
	b.fail(netip.MustParseAddr("2001:db8:1::1"), now)
	b.fail(netip.MustParseAddr("2001:db8:1::ffff"), now) // another host of the /64
	b.fail(netip.MustParseAddr("::ffff:198.51.100.9"), now)
	b.fail(netip.MustParseAddr("198.51.100.9"), now)
	for range 5 {
		b.fail(netip.MustParseAddr("2001:db8:7::1"), now) // the trunk's /64
		b.fail(netip.MustParseAddr("192.0.2.3"), now)     // the trunk's /28
	}
	want := []string{"ban 2001:db8:1::/64 10m0s", "ban 198.51.100.9/32 10m0s"}
	if got := log.take(b); !slices.Equal(got, want) {
		t.Errorf("banner got %v, want %v", got, want)
	}
	if !b.banned(netip.MustParseAddr("2001:db8:1::abcd")) {
		t.Error("another host of a banned /64 is not banned")
	}
}

// TestBanListBounded: the failures and bans stay within maxBanTracked
// under a flood of forged sources, and counting goes on: a scanner among
// them is still banned; a full ban list gives up the ban ending first.
func TestBanListBounded(t *testing.T) {
	b := testBanList(5)
	now := time.Now()
	for i := range maxBanTracked + 100 {
		b.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if len(b.fails) != maxBanTracked {
		t.Fatalf("%d sources tracked, want %d", len(b.fails), maxBanTracked)
	}
	// A scanner among the forged sources is still counted, and banned.
	scanner := netip.MustParseAddr("198.51.100.99")
	for range 5 {
		b.fail(scanner, now)
	}
	if !b.banned(scanner) {
		t.Error("a scanner went unbanned with the table full of forged sources")
	}
	b.expire(now.Add(2 * time.Minute))
	if len(b.fails) != 0 {
		t.Errorf("%d sources tracked after the window passed, want none", len(b.fails))
	}

	// With the bans full, a new one takes the place of the one ending
	// first, which is lifted below the SIP stack too.
	log := &banLog{}
	b.banner = log
	b.expire(now.Add(time.Hour)) // the scanner's ban is over
	for i := range maxBanTracked {
		for range 5 {
			b.fail(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), now.Add(time.Duration(i)*time.Millisecond))
		}
	}
	log.take(b)
	for range 5 {
		b.fail(netip.MustParseAddr("198.51.100.2"), now)
	}
	if len(b.until) != maxBanTracked || b.banned(netip.MustParseAddr("10.9.0.0")) || !b.banned(netip.MustParseAddr("10.9.0.1")) {
		t.Errorf("%d bans, 10.9.0.0 banned %v: want %d, the first made given up", len(b.until), b.banned(netip.MustParseAddr("10.9.0.0")), maxBanTracked)
	}
	if got, want := log.take(b), []string{"unban 10.9.0.0/32", "ban 198.51.100.2/32 10m0s"}; !slices.Equal(got, want) {
		t.Errorf("banner got %v, want %v", got, want)
	}
}

// TestBanListOff: threshold 0 bans nothing.
func TestBanListOff(t *testing.T) {
	b := testBanList(0)
	for range 100 {
		b.fail(netip.MustParseAddr("198.51.100.1"), time.Now())
	}
	if b.banned(netip.MustParseAddr("198.51.100.1")) || len(b.fails) != 0 {
		t.Error("banned or counted with bans off")
	}
}

// TestBannedSourceGetsNothing: a source that is no trunk gets 403s until
// its third request, which bans it and goes unanswered like every later
// one; its TCP connection is closed unanswered; a trunk is still served.
func TestBannedSourceGetsNothing(t *testing.T) {
	s := startServerWith(t, "", func(c *Config) { n := 3; c.SIP.BanThreshold = &n })
	udp, tcp := s.Addrs()[0].String(), s.Addrs()[1].String()
	const stranger = "127.0.0.66"
	const options = "OPTIONS sip:x@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:s@x>;tag=1\nTo: <sip:x@127.0.0.1>\n" +
		"Call-ID: ban\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"
	for i, want := range []string{"SIP/2.0 403 Forbidden", "SIP/2.0 403 Forbidden", "", ""} {
		if got, _ := exchange(t, stranger, udp, options); got != want {
			t.Errorf("request %d from the stranger: %q, want %q", i+1, got, want)
		}
	}
	if s.Bans() != 1 {
		t.Errorf("Bans = %d, want 1", s.Bans())
	}
	// TCP from the banned source: closed, unanswered.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(stranger)}, Timeout: time.Second}
	c, err := d.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(options, "{via}", "Via: SIP/2.0/TCP "+c.LocalAddr().String()+";branch=z9hG4bKt"), "\n", "\r\n")))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	// Closed as accepted: an EOF, or a reset when the request came after.
	if n, err := c.Read(make([]byte, 1024)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("TCP from the banned source: read %d bytes, %v; want the connection closed unanswered", n, err)
	}
	// A trunk still gets its answer.
	if got, _ := exchange(t, "127.0.0.1", udp, options); got != "SIP/2.0 200 OK" {
		t.Errorf("the trunk's OPTIONS: %q, want 200", got)
	}
}

// TestBanListExpiresInOrder: bans end in the order they were made, each
// lifted below the SIP stack once, whatever the number.
func TestBanListExpiresInOrder(t *testing.T) {
	b := testBanList(1)
	log := &banLog{}
	b.banner = log
	t0 := time.Unix(1e9, 0)
	for i := range 3000 {
		b.fail(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), t0.Add(time.Duration(i)*time.Second))
	}
	log.take(b)
	b.expire(t0.Add(10*time.Minute + 1499*time.Second)) // the first 1500 are over
	got := log.take(b)
	if len(got) != 1500 || got[0] != "unban 10.1.0.0/32" || got[1499] != "unban 10.1.5.219/32" || len(b.until) != 1500 {
		t.Fatalf("%d unbans (%v ... %v), %d bans left; want the first 1500 in order", len(got), got[0], got[len(got)-1], len(b.until))
	}
	b.expire(t0.Add(time.Hour))
	if got := log.take(b); len(got) != 1500 || b.n.Load() != 0 || len(b.order)-b.head != 0 {
		t.Fatalf("%d unbans, %d bans left", len(got), b.n.Load())
	}
}

// BenchmarkBanFailFull: a failure of a new source with the count table
// full costs O(1), not a scan of it (fail runs on the packet path).
func BenchmarkBanFailFull(b *testing.B) {
	l := testBanList(1000)
	now := time.Now()
	for i := range maxBanTracked {
		l.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	i := 0
	for b.Loop() {
		l.fail(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		i++
	}
}
