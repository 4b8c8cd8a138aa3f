package sbc

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Sources that keep failing admission are banned for a while: a request
// from a source that is no trunk (answered 403), or a malformed datagram
// from one (dropped), counts as a failure; sip.ban_threshold failures
// within sip.ban_window ban the source for sip.ban_time. An IPv4 source is
// banned by address, an IPv6 one by its /64 (one host holds a whole /64).
// A ban drops what the source sends to the SIP ports, nothing else: UDP
// sources can be forged, and a forged ban must not cut a host off. It is
// put into effect as low as the host allows (the kernel fast path, else an
// nftables set: a Banner) and in the server itself, which drops a banned
// source's messages unread: a banned source gets no answer. Trunks and the
// SBC's own addresses are never banned. Customer devices are served from
// anywhere: over UDP, failures anyone could forge (a stranger's request,
// garbage, a scanner's User-Agent) do not count against a host where
// devices are registered (failUnproven), and failed digest logins count
// only when they answer a nonce sent to that address.

// Banner puts bans into effect below the SIP stack.
type Banner interface {
	// Ban drops what p sends to the SIP ports; d is how long the ban
	// lasts (Unban comes then; a Banner may also expire it itself).
	Ban(p netip.Prefix, d time.Duration) error
	Unban(p netip.Prefix) error
}

// maxBanTracked bounds the sources whose failures are counted, and the
// bans (the kernel's map holds 65536 prefixes). A flood of forged sources
// that fills either evicts entries (a failure count at random, the ban
// ending first) rather than stop the counting; both in O(1), since fail
// runs on the packet path.
const maxBanTracked = 16384

// maxBanOps bounds the Banner's queue. Past it new bans are applied by the
// server alone (it drops their messages itself); unbans always queue.
const maxBanOps = 4 * maxBanTracked

// banList counts failures per source and holds the bans.
type banList struct {
	threshold int // 0: no bans
	window    time.Duration
	banTime   time.Duration
	protected []netip.Prefix // trunks' and our own addresses: never banned
	banner    Banner         // set before the server listens; nil: the server alone
	onBan     func(p netip.Prefix, failures int, err error)
	onUnban   func(p netip.Prefix, err error)

	mu    sync.RWMutex
	fails map[netip.Prefix]failures
	until map[netip.Prefix]time.Time // banned until
	// order is the bans in the order they were made, which, all lasting
	// banTime, is the order they end: order[head:] are live.
	order []netip.Prefix
	head  int
	n     atomic.Int32  // len(until), read without mu
	total atomic.Uint64 // bans so far

	// The Banner's calls are queued, in the order of the changes, and made
	// by the server's reaper (apply): nftables or a BPF map are never
	// waited for under mu, on which banned() and the packet path depend.
	opsMu   sync.Mutex
	ops     []banOp
	skipped uint64        // bans not queued: the queue was full
	wake    chan struct{} // a queued op wants the reaper soon
}

type failures struct {
	first time.Time
	n     int
}

type banOp struct {
	p        netip.Prefix
	ban      bool
	failures int
}

// banKey is the prefix a source is banned by.
func banKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// isProtected tells whether key is (in) a trunk's or our own prefix.
func (b *banList) isProtected(key netip.Prefix) bool {
	for _, p := range b.protected {
		if p.Overlaps(key) {
			return true
		}
	}
	return false
}

// fail counts a failure of src at now, and bans it at the threshold; true:
// src is banned (the failing message goes unanswered too). O(1).
func (b *banList) fail(src netip.Addr, now time.Time) bool {
	if b.threshold <= 0 || !src.IsValid() {
		return false
	}
	key := banKey(src)
	if b.isProtected(key) {
		return false
	}
	b.mu.Lock()
	if _, banned := b.until[key]; banned {
		b.mu.Unlock()
		return true // its messages still in flight when the ban came
	}
	f, ok := b.fails[key]
	if !ok || now.Sub(f.first) > b.window {
		if !ok && len(b.fails) >= maxBanTracked {
			for k := range b.fails { // one at random; expire prunes the stale
				delete(b.fails, k)
				break
			}
		}
		f = failures{first: now}
	}
	f.n++
	if f.n < b.threshold {
		b.fails[key] = f
		b.mu.Unlock()
		return false
	}
	delete(b.fails, key)
	var evicted netip.Prefix
	if len(b.until) >= maxBanTracked {
		evicted = b.popLocked()
	}
	b.until[key] = now.Add(b.banTime)
	b.order = append(b.order, key)
	b.n.Store(int32(len(b.until)))
	b.total.Add(1)
	b.mu.Unlock()

	b.opsMu.Lock()
	if evicted.IsValid() {
		b.ops = append(b.ops, banOp{p: evicted})
	}
	if len(b.ops) < maxBanOps {
		b.ops = append(b.ops, banOp{p: key, ban: true, failures: f.n})
	} else {
		b.skipped++
	}
	b.opsMu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// popLocked ends the oldest ban, which is the one ending first, and
// returns it.
func (b *banList) popLocked() netip.Prefix {
	k := b.order[b.head]
	b.order[b.head] = netip.Prefix{}
	b.head++
	if b.head > len(b.order)/2 && b.head > 1024 { // the dead front goes
		b.order = append(b.order[:0], b.order[b.head:]...)
		b.head = 0
	}
	delete(b.until, k)
	return k
}

// banned tells whether src is banned; cheap while nothing is.
func (b *banList) banned(src netip.Addr) bool {
	if b.n.Load() == 0 {
		return false
	}
	key := banKey(src)
	b.mu.RLock()
	_, ok := b.until[key]
	b.mu.RUnlock()
	return ok
}

// expire lifts the bans that are over at now and forgets stale failures;
// the reaper calls it, then apply.
func (b *banList) expire(now time.Time) {
	if b.threshold <= 0 {
		return
	}
	var over []netip.Prefix
	b.mu.Lock()
	for b.head < len(b.order) && !now.Before(b.until[b.order[b.head]]) {
		over = append(over, b.popLocked())
	}
	b.n.Store(int32(len(b.until)))
	for k, f := range b.fails {
		if now.Sub(f.first) > b.window {
			delete(b.fails, k)
		}
	}
	b.mu.Unlock()
	if len(over) == 0 {
		return
	}
	b.opsMu.Lock()
	for _, k := range over {
		b.ops = append(b.ops, banOp{p: k})
	}
	b.opsMu.Unlock()
}

// apply makes the queued Banner calls, in order, and logs them; one
// goroutine (the reaper) calls it.
func (b *banList) apply() {
	b.opsMu.Lock()
	ops, skipped := b.ops, b.skipped
	b.ops, b.skipped = nil, 0
	b.opsMu.Unlock()
	for _, op := range ops {
		var err error
		switch {
		case op.ban && b.banner != nil:
			err = b.banner.Ban(op.p, b.banTime)
		case !op.ban && b.banner != nil:
			err = b.banner.Unban(op.p)
		}
		if op.ban && b.onBan != nil {
			b.onBan(op.p, op.failures, err)
		}
		if !op.ban && b.onUnban != nil {
			b.onUnban(op.p, err)
		}
	}
	if skipped > 0 && b.onBan != nil {
		b.onBan(netip.Prefix{}, int(skipped), errBanQueueFull)
	}
}

var errBanQueueFull = errors.New("more bans at once than the kernel is told of: the server drops their messages itself")

// newBanList is the server's ban list, logging bans to log.
func newBanList(cfg *Config, log *slog.Logger) *banList {
	b := &banList{window: cfg.SIP.BanWindow, banTime: cfg.SIP.BanTime, wake: make(chan struct{}, 1),
		fails: map[netip.Prefix]failures{}, until: map[netip.Prefix]time.Time{}}
	if cfg.SIP.BanThreshold != nil {
		b.threshold = *cfg.SIP.BanThreshold
	}
	for _, t := range cfg.Trunks {
		b.protected = append(b.protected, t.prefixes...)
	}
	// Nor the SBC's own addresses (its own packets looping back).
	own := []string{cfg.SIP.PublicIP, cfg.Media.BindIP, cfg.Media.PublicIP}
	for _, l := range cfg.SIP.Listen {
		if ap, err := netip.ParseAddrPort(l.Address); err == nil {
			own = append(own, ap.Addr().String())
		}
	}
	for _, a := range own {
		if ip, err := netip.ParseAddr(a); err == nil && !ip.IsUnspecified() {
			ip = ip.Unmap()
			b.protected = append(b.protected, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	b.onBan = func(p netip.Prefix, failures int, err error) {
		if !p.IsValid() {
			log.Warn("bans not put into effect below the SIP stack", "bans", failures, "error", err)
			return
		}
		attrs := []any{"source", p.String(), "failures", failures, "window", b.window.String(), "ban_time", b.banTime.String()}
		if err != nil {
			attrs = append(attrs, "kernel_error", err.Error())
		}
		log.Warn("source banned: what it sends to the SIP ports is dropped unanswered", attrs...)
	}
	b.onUnban = func(p netip.Prefix, err error) {
		if err != nil {
			log.Warn("ban lifted; the kernel's could not be", "source", p.String(), "error", err)
			return
		}
		log.Info("ban lifted", "source", p.String())
	}
	return b
}

// SetBanner puts the bans into effect below the SIP stack too (the kernel
// fast path, nftables); without one the server drops banned sources'
// messages itself. Call it before Listen.
func (s *Server) SetBanner(b Banner) { s.bans.banner = b }

// Bans is how many bans there were.
func (s *Server) Bans() uint64 { return s.bans.total.Load() }
