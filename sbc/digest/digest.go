// Package digest is the server side of SIP digest authentication
// (RFC 3261 §22, RFC 8760): it challenges requests and checks the
// credentials that answer them, with the MD5 and SHA-256 algorithms of
// RFC 7616 and qop=auth only. Passwords are known only as
// HA1 = H(username ":" realm ":" password), in lowercase hex.
package digest

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Challenger makes challenges and verifies the credentials answering
// them, for one realm. Its nonces are stateless; it remembers only the
// nonce counts accepted, to refuse replays. Safe for concurrent use.
type Challenger struct {
	realm  string
	secret []byte
	ttl    time.Duration
	now    func() time.Time // replaced in tests
	dummy  string           // HA1 hex verified against for unknown users
	replay replayCache
	algs   []string // challenged, in order of preference
}

// New returns a Challenger for realm whose nonces are signed with secret
// (random per process will do: a restart then only makes clients
// re-authenticate) and live for ttl.
func New(realm string, secret []byte, ttl time.Duration) *Challenger {
	c := &Challenger{
		realm:  realm,
		secret: secret,
		ttl:    ttl,
		now:    time.Now,
		replay: replayCache{max: 1_000_000, seen: map[nonceID]seenNonce{}},
		algs:   []string{"SHA-256", "MD5"},
	}
	c.dummy = hex.EncodeToString(c.mac([]byte("dummy HA1"), ""))
	c.dummy += c.dummy // 64 hex digits: as long as a SHA-256 HA1
	return c
}

// Challenge returns the values of the WWW-Authenticate (401) or
// Proxy-Authenticate (407) header fields to send, one per algorithm, in
// order of preference (RFC 8760 §2.4): SHA-256, then MD5 for the devices
// that know nothing else. stale tells a client whose nonce expired to
// retry without asking for a new password (RFC 7616 §3.3). The nonce is
// bound to client, the address the challenge goes to (its IP, not its
// port): Verify accepts it from there only.
func (c *Challenger) Challenge(stale bool, client string) []string {
	common := "Digest realm=" + quote(c.realm) + ", nonce=" + quote(c.newNonce(client)) + ", algorithm="
	tail := `, qop="auth"`
	if stale {
		tail += ", stale=true"
	}
	out := make([]string, len(c.algs))
	for i, a := range c.algs {
		out[i] = common + a + tail
	}
	return out
}

// SetAlgorithms sets the algorithms challenged, in order of preference
// ("SHA-256", "MD5"): many devices answer the first challenge only, so an
// operator whose devices know MD5 alone may put it first. Credentials of
// either algorithm are verified whatever the order. Call before use.
func (c *Challenger) SetAlgorithms(algs []string) error {
	for _, a := range algs {
		if h, _ := hasher(a); h == nil || a == "" {
			return ErrAlgorithm
		}
	}
	if len(algs) == 0 {
		return ErrAlgorithm
	}
	c.algs = append([]string(nil), algs...)
	return nil
}

// Result is the outcome of Verify.
type Result struct {
	OK bool
	// Stale means the credentials were right but the nonce expired (or
	// can no longer be checked for replay): challenge again with
	// stale=true.
	Stale bool
	// Unproven means the request carries no nonce issued to its client:
	// whoever sent it need not have received a challenge there, so it
	// could come from a forged address (UDP) and must not count against
	// that address. Challenge again.
	Unproven bool
	// Username is the one sent, for logs; possibly not a known user.
	Username string
	// Reason says why verification failed, for logs only: "unknown user"
	// and "wrong password" must not reach the peer. It holds no secret.
	Reason string
}

// Verify checks the value of an Authorization or Proxy-Authorization
// header field sent with a request of method and requestURI from client
// (the address a challenge would go to, as given to Challenge). lookup
// returns the HA1s of username (either may be empty) and whether the
// user exists. A wrong user costs the same work as a wrong password and
// gives the same OK and Stale: only Reason tells them apart (lookup too
// should take as long for an unknown user).
func (c *Challenger) Verify(method, requestURI, header, client string, lookup func(username string) (ha1MD5, ha1SHA256 string, ok bool)) Result {
	p, err := Parse(header)
	if err != nil || p["nonce"] == "" {
		return Result{Username: p["username"], Unproven: true, Reason: "malformed header"}
	}
	r := Result{Username: p["username"]}
	fail := func(reason string) Result {
		r.Reason = reason
		return r
	}
	// The nonce first: only a request answering a challenge sent to its
	// client proves that address is the sender's, and only then does a
	// failure count.
	id, issued, ok := c.checkNonce(p["nonce"], client)
	if !ok {
		// Not ours, another address's, or another process's (a device
		// that kept the nonce of the daemon before a restart): asked
		// again, as stale, not failed; it proves nothing either way.
		r.Stale, r.Unproven = true, true
		return fail("unknown nonce")
	}
	for _, name := range []string{"username", "realm", "uri", "response"} {
		if p[name] == "" {
			return fail("malformed header")
		}
	}
	nc, err := strconv.ParseUint(p["nc"], 16, 32)
	switch h, sha := hasher(p["algorithm"]); {
	case p["realm"] != c.realm:
		return fail("realm mismatch")
	case h == nil:
		return fail("unsupported algorithm")
	case !strings.EqualFold(p["qop"], "auth"): // RFC 2069 digests are replayable
		return fail("qop auth required")
	case p["cnonce"] == "" || len(p["nc"]) != 8 || err != nil:
		return fail("malformed header")
	// RFC 2617 §3.2.2.5: the uri must designate the requested resource.
	// Devices send exactly the Request-URI they put on the request, and
	// nothing between them and us rewrites it, so no SIP URI comparison
	// (RFC 3261 §19.1.4) is needed.
	case strings.TrimSpace(p["uri"]) != strings.TrimSpace(requestURI):
		return fail("uri mismatch")
	default:
		ha1MD5, ha1SHA256, known := lookup(r.Username)
		ha1, reason := ha1MD5, "wrong password"
		if sha {
			ha1 = ha1SHA256
		}
		switch {
		case !known:
			reason = "unknown user"
		case ha1 == "":
			reason, known = "no HA1 for algorithm", false
		}
		if !known { // the same work as for a known user
			ha1 = c.dummy[:32]
			if sha {
				ha1 = c.dummy
			}
		}
		want := response(h, strings.ToLower(ha1), method, p)
		got := strings.ToLower(p["response"])
		if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 || !known {
			return fail(reason)
		}
		now := c.now()
		if now.Sub(issued) > c.ttl {
			r.Stale = true
			return fail("stale nonce")
		}
		switch c.replay.accept(id, issued.UnixNano(), uint32(nc), now.Add(-c.ttl).UnixNano()) {
		case replayed:
			return fail("replayed nonce count")
		case decreased:
			return fail("nonce count not increasing")
		case evicted:
			r.Stale = true
			return fail("nonce no longer tracked")
		}
		r.OK = true
		return r
	}
}

// HA1 returns H(username ":" realm ":" password) in lowercase hex, what
// is stored instead of the password, for algorithm MD5 or SHA-256.
func HA1(algorithm, username, realm, password string) (string, error) {
	h, _ := hasher(algorithm)
	if h == nil {
		return "", ErrAlgorithm
	}
	return h(username + ":" + realm + ":" + password), nil
}

// Response returns the response parameter for credentials p (algorithm,
// nonce, nc, cnonce, qop=auth, uri) of a request of method by a user
// whose HA1 is ha1 (RFC 7616 §3.4.1).
func Response(ha1, method string, p Params) (string, error) {
	h, _ := hasher(p["algorithm"])
	if h == nil || !strings.EqualFold(p["qop"], "auth") {
		return "", ErrAlgorithm
	}
	return response(h, ha1, method, p), nil
}

func response(h func(string) string, ha1, method string, p Params) string {
	ha2 := h(method + ":" + p["uri"])
	return h(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
}

// hasher returns the lowercase-hex hash function of algorithm (absent
// means MD5, RFC 2617 §3.2.1), and whether it is SHA-256; nil for the
// others, "-sess" variants included.
func hasher(algorithm string) (h func(string) string, sha bool) {
	switch strings.ToUpper(algorithm) {
	case "", "MD5":
		return func(s string) string { b := md5.Sum([]byte(s)); return hex.EncodeToString(b[:]) }, false
	case "SHA-256":
		return func(s string) string { b := sha256.Sum256([]byte(s)); return hex.EncodeToString(b[:]) }, true
	}
	return nil, false
}
