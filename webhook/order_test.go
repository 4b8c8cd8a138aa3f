package webhook

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestOrderPerKey: some requests fail their first two attempts (a 500,
// then a closed connection); every key's requests still arrive in posting
// order, each delivered exactly once, with one idempotency token across
// its retries.
func TestOrderPerKey(t *testing.T) {
	t.Parallel()
	const keys, perKey = 5, 8
	rc := newReceiver(t, func(w http.ResponseWriter, h hit) {
		switch {
		case answersOK(h):
		case h.n == 1:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			hangUp(w)
		}
	})
	s := newTestSender(t, Options{Workers: 4})
	for seq := range perKey {
		for k := range keys {
			p := url.Values{"Key": {fmt.Sprint("SM", k)}, "Seq": {strconv.Itoa(seq)}}
			if !s.Post(rc.URL+"/status", p, p.Get("Key"), "tok") {
				t.Fatalf("Post dropped")
			}
		}
	}
	st := waitStats(t, s, "all delivered", func(st Stats) bool { return st.Delivered == keys*perKey })
	flaky := 0
	for seq := range perKey {
		if seq%3 == 1 {
			flaky += keys
		}
	}
	if st.Failed != 0 || st.Retries != uint64(2*flaky) {
		t.Errorf("stats %+v, want Failed 0, Retries %d", st, 2*flaky)
	}

	tokenOf := make(map[string]string) // Key/Seq -> token
	next := make(map[string]int)       // key -> Seq it must see next
	for _, h := range rc.Hits() {
		key, seq := h.form.Get("Key"), h.form.Get("Seq")
		id := key + "/" + seq
		if tok, ok := tokenOf[id]; ok && tok != h.token {
			t.Errorf("%s retried with token %s, first had %s", id, h.token, tok)
		}
		tokenOf[id] = h.token
		// A retry repeats the current Seq; anything else must be the next one.
		if n, _ := strconv.Atoi(seq); n != next[key] {
			t.Fatalf("%s arrived while %s/%d pending", id, key, next[key])
		}
		if answersOK(h) {
			next[key]++
		}
	}
	for k := range keys {
		if key := fmt.Sprint("SM", k); next[key] != perKey {
			t.Errorf("%s: %d delivered, want %d", key, next[key], perKey)
		}
	}
	if len(tokenOf) != keys*perKey {
		t.Errorf("%d requests seen, want %d", len(tokenOf), keys*perKey)
	}
}

// answersOK is whether TestOrderPerKey's receiver answers h 200.
func answersOK(h hit) bool {
	seq, _ := strconv.Atoi(h.form.Get("Seq"))
	return seq%3 != 1 || h.n > 2
}

// TestStuckKeyDoesNotBlockOthers: with one worker, a key waiting for its
// retries holds neither the worker nor other keys; only its own next
// request waits for it.
func TestStuckKeyDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(w http.ResponseWriter, h hit) {
		if h.form.Get("Key") == "A" && h.form.Get("Seq") == "0" && h.n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	s := newTestSender(t, Options{Workers: 1, Backoff: 200 * time.Millisecond})
	post := func(key, seq string) {
		if !s.Post(rc.URL, url.Values{"Key": {key}, "Seq": {seq}}, key, "") {
			t.Fatalf("Post %s/%s dropped", key, seq)
		}
	}
	post("A", "0")
	post("A", "1")
	const others = 20
	for i := range others {
		post(fmt.Sprint("B", i), "0")
	}
	waitStats(t, s, "all delivered", func(st Stats) bool { return st.Delivered == others+2 })

	var aTries []time.Time // A/0's attempts
	var a1, lastB time.Time
	for _, h := range rc.Hits() {
		switch key := h.form.Get("Key"); {
		case key == "A" && h.form.Get("Seq") == "0":
			aTries = append(aTries, h.at)
		case key == "A":
			a1 = h.at
		default:
			lastB = h.at
		}
	}
	if len(aTries) != 3 {
		t.Fatalf("A/0 tried %d times, want 3", len(aTries))
	}
	if !lastB.Before(aTries[1]) {
		t.Errorf("other keys finished %v after A/0's first try, after its retry at %v",
			lastB.Sub(aTries[0]), aTries[1].Sub(aTries[0]))
	}
	if a1.Before(aTries[2]) {
		t.Errorf("A/1 arrived before A/0 was delivered")
	}
}
