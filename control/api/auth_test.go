package api

import (
	"net/http"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	login := func(l *lockout, src, user string, ok bool) time.Duration {
		w := l.attempt(src, user, now)
		if w == 0 {
			l.done(src, user, ok, now)
		}
		return w
	}

	// The attacker's own good credential, between guesses at another
	// account, does not reset the count against that account.
	l := newLockout()
	for i := range pairFree + 1 {
		if w := login(l, "192.0.2.1", "ACvictim", false); w != 0 {
			t.Fatalf("guess %d locked out (%v)", i+1, w)
		}
		if w := login(l, "192.0.2.1", "ACmine", true); w != 0 {
			t.Fatalf("own credential locked out (%v)", w)
		}
	}
	if w := login(l, "192.0.2.1", "ACvictim", true); w != time.Second {
		t.Fatalf("after %d failures: wait %v; want 1s, even with the right token", pairFree+1, w)
	}
	// The pair is locked, not the source: another user logs in.
	if w := login(l, "192.0.2.1", "ACother", true); w != 0 {
		t.Fatalf("another user from the source: wait %v", w)
	}
	// Doubling: the next failure after the lock ends locks for 2 s.
	now = now.Add(time.Second)
	login(l, "192.0.2.1", "ACvictim", false)
	if w := login(l, "192.0.2.1", "ACvictim", true); w != 2*time.Second {
		t.Fatalf("second lock: %v; want 2s", w)
	}
	// A success after the lock clears the pair.
	now = now.Add(2 * time.Second)
	login(l, "192.0.2.1", "ACvictim", true)
	if w := login(l, "192.0.2.1", "ACvictim", false); w != 0 {
		t.Fatalf("after a success: %v", w)
	}

	// Cycling through users: the source is locked after sourceFree,
	// whatever the user, and an IPv6 /64 is one source.
	l = newLockout()
	for i := range sourceFree + 1 {
		src := source(&http.Request{RemoteAddr: "[2001:db8:1:2::" + string(rune('a'+i%6)) + "]:443"})
		if w := login(l, src, "AC"+string(rune('a'+i)), false); w != 0 {
			t.Fatalf("guess %d: %v", i, w)
		}
	}
	if w := login(l, source(&http.Request{RemoteAddr: "[2001:db8:1:2:8000::1]:1"}), "ACnew", true); w != time.Second {
		t.Fatalf("same /64, new user: %v; want the source locked for 1s", w)
	}
	if w := login(l, source(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:1"}), "ACnew", true); w != 0 {
		t.Fatalf("another /64: %v", w)
	}

	// Parallel: a credential that never failed is not held back; once a
	// pair has failed, its attempts in flight count toward the limit.
	l = newLockout()
	for i := range 50 {
		if w := l.attempt("192.0.2.9", "ACbusy", now); w != 0 {
			t.Fatalf("parallel request %d of a good credential refused (%v)", i, w)
		}
	}
	login(l, "192.0.2.9", "ACvictim", false)
	started := 0
	for range 50 {
		if l.attempt("192.0.2.9", "ACvictim", now) == 0 {
			started++
		}
	}
	if started != pairFree {
		t.Fatalf("%d of 50 parallel guesses after a failure checked; want %d", started, pairFree)
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
