package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"time"
)

// A nonce is base64url(issue time || random || MAC), the time in unix
// nanoseconds (8 bytes), 8 random bytes, and the first 16 bytes of
// HMAC-SHA256(secret, time || random || client). It needs no state to
// check, cannot be forged without the secret, tells its own age (RFC 7616
// §3.3 suggests a time stamp in the nonce) and is good only from the
// client it was sent to (RFC 7616 §3.3 suggests the client's address in
// the nonce too).
const nonceLen = 32

var nonceEncoding = base64.RawURLEncoding.Strict()

// nonceID is the time and random part of a nonce: what replay tracking
// keys on.
type nonceID [16]byte

func (c *Challenger) newNonce(client string) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.now().UnixNano()))
	rand.Read(b[8:16]) // never fails: crypto/rand crashes the program instead
	copy(b[16:], c.mac(b[:16], client))
	return nonceEncoding.EncodeToString(b[:])
}

// checkNonce returns the ID and the issue time of a nonce we made for
// client.
func (c *Challenger) checkNonce(nonce, client string) (id nonceID, issued time.Time, ok bool) {
	b, err := nonceEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceLen || !hmac.Equal(b[16:], c.mac(b[:16], client)) {
		return id, issued, false
	}
	copy(id[:], b[:16])
	return id, time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

func (c *Challenger) mac(data []byte, client string) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write(data)
	m.Write([]byte(client))
	return m.Sum(nil)[:16]
}

// replayCache remembers the highest nonce count accepted per nonce
// (RFC 7616 §3.4: a count seen twice is a replay). It is bounded: entries
// leave in insertion order (first use), when their nonce has expired (a
// stale nonce is refused before the cache is asked) or, when the cache is
// full, even before. An expired entry queued behind a live one waits for
// it, at most ttl: the price of O(1) amortised operations. A nonce
// evicted early could be replayed, so any nonce not tracked and issued no
// later than the last one evicted early is refused as stale; its client
// retries with a fresh nonce. Safe for concurrent use.
type replayCache struct {
	mu    sync.Mutex
	max   int // entries at most
	seen  map[nonceID]seenNonce
	order []nonceID // insertion order: order[head:] are in seen
	head  int
	floor int64 // issue time of the last nonce evicted before it expired
}

type seenNonce struct {
	issued int64 // unix nanoseconds
	nc     uint32
}

// acceptance is the answer of replayCache.accept.
type acceptance int

const (
	accepted  acceptance = iota
	replayed             // the same count again
	decreased            // a lower count than one accepted
	evicted              // no longer tracked: cannot tell
)

// accept records count nc for nonce id issued at issued, unless it is not
// above the last count accepted for that nonce. Nonces issued before
// expiry have expired.
func (r *replayCache) accept(id nonceID, issued int64, nc uint32, expiry int64) acceptance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.seen[id]; ok {
		switch {
		case nc == e.nc:
			return replayed
		case nc < e.nc:
			return decreased
		}
		r.seen[id] = seenNonce{issued, nc}
		return accepted
	}
	if nc == 0 { // counts start at 1 (RFC 7616 §3.4)
		return decreased
	}
	if issued <= r.floor {
		return evicted
	}
	for r.head < len(r.order) && r.seen[r.order[r.head]].issued < expiry {
		r.pop()
	}
	for len(r.seen) >= r.max && len(r.seen) > 0 {
		r.floor = max(r.floor, r.pop().issued)
	}
	r.seen[id] = seenNonce{issued, nc}
	r.order = append(r.order, id)
	return accepted
}

// pop drops the oldest entry.
func (r *replayCache) pop() seenNonce {
	id := r.order[r.head]
	e := r.seen[id]
	delete(r.seen, id)
	r.head++
	if r.head*2 >= len(r.order) { // compact: O(1) amortised
		r.order = append(r.order[:0], r.order[r.head:]...)
		r.head = 0
	}
	return e
}
