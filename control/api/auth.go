package api

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"sbc/control/store"
)

// Brute-force lockout. Failed logins are counted per source (an IPv4
// address, an IPv6 /64) and user: after pairFree failures of one user
// from one source, or sourceFree of any users from it, each further
// failure locks the pair or the source out for twice as long as the last,
// from one second up to lockoutMax. A success clears its own pair only
// (an attacker's own good credential does not reset the count against
// another). Once a pair has failed, its attempts in flight count too, so
// parallel guesses at one user cannot slip past the limit; a credential
// that never failed is not held to one request at a time.
const (
	pairFree       = 5
	sourceFree     = 20
	lockoutMax     = 15 * time.Minute
	lockoutSources = 100_000 // streaks remembered at most
)

type lockout struct {
	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n       int // failed, in the current streak
	pending int // attempts being checked
	until   time.Time
	last    time.Time
}

func newLockout() *lockout { return &lockout{m: map[string]*failures{}} }

// waitFor is how long key is locked out.
func (l *lockout) waitFor(key string, now time.Time) time.Duration {
	if f := l.m[key]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// refused tells how long a pair must wait: locked out, or with as many
// attempts in flight as could take it past pairFree.
func (l *lockout) refused(pair string, now time.Time) time.Duration {
	if w := l.waitFor(pair, now); w > 0 {
		return w
	}
	if f := l.m[pair]; f != nil && f.n > 0 && f.pending > 0 && now.Sub(f.last) <= lockoutMax && f.n+f.pending > pairFree {
		return time.Second
	}
	return 0
}

// attempt starts a login of user from src, or tells how long the source
// or the pair must wait. A started attempt ends with done.
func (l *lockout) attempt(src, user string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := pairKey(src, user)
	if w := max(l.waitFor(src, now), l.refused(pair, now)); w > 0 {
		return w
	}
	l.entry(src, now).pending++
	l.entry(pair, now).pending++
	return 0
}

// waiting is how long src must wait, for a request without credentials.
func (l *lockout) waiting(src string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitFor(src, now)
}

// done ends an attempt: a success clears its pair's streak, a failure
// counts against the pair and the source.
func (l *lockout) done(src, user string, ok bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := pairKey(src, user)
	for _, k := range []struct {
		key  string
		free int
	}{{src, sourceFree}, {pair, pairFree}} {
		f := l.entry(k.key, now)
		f.pending = max(0, f.pending-1)
		if ok {
			if k.key == pair {
				f.n = 0
			}
			if f.n == 0 && f.pending == 0 {
				delete(l.m, k.key)
			}
			continue
		}
		if now.Sub(f.last) > lockoutMax {
			f.n = 0 // an old streak is forgotten
		}
		f.n++
		f.last = now
		if f.n > k.free {
			d := time.Second << min(f.n-k.free-1, 20)
			f.until = now.Add(min(d, lockoutMax))
		}
	}
}

// pairKey is the key of user's streak from src; user is cut to a SID's
// length (a megabyte-long user name does not take a megabyte).
func pairKey(src, user string) string {
	if len(user) > 40 {
		user = user[:40]
	}
	return src + " " + user
}

func (l *lockout) entry(key string, now time.Time) *failures {
	f := l.m[key]
	if f == nil {
		if len(l.m) >= lockoutSources {
			l.evict(now)
		}
		f = &failures{}
		l.m[key] = f
	}
	return f
}

// evict forgets streaks no longer locking anyone out, or, if all still
// do, half of them: memory stays bounded under a spread-out attack.
func (l *lockout) evict(now time.Time) {
	for k, f := range l.m {
		if now.After(f.until) && f.pending == 0 {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < lockoutSources/2 {
			break
		}
		delete(l.m, k)
	}
}

// source is the lockout's view of a client: its IPv4 address, or the /64
// of its IPv6 address (one host's share of addresses).
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// authenticate checks HTTP Basic credentials: an account's SID and auth
// token, or an operator's. A source locked out gets 429 without its
// credentials being looked at.
func (a *API) authenticate(r *http.Request) (caller, *apiError) {
	src, now := source(r), a.now()
	user, pass, ok := r.BasicAuth()
	var wait time.Duration
	if ok {
		wait = a.auth.attempt(src, user, now)
	} else {
		wait = a.auth.waiting(src, now)
	}
	if wait > 0 {
		secs := int(wait/time.Second) + 1
		return caller{}, &apiError{http.StatusTooManyRequests, 20429, "too many failed logins from " + src + "; retry in " + strconv.Itoa(secs) + " s"}
	}
	if !ok {
		return caller{}, &apiError{http.StatusUnauthorized, 20003, "Authenticate"}
	}
	who, good := a.check(r, user, pass)
	a.auth.done(src, user, good, a.now())
	if !good {
		a.log.Warn("api authentication failed", "source", src, "user", user)
		return caller{}, &apiError{http.StatusUnauthorized, 20003, "Authenticate"}
	}
	return who, nil
}

func (a *API) check(r *http.Request, user, pass string) (caller, bool) {
	ctx := r.Context()
	switch {
	case store.ValidSID(store.PrefixAccount, user):
		acct, err := a.p.Store().Account(ctx, user)
		if err != nil || acct.Status == store.StatusClosed || !store.TokenMatches(pass, acct.TokenHash) {
			return caller{}, false
		}
		return caller{sid: user, account: &acct}, true
	case store.ValidSID(store.PrefixAdmin, user):
		admins, err := a.p.Store().Admins(ctx)
		if err != nil {
			return caller{}, false
		}
		for _, ad := range admins {
			if ad.SID == user && store.TokenMatches(pass, ad.TokenHash) {
				return caller{admin: true, sid: user}, true
			}
		}
	}
	return caller{}, false
}
