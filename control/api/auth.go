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
// another). Each attempt is counted before its credentials are checked,
// so parallel guesses do not slip past the count.
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
	n     int
	until time.Time // locked out until
	last  time.Time
}

func newLockout() *lockout { return &lockout{m: map[string]*failures{}} }

// wait is how long key must still wait.
func (l *lockout) wait(key string, now time.Time) time.Duration {
	if f := l.m[key]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// attempt counts a login of user from src as failed unless it proves
// good (succeed), or tells how long the source or the pair must wait.
func (l *lockout) attempt(src, user string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := src + " " + user
	if w := max(l.wait(src, now), l.wait(pair, now)); w > 0 {
		return w
	}
	l.count(src, sourceFree, now)
	l.count(pair, pairFree, now)
	return 0
}

func (l *lockout) count(key string, free int, now time.Time) {
	f := l.m[key]
	if f == nil {
		if len(l.m) >= lockoutSources {
			l.evict(now)
		}
		f = &failures{}
		l.m[key] = f
	}
	if now.Sub(f.last) > lockoutMax {
		f.n = 0 // an old streak is forgotten
	}
	f.n++
	f.last = now
	if f.n > free {
		d := time.Second << min(f.n-free-1, 20)
		f.until = now.Add(min(d, lockoutMax))
	}
}

// succeed takes back the attempt's count: the pair's streak is cleared,
// the source's loses this one attempt.
func (l *lockout) succeed(src, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, src+" "+user)
	if f := l.m[src]; f != nil && f.n > 0 {
		f.n--
	}
}

// evict forgets streaks no longer locking anyone out, or, if all still
// do, half of them: memory stays bounded under a spread-out attack.
func (l *lockout) evict(now time.Time) {
	for k, f := range l.m {
		if now.After(f.until) {
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
		a.auth.mu.Lock()
		wait = a.auth.wait(src, now)
		a.auth.mu.Unlock()
	}
	if wait > 0 {
		secs := int(wait/time.Second) + 1
		return caller{}, &apiError{http.StatusTooManyRequests, 20429, "too many failed logins from " + src + "; retry in " + strconv.Itoa(secs) + " s"}
	}
	if ok {
		if who, good := a.check(r, user, pass); good {
			a.auth.succeed(src, user)
			return who, nil
		}
		a.log.Warn("api authentication failed", "source", src, "user", user)
	}
	return caller{}, &apiError{http.StatusUnauthorized, 20003, "Authenticate"}
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
