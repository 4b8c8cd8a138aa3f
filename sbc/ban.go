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
// A ban is put into effect as low as the host allows (the kernel fast
// path's deny map, else an nftables set: a Banner) and in the server
// itself, which drops a banned source's messages unread: a banned source
// gets no answer. Trunks and the SBC's own addresses are never banned. The authentication failures of
// registering devices are to join the same list.

// Banner puts bans into effect below the SIP stack.
type Banner interface {
	// Ban drops every packet from p; d is how long the ban lasts (Unban
	// comes then; a Banner may also expire it itself).
	Ban(p netip.Prefix, d time.Duration) error
	Unban(p netip.Prefix) error
}

// maxBanTracked bounds the sources whose failures are counted, and the
// bans (the kernel's deny map holds 65536 prefixes).
const maxBanTracked = 16384

// banList counts failures per source and holds the bans.
type banList struct {
	threshold int // 0: no bans
	window    time.Duration
	banTime   time.Duration
	protected []netip.Prefix // trunks' sources: never banned

	mu      sync.Mutex
	banner  Banner
	fails   map[netip.Prefix]failures
	until   map[netip.Prefix]time.Time // banned until
	n       atomic.Int32               // len(until), read without mu
	total   atomic.Uint64              // bans so far
	onBan   func(p netip.Prefix, failures int, enforced error)
	onUnban func(p netip.Prefix)
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
			b.pruneLocked(now)
			if len(b.fails) >= maxBanTracked {
				b.mu.Unlock()
				return false // too many sources failing at once: count none new
			}
		}
		f = failures{first: now}
	}
	f.n++
	if f.n < b.threshold || len(b.until) >= maxBanTracked {
		b.fails[key] = f
		b.mu.Unlock()
		return false
	}
	delete(b.fails, key)
	b.until[key] = now.Add(b.banTime)
	b.n.Store(int32(len(b.until)))
	b.total.Add(1)
	banner := b.banner
	b.mu.Unlock()
	var err error
	if banner != nil {
		err = banner.Ban(key, b.banTime)
	}
	if b.onBan != nil {
		b.onBan(key, f.n, err)
	}
	return true
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
	b.mu.Lock()
	_, ok := b.until[key]
	b.mu.Unlock()
	return ok
}

// expire lifts the bans that are over at now, and forgets stale failures.
func (b *banList) expire(now time.Time) {
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
	banner := b.banner
	b.mu.Unlock()
	for _, k := range over {
		if banner != nil {
			banner.Unban(k)
		}
		if b.onUnban != nil {
			b.onUnban(k)
		}
	}
}

// setBanner hands the bans in effect, and those to come, to banner.
func (b *banList) setBanner(banner Banner) {
	b.mu.Lock()
	b.banner = banner
	now := time.Now()
	bans := make(map[netip.Prefix]time.Duration, len(b.until))
	for k, t := range b.until {
		bans[k] = t.Sub(now)
	}
	b.mu.Unlock()
	for k, d := range bans {
		banner.Ban(k, d)
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
	b.onBan = func(p netip.Prefix, failures int, enforced error) {
		attrs := []any{"source", p.String(), "failures", failures, "window", b.window.String(), "ban_time", b.banTime.String()}
		if enforced != nil {
			attrs = append(attrs, "kernel_error", enforced.Error())
		}
		log.Warn("source banned: its packets are dropped unanswered", attrs...)
	}
	b.onUnban = func(p netip.Prefix) { log.Info("ban lifted", "source", p.String()) }
	return b
}

// SetBanner puts the bans into effect below the SIP stack too (the kernel
// fast path, nftables); without one the server drops banned sources'
// messages itself.
func (s *Server) SetBanner(b Banner) { s.bans.setBanner(b) }

// Bans is how many bans there were.
func (s *Server) Bans() uint64 { return s.bans.total.Load() }
