package digest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testRealm  = "sbc.example.net"
	testURI    = "sip:sbc.example.net"
	testTTL    = 5 * time.Minute
	testClient = "192.0.2.1" // the address challenges go to
)

// testPasswords are the users the tests know; md5only has no SHA-256 HA1.
var testPasswords = map[string]string{"alice": "secret", "md5only": "old"}

func lookup(username string) (ha1MD5, ha1SHA256 string, ok bool) {
	password, ok := testPasswords[username]
	ha1MD5, _ = HA1("MD5", username, testRealm, password)
	if username != "md5only" {
		ha1SHA256, _ = HA1("SHA-256", username, testRealm, password)
	}
	return ha1MD5, ha1SHA256, ok
}

// newTest returns a Challenger whose clock is *clock.
func newTest() (*Challenger, *time.Time) {
	c := New(testRealm, []byte("test secret"), testTTL)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return clock }
	return c, &clock
}

// answer is what a client sends for challenge: credentials for username
// and password, for a REGISTER of testURI, with count nc. edit changes
// the parameters before the response is computed on them.
func answer(t testing.TB, challenge, username, password string, nc uint32, edit func(Params)) string {
	t.Helper()
	ch, err := Parse(challenge)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{"username": username, "realm": ch["realm"], "nonce": ch["nonce"], "uri": testURI,
		"algorithm": ch["algorithm"], "qop": "auth", "nc": fmt.Sprintf("%08x", nc), "cnonce": "0a4f113b"}
	if edit != nil {
		edit(p)
	}
	ha1, err := HA1(p["algorithm"], username, p["realm"], password)
	if err == nil {
		p["response"], err = Response(ha1, "REGISTER", p)
	}
	if err != nil {
		p["response"] = "0123456789abcdef0123456789abcdef" // what it is does not matter
	}
	return format(p)
}

func TestChallenge(t *testing.T) {
	c, _ := newTest()
	for _, stale := range []bool{false, true} {
		got := c.Challenge(stale, testClient)
		if len(got) != 2 {
			t.Fatalf("Challenge(%v) = %q; want 2 values", stale, got)
		}
		for i, alg := range []string{"SHA-256", "MD5"} { // RFC 8760 §2.4: preferred first
			p, err := Parse(got[i])
			if err != nil {
				t.Fatalf("Parse(%q): %v", got[i], err)
			}
			if p["realm"] != testRealm || p["algorithm"] != alg || p["qop"] != "auth" || p["nonce"] == "" {
				t.Errorf("Challenge(%v)[%d] = %q", stale, i, got[i])
			}
			if _, ok := p["stale"]; ok != stale || stale && p["stale"] != "true" {
				t.Errorf("Challenge(%v)[%d] = %q: wrong stale", stale, i, got[i])
			}
		}
	}
	if a, b := c.Challenge(false, testClient), c.Challenge(false, testClient); a[0] == b[0] {
		t.Errorf("two challenges with the same nonce: %q", a[0])
	}
}

func TestVerify(t *testing.T) {
	other := New(testRealm, []byte("other secret"), testTTL)
	tests := []struct {
		name               string
		md5                bool // answer the MD5 challenge, not the SHA-256 one
		username, password string
		edit               func(Params) // before the response is computed
		tamper             func(Params) // after
		requestURI         string       // testURI if empty
		client             string       // testClient if empty: where it comes from
		wantOK, wantStale  bool
		wantUnproven       bool
		wantReason         string
	}{
		{name: "SHA-256", username: "alice", password: "secret", wantOK: true},
		{name: "MD5", md5: true, username: "alice", password: "secret", wantOK: true},
		{name: "MD5 implied", md5: true, username: "alice", password: "secret", wantOK: true,
			edit: func(p Params) { delete(p, "algorithm") }},
		{name: "algorithm case", username: "alice", password: "secret", wantOK: true,
			edit: func(p Params) { p["algorithm"] = "sha-256" }},
		{name: "uppercase response", username: "alice", password: "secret", wantOK: true,
			tamper: func(p Params) { p["response"] = strings.ToUpper(p["response"]) }},
		{name: "URI padded", username: "alice", password: "secret", wantOK: true, requestURI: " " + testURI + " "},
		{name: "wrong password", username: "alice", password: "guess", wantReason: "wrong password"},
		{name: "unknown user", username: "mallory", password: "secret", wantReason: "unknown user"},
		{name: "no SHA-256 HA1", username: "md5only", password: "old", wantReason: "no HA1 for algorithm"},
		{name: "MD5 only", md5: true, username: "md5only", password: "old", wantOK: true},
		{name: "response of another method", username: "alice", password: "secret", wantReason: "wrong password",
			tamper: func(p Params) { p["response"], _ = Response(mustHA1("SHA-256", "alice", "secret"), "INVITE", p) }},
		{name: "URI mismatch", username: "alice", password: "secret", requestURI: "sip:other.example.net",
			wantReason: "uri mismatch"},
		{name: "realm mismatch", username: "alice", password: "secret", wantReason: "realm mismatch",
			edit: func(p Params) { p["realm"] = "other.example.net" }},
		{name: "no qop", username: "alice", password: "secret", wantReason: "qop auth required",
			edit: func(p Params) { delete(p, "qop"); delete(p, "nc"); delete(p, "cnonce") }},
		{name: "qop auth-int", username: "alice", password: "secret", wantReason: "qop auth required",
			edit: func(p Params) { p["qop"] = "auth-int" }},
		{name: "MD5-sess", username: "alice", password: "secret", wantReason: "unsupported algorithm",
			edit: func(p Params) { p["algorithm"] = "MD5-sess" }},
		{name: "SHA-256-sess", username: "alice", password: "secret", wantReason: "unsupported algorithm",
			edit: func(p Params) { p["algorithm"] = "SHA-256-sess" }},
		{name: "SHA-512-256", username: "alice", password: "secret", wantReason: "unsupported algorithm",
			edit: func(p Params) { p["algorithm"] = "SHA-512-256" }},
		{name: "no cnonce", username: "alice", password: "secret", wantReason: "malformed header",
			edit: func(p Params) { delete(p, "cnonce") }},
		{name: "short nc", username: "alice", password: "secret", wantReason: "malformed header",
			edit: func(p Params) { p["nc"] = "1" }},
		{name: "nc not hex", username: "alice", password: "secret", wantReason: "malformed header",
			edit: func(p Params) { p["nc"] = "0000000g" }},
		{name: "no response", username: "alice", password: "secret", wantReason: "malformed header",
			tamper: func(p Params) { delete(p, "response") }},
		{name: "tampered nonce", username: "alice", password: "secret", wantReason: "unknown nonce", wantStale: true, wantUnproven: true,
			edit: func(p Params) { p["nonce"] = flip(p["nonce"], 3) }},
		{name: "tampered nonce time", username: "alice", password: "secret", wantReason: "unknown nonce", wantStale: true, wantUnproven: true,
			edit: func(p Params) { p["nonce"] = flip(p["nonce"], 0) }},
		{name: "truncated nonce", username: "alice", password: "secret", wantReason: "unknown nonce", wantStale: true, wantUnproven: true,
			edit: func(p Params) { p["nonce"] = p["nonce"][:40] }},
		{name: "nonce of another secret", username: "alice", password: "secret", wantReason: "unknown nonce", wantStale: true, wantUnproven: true,
			edit: func(p Params) { p["nonce"] = other.newNonce(testClient) }},
		// Sent to another address: a forger who asked for a nonce from
		// its own address and sends from its victim's.
		{name: "nonce of another client", username: "alice", password: "secret", client: "192.0.2.2",
			wantReason: "unknown nonce", wantStale: true, wantUnproven: true},
		{name: "no nonce", username: "alice", password: "secret", wantReason: "malformed header", wantUnproven: true,
			tamper: func(p Params) { delete(p, "nonce") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTest()
			ch := c.Challenge(false, testClient)[0]
			if tt.md5 {
				ch = c.Challenge(false, testClient)[1]
			}
			header := answer(t, ch, tt.username, tt.password, 1, tt.edit)
			if tt.tamper != nil {
				p, _ := Parse(header)
				tt.tamper(p)
				header = format(p)
			}
			uri := tt.requestURI
			if uri == "" {
				uri = testURI
			}
			client := tt.client
			if client == "" {
				client = testClient
			}
			want := Result{OK: tt.wantOK, Stale: tt.wantStale, Unproven: tt.wantUnproven, Username: tt.username, Reason: tt.wantReason}
			if got := c.Verify("REGISTER", uri, header, client, lookup); got != want {
				t.Errorf("Verify(%q) = %+v; want %+v", header, got, want)
			}
		})
	}
}

func mustHA1(algorithm, username, password string) string {
	ha1, err := HA1(algorithm, username, testRealm, password)
	if err != nil {
		panic(err)
	}
	return ha1
}

// flip changes the character at i of a base64url string to another
// base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestVerifyMalformed(t *testing.T) {
	c, _ := newTest()
	for _, header := range []string{"", "Basic YWxpY2U6c2VjcmV0", `Digest username="alice", username="bob"`,
		`Digest username="alice"`, "Digest " + strings.Repeat("a", MaxHeaderLen)} {
		if got := c.Verify("REGISTER", testURI, header, testClient, lookup); got.OK || got.Reason != "malformed header" {
			t.Errorf("Verify(%.40q) = %+v; want malformed header", header, got)
		}
	}
}

// A peer must not learn whether a user exists: only Reason tells an
// unknown user from a wrong password, fresh nonce or expired.
func TestUnknownUserLikeWrongPassword(t *testing.T) {
	for _, age := range []time.Duration{0, testTTL + time.Second} {
		c, clock := newTest()
		chs := c.Challenge(false, testClient)
		*clock = clock.Add(age)
		for i, ch := range chs {
			wrong := c.Verify("REGISTER", testURI, answer(t, ch, "alice", "guess", 1, nil), testClient, lookup)
			unknown := c.Verify("REGISTER", testURI, answer(t, ch, "mallory", "secret", 1, nil), testClient, lookup)
			if wrong.OK || wrong.Stale || wrong.OK != unknown.OK || wrong.Stale != unknown.Stale {
				t.Errorf("age %v, challenge %d: wrong password %+v, unknown user %+v", age, i, wrong, unknown)
			}
		}
	}
}

// The HA1 an unknown user is checked against lets nobody in, even one
// who knows it.
func TestDummyHA1(t *testing.T) {
	c, _ := newTest()
	for _, ch := range c.Challenge(false, testClient) {
		p, _ := Parse(answer(t, ch, "mallory", "", 1, nil))
		ha1 := c.dummy[:32]
		if p["algorithm"] == "SHA-256" {
			ha1 = c.dummy
		}
		p["response"], _ = Response(ha1, "REGISTER", p)
		if got := c.Verify("REGISTER", testURI, format(p), testClient, lookup); got.OK || got.Reason != "unknown user" {
			t.Errorf("%s: %+v; want unknown user", p["algorithm"], got)
		}
	}
}

func TestStale(t *testing.T) {
	tests := []struct {
		name     string
		age      time.Duration
		password string
		want     Result
	}{
		{"fresh", testTTL, "secret", Result{OK: true, Username: "alice"}},
		{"expired", testTTL + time.Nanosecond, "secret", Result{Stale: true, Username: "alice", Reason: "stale nonce"}},
		{"expired, wrong password", testTTL + time.Nanosecond, "guess", Result{Username: "alice", Reason: "wrong password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clock := newTest()
			ch := c.Challenge(false, testClient)[0]
			*clock = clock.Add(tt.age)
			if got := c.Verify("REGISTER", testURI, answer(t, ch, "alice", tt.password, 1, nil), testClient, lookup); got != tt.want {
				t.Errorf("Verify = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// Steps verified in order against one nonce.
func TestNonceCount(t *testing.T) {
	c, _ := newTest()
	ch := c.Challenge(false, testClient)[0]
	steps := []struct {
		nc         uint32
		password   string
		wantReason string // "" for OK
	}{
		{1, "secret", ""},
		{1, "secret", "replayed nonce count"},
		{3, "secret", ""},
		{2, "secret", "nonce count not increasing"},
		{3, "secret", "replayed nonce count"},
		{5, "guess", "wrong password"}, // a failure records nothing
		{5, "secret", ""},
		{0xffffffff, "secret", ""},
	}
	for _, s := range steps {
		got := c.Verify("REGISTER", testURI, answer(t, ch, "alice", s.password, s.nc, nil), testClient, lookup)
		if got.OK != (s.wantReason == "") || got.Reason != s.wantReason {
			t.Errorf("nc %d, password %q: %+v; want reason %q", s.nc, s.password, got, s.wantReason)
		}
	}
	// A new nonce starts at 1.
	got := c.Verify("REGISTER", testURI, answer(t, c.Challenge(false, testClient)[0], "alice", "secret", 0, nil), testClient, lookup)
	if got.OK || got.Reason != "nonce count not increasing" {
		t.Errorf("nc 0: %+v", got)
	}
}

// Concurrent requests with the same credentials: one gets in.
func TestVerifyConcurrentReplay(t *testing.T) {
	c, _ := newTest()
	header := answer(t, c.Challenge(false, testClient)[0], "alice", "secret", 1, nil)
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok := 0
	for range 32 {
		wg.Go(func() {
			if c.Verify("REGISTER", testURI, header, testClient, lookup).OK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d of 32 replays accepted; want 1", ok)
	}
}

// The replay cache drops expired nonces first, then the oldest, and a
// nonce dropped before it expired is then answered stale, not accepted
// without replay protection.
func TestReplayCacheBounded(t *testing.T) {
	c, clock := newTest()
	c.replay.max = 3
	verify := func(ch string, nc uint32) Result {
		return c.Verify("REGISTER", testURI, answer(t, ch, "alice", "secret", nc, nil), testClient, lookup)
	}
	var chs []string
	unused := c.Challenge(false, testClient)[0]
	for range 3 { // A, B, C, a minute apart
		*clock = clock.Add(time.Minute)
		chs = append(chs, c.Challenge(false, testClient)[0])
		if got := verify(chs[len(chs)-1], 1); !got.OK {
			t.Fatalf("first use: %+v", got)
		}
	}
	*clock = clock.Add(testTTL - 90*time.Second)                                                        // A expired, B and C not
	for _, ch := range []string{c.Challenge(false, testClient)[0], c.Challenge(false, testClient)[0]} { // D, then E
		if got := verify(ch, 1); !got.OK {
			t.Fatalf("first use: %+v", got)
		}
	}
	checks := []struct {
		ch   string
		want Result
	}{
		{chs[0], Result{Stale: true, Username: "alice", Reason: "stale nonce"}},             // A: expired
		{chs[1], Result{Stale: true, Username: "alice", Reason: "nonce no longer tracked"}}, // B: evicted for E
		{chs[2], Result{Username: "alice", Reason: "replayed nonce count"}},                 // C: still tracked
		{unused, Result{Stale: true, Username: "alice", Reason: "stale nonce"}},
	}
	for i, check := range checks {
		if got := verify(check.ch, 1); got != check.want {
			t.Errorf("check %d: %+v; want %+v", i, got, check.want)
		}
	}
	if n := len(c.replay.seen); n != 3 {
		t.Errorf("%d nonces tracked; want 3", n)
	}
}

// The cache stays within its bound, its queue matching its map, however
// many nonces go through it.
func TestReplayCacheInvariant(t *testing.T) {
	r := replayCache{max: 10, seen: map[nonceID]seenNonce{}}
	accept := func(i, expiry int) {
		t.Helper()
		var id nonceID
		id[0], id[1] = byte(i), byte(i>>8)
		if got := r.accept(id, int64(i), 1, int64(expiry)); got != accepted {
			t.Fatalf("accept %d = %v", i, got)
		}
		if len(r.seen) > r.max || len(r.order)-r.head != len(r.seen) {
			t.Fatalf("after %d: %d tracked, queue %d", i, len(r.seen), len(r.order)-r.head)
		}
		for _, id := range r.order[r.head:] {
			if _, ok := r.seen[id]; !ok {
				t.Fatalf("after %d: queued nonce not tracked", i)
			}
		}
	}
	for i := 1; i <= 1000; i++ {
		accept(i, i-20) // nothing expires: the oldest go
	}
	if r.floor != 990 { // the last one evicted early
		t.Errorf("floor %d; want 990", r.floor)
	}
	accept(5000, 4000) // all expired: they go, and the floor stays
	if len(r.seen) != 1 || r.floor != 990 {
		t.Errorf("%d tracked, floor %d; want 1, 990", len(r.seen), r.floor)
	}
}

func BenchmarkVerify(b *testing.B) {
	c := New(testRealm, []byte("bench secret"), testTTL)
	ch := c.Challenge(false, testClient)[0]
	headers := make([]string, 1024)
	for i := 0; i < b.N; i++ {
		if i%len(headers) == 0 { // credentials with counts i+1 on
			b.StopTimer()
			for j := range headers {
				headers[j] = answer(b, ch, "alice", "secret", uint32(i+j+1), nil)
			}
			b.StartTimer()
		}
		if r := c.Verify("REGISTER", testURI, headers[i%len(headers)], testClient, lookup); !r.OK {
			b.Fatal(r)
		}
	}
}
