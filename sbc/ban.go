package sbc

import (
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
// SBC's own addresses are never banned; today no other source is served
// either, so a forged ban costs nothing. The authentication failures of
// registering devices are to join the same list.

// Banner puts bans into effect below the SIP stack.
type Banner interface {
	// Ban drops what p sends to the SIP ports; d is how long the ban
	// lasts (Unban comes then; a Banner may also expire it itself).
	Ban(p netip.Prefix, d time.Duration) error
	Unban(p netip.Prefix) error
}

// maxBanTracked bounds the sources whose failures are counted, and the
// bans (the kernel's map holds 65536 prefixes). A flood of forged sources
// that fills either evicts entries (failures at random, bans soonest to
// end first) rather than stop the counting.
const maxBanTracked = 16384

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
	n     atomic.Int32               // len(until), read without mu
	total atomic.Uint64              // bans so far
	// opMu orders the Banner's calls as the changes they follow: taken
	// before mu is let go, held while the Banner works.
	opMu sync.Mutex
}

type failures struct {
	first time.Time
	n     int
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

// fail counts a failure of src at now, and bans it at the threshold; true:
// src is banned (the failing message goes unanswered too).
func (b *banList) fail(src netip.Addr, now time.Time) bool {
	if b.threshold <= 0 || !src.IsValid() {
		return false
	}
	key := banKey(src)
	for _, p := range b.protected {
		if p.Overlaps(key) {
			return false
		}
	}
	b.mu.Lock()
	if _, banned := b.until[key]; banned {
		b.mu.Unlock()
		return true // its messages still in flight when the ban came
	}
	f, ok := b.fails[key]
	if !ok || now.Sub(f.first) > b.window {
		if !ok && len(b.fails) >= maxBanTracked {
			b.evictFailureLocked(now)
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
		evicted = b.evictBanLocked()
	}
	b.until[key] = now.Add(b.banTime)
	b.n.Store(int32(len(b.until)))
	b.total.Add(1)
	b.opMu.Lock()
	b.mu.Unlock()
	defer b.opMu.Unlock()
	if evicted.IsValid() {
		b.unban(evicted)
	}
	var err error
	if b.banner != nil {
		err = b.banner.Ban(key, b.banTime)
	}
	if b.onBan != nil {
		b.onBan(key, f.n, err)
	}
	return true
}

// evictFailureLocked makes room for one more source: the failures whose
// window has passed go, else one at random.
func (b *banList) evictFailureLocked(now time.Time) {
	b.pruneLocked(now)
	for k := range b.fails {
		if len(b.fails) < maxBanTracked {
			return
		}
		delete(b.fails, k)
	}
}

// evictBanLocked drops the ban that ends first and returns it.
func (b *banList) evictBanLocked() netip.Prefix {
	var first netip.Prefix
	var end time.Time
	for k, t := range b.until {
		if !first.IsValid() || t.Before(end) {
			first, end = k, t
		}
	}
	delete(b.until, first)
	return first
}

// pruneLocked forgets the failures whose window has passed.
func (b *banList) pruneLocked(now time.Time) {
	for k, f := range b.fails {
		if now.Sub(f.first) > b.window {
			delete(b.fails, k)
		}
	}
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

// expire lifts the bans that are over at now, and forgets stale failures.
func (b *banList) expire(now time.Time) {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	var over []netip.Prefix
	for k, t := range b.until {
		if !now.Before(t) {
			over = append(over, k)
			delete(b.until, k)
		}
	}
	b.n.Store(int32(len(b.until)))
	b.pruneLocked(now)
	b.opMu.Lock()
	b.mu.Unlock()
	defer b.opMu.Unlock()
	for _, k := range over {
		b.unban(k)
	}
}

// unban lifts k below the SIP stack and says so; under opMu.
func (b *banList) unban(k netip.Prefix) {
	var err error
	if b.banner != nil {
		err = b.banner.Unban(k)
	}
	if b.onUnban != nil {
		b.onUnban(k, err)
	}
}

// newBanList is the server's ban list, logging bans to log.
func newBanList(cfg *Config, log *slog.Logger) *banList {
	b := &banList{window: cfg.SIP.BanWindow, banTime: cfg.SIP.BanTime,
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
