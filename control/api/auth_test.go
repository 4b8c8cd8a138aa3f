package api

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	fail := func(l *lockout, src, user string) time.Duration { return l.attempt(src, user, now) }

	// The attacker's own good credential, between guesses at another
	// account, does not reset the count against that account.
	l := newLockout()
	for i := range pairFree {
		if w := fail(l, "192.0.2.1", "ACvictim"); w != 0 {
			t.Fatalf("guess %d locked out (%v) before %d failures", i+1, w, pairFree)
		}
		if l.attempt("192.0.2.1", "ACmine", now) != 0 {
			t.Fatal("own credential locked out")
		}
		l.succeed("192.0.2.1", "ACmine")
	}
	if w := fail(l, "192.0.2.1", "ACvictim"); w != 0 {
		t.Fatalf("guess %d: %v", pairFree+1, w)
	}
	if w := fail(l, "192.0.2.1", "ACvictim"); w != time.Second {
		t.Fatalf("after %d failures: wait %v; want 1s", pairFree+1, w)
	}
	// The pair is locked, not the source: another user logs in.
	if w := l.attempt("192.0.2.1", "ACother", now); w != 0 {
		t.Fatalf("another user from the source: wait %v", w)
	}
	// Doubling: each failure after the lock ends waits twice as long.
	now = now.Add(time.Second)
	fail(l, "192.0.2.1", "ACvictim")
	if w := fail(l, "192.0.2.1", "ACvictim"); w != 2*time.Second {
		t.Fatalf("second lock: %v; want 2s", w)
	}

	// Cycling through users: the source is locked after sourceFree,
	// whatever the user, and an IPv6 /64 is one source.
	l = newLockout()
	for i := range sourceFree {
		src := "2001:db8:1:2::" + string(rune('a'+i%6))
		if w := fail(l, source(&http.Request{RemoteAddr: "[" + src + "]:443"}), "AC"+string(rune('a'+i))); w != 0 {
			t.Fatalf("guess %d: %v", i, w)
		}
	}
	if w := fail(l, source(&http.Request{RemoteAddr: "[2001:db8:1:2::ffff]:1"}), "ACz"); w != 0 {
		t.Fatalf("guess %d: %v", sourceFree+1, w)
	}
	if w := fail(l, source(&http.Request{RemoteAddr: "[2001:db8:1:2:8000::1]:1"}), "ACnew"); w != time.Second {
		t.Fatalf("same /64, new user: %v; want the source locked for 1s", w)
	}
	if w := fail(l, source(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:1"}), "ACnew"); w != 0 {
		t.Fatalf("another /64: %v", w)
	}

	// Parallel guesses: no more than pairFree+1 get to check credentials.
	l = newLockout()
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fail(l, "192.0.2.9", "ACvictim") == 0 {
				mu.Lock()
				checked++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if checked != pairFree+1 {
		t.Fatalf("%d of 50 parallel guesses checked; want %d", checked, pairFree+1)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5555":               "192.0.2.7",
		"[::ffff:192.0.2.7]:1":         "192.0.2.7",
		"[2001:db8:aa:bb:1:2:3:4]:443": "2001:db8:aa:bb::/64",
		"[fe80::1%eth0]:443":           "fe80::/64",
		"not an address":               "not an address",
	} {
		if got := source(&http.Request{RemoteAddr: in}); got != want {
			t.Errorf("source(%q) = %q; want %q", in, got, want)
		}
	}
}
