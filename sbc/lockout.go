package sbc

import (
	"sync"
	"time"
)

// userLockout counts failed authentications per user name (any name:
// whether it exists is not revealed) and locks a name out after max of
// them within window: for 10 s, then twice as long at each lockout that
// follows within the window, up to ban. A device already registered
// over the flow a request comes on is not held to it (see authenticate):
// a stranger guessing cannot lock the user's own phone out.
type userLockout struct {
	mu          sync.Mutex
	m           map[string]*userFailures
	max         int
	window, ban time.Duration
}

type userFailures struct {
	n, locks     int
	first, until time.Time
}

const maxLockoutNames = 100_000

func (l *userLockout) lockedOut(user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[user]
	return f != nil && now.Before(f.until)
}

// fail counts a failure; true when it locks the user out.
func (l *userLockout) fail(user string, now time.Time) bool {
	if l.max == 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[user]
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
		l.m[user] = f
	}
	if now.Sub(f.first) > l.window && now.After(f.until) {
		f.n, f.first = 0, now
		if now.Sub(f.until) > l.window {
			f.locks = 0
		}
	}
	f.n++
	if f.n >= l.max {
		f.n, f.first, f.until = 0, now, now.Add(min(l.ban, 10*time.Second<<min(f.locks, 20)))
		f.locks++
		return true
	}
	return false
}

func (l *userLockout) succeed(user string) {
	l.mu.Lock()
	delete(l.m, user)
	l.mu.Unlock()
}
