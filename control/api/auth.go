package api

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"sbc/control/store"
)

// Brute-force lockout: after lockoutFree failed logins from one source,
// each further failure locks it out for twice as long as the last, from
// one second up to lockoutMax; a success clears it.
const (
	lockoutFree    = 5
	lockoutMax     = 15 * time.Minute
	lockoutSources = 100_000 // sources remembered at most
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

// locked tells how long src must still wait.
func (l *lockout) locked(src string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.m[src]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

func (l *lockout) fail(src string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[src]
	if f == nil {
		if len(l.m) >= lockoutSources {
			l.evict(now)
		}
		f = &failures{}
		l.m[src] = f
	}
	if now.Sub(f.last) > lockoutMax {
		f.n = 0 // an old streak is forgotten
	}
	f.n++
	f.last = now
	if f.n > lockoutFree {
		d := time.Second << min(f.n-lockoutFree-1, 20)
		f.until = now.Add(min(d, lockoutMax))
	}
}

func (l *lockout) succeed(src string) {
	l.mu.Lock()
	delete(l.m, src)
	l.mu.Unlock()
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

func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate checks HTTP Basic credentials: an account's SID and auth
// token, or an operator's. A source locked out gets 429 without its
// credentials being looked at.
func (a *API) authenticate(r *http.Request) (caller, *apiError) {
	src, now := source(r), a.now()
	if wait := a.auth.locked(src, now); wait > 0 {
		secs := int(wait/time.Second) + 1
		return caller{}, &apiError{http.StatusTooManyRequests, 20429, "too many failed logins from " + src + "; retry in " + strconv.Itoa(secs) + " s"}
	}
	user, pass, ok := r.BasicAuth()
	if ok {
		if who, good := a.check(r, user, pass); good {
			a.auth.succeed(src)
			return who, nil
		}
		a.auth.fail(src, now)
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
