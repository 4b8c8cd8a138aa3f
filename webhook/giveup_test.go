package webhook

import (
	"net/http"
	"net/url"
	"testing"
)

// TestGiveUp: answers that retrying cannot change are given up at once,
// redirects are not followed, and a receiver failing every attempt is
// given up after Attempts.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, nil) // where redirects point: must see nothing
	tests := []struct {
		name        string
		reply       func(w http.ResponseWriter, h hit)
		url         string // instead of the receiver's
		wantHits    int
		wantRetries uint64
	}{
		{name: "404", reply: status(http.StatusNotFound), wantHits: 1},
		{name: "400", reply: status(http.StatusBadRequest), wantHits: 1},
		{name: "401", reply: status(http.StatusUnauthorized), wantHits: 1},
		{name: "302 not followed", reply: redirect(target.URL, http.StatusFound), wantHits: 1},
		{name: "307 not followed", reply: redirect(target.URL, http.StatusTemporaryRedirect), wantHits: 1},
		{name: "500 every time", reply: status(http.StatusInternalServerError), wantHits: 3, wantRetries: 2},
		{name: "hang up every time", reply: func(w http.ResponseWriter, _ hit) { hangUp(w) }, wantHits: 3, wantRetries: 2},
		{name: "bad scheme", url: "ftp://example.com/x"},
		{name: "relative", url: "/status"},
		{name: "no host", url: "http:///status"},
		{name: "bad escape", url: "http://example.com/%zz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tc.reply)
			s := newTestSender(t, Options{Attempts: 3})
			u := tc.url
			if u == "" {
				u = rc.URL + "/cb"
			}
			if !s.Post(u, url.Values{"A": {"1"}}, "k", "tok") {
				t.Fatal("Post dropped")
			}
			st := waitStats(t, s, "given up", func(st Stats) bool { return st.Failed == 1 })
			if st.Delivered != 0 || st.Retries != tc.wantRetries {
				t.Errorf("stats %+v, want Delivered 0, Retries %d", st, tc.wantRetries)
			}
			if n := len(rc.Hits()); n != tc.wantHits {
				t.Errorf("receiver saw %d requests, want %d", n, tc.wantHits)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(target.Hits()); n != 0 {
			t.Errorf("redirect target saw %d requests, want none", n)
		}
	})
}

func status(code int) func(http.ResponseWriter, hit) {
	return func(w http.ResponseWriter, _ hit) { w.WriteHeader(code) }
}

func redirect(to string, code int) func(http.ResponseWriter, hit) {
	return func(w http.ResponseWriter, _ hit) {
		w.Header().Set("Location", to)
		w.WriteHeader(code)
	}
}
