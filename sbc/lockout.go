package sbc

import (
	"sync"
	"time"
)

// userLockout counts failed authentications per user name (any name:
// whether it exists is not revealed), for each source address and in
// all: max failures of one name from one source within window, or
// perUser times as many from everywhere, lock the name out there (or
// everywhere) for 10 s, then twice as long at each lockout that follows
// within the window, up to ban. One source guessing locks the name out
// for itself only; a spread-out attack locks it out for all. A device
// registered over the flow a request comes on is not held to it (see
// authenticate): a stranger cannot lock the user's own phone out.
type userLockout struct {
	mu          sync.Mutex
	m           map[string]*userFailures // "user" and "user source"
	max         int
	window, ban time.Duration
}

type userFailures struct {
	n, locks     int
	first, until time.Time
}

const (
	maxLockoutNames = 100_000
	perUser         = 10 // a name's failures from everywhere, in maxes
)

func (l *userLockout) lockedOut(user, source string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{user, user + " " + source} {
		if f := l.m[k]; f != nil && now.Before(f.until) {
			return true
		}
	}
	return false
}

// fail counts a failure of user from source; true when it locks the
// user out (there or everywhere).
func (l *userLockout) fail(user, source string, now time.Time) bool {
	if l.max == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := l.count(user+" "+source, l.max, now)
	all := l.count(user, perUser*l.max, now)
	return pair || all
}

func (l *userLockout) count(key string, max int, now time.Time) bool {
	f := l.m[key]
	if f == nil {
		if len(l.m) >= maxLockoutNames {
			for k, g := range l.m { // forget what no longer locks anyone
				if now.After(g.until) && now.Sub(g.first) > l.window {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxLockoutNames {
				return false
			}
		}
		f = &userFailures{first: now}
		l.m[key] = f
	}
	if now.Sub(f.first) > l.window && now.After(f.until) {
		f.n, f.first = 0, now
		if now.Sub(f.until) > l.window {
			f.locks = 0
		}
	}
	f.n++
	if f.n >= max {
		f.n, f.first, f.until = 0, now, now.Add(min(l.ban, 10*time.Second<<min(f.locks, 20)))
		f.locks++
		return true
	}
	return false
}

// succeed clears user's count from source.
func (l *userLockout) succeed(user, source string) {
	l.mu.Lock()
	delete(l.m, user+" "+source)
	l.mu.Unlock()
}
