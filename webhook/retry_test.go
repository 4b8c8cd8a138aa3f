package webhook

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestRetryAfter: a 429's Retry-After (1 s) replaces the backoff (20 ms).
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(w http.ResponseWriter, h hit) {
		if h.n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	s := newTestSender(t, Options{})
	s.Post(rc.URL, url.Values{"A": {"1"}}, "", "tok")
	st := waitStats(t, s, "delivered", func(st Stats) bool { return st.Delivered == 1 })
	if st.Retries != 1 {
		t.Errorf("stats %+v, want 1 retry", st)
	}
	hits := rc.Hits()
	if len(hits) != 2 {
		t.Fatalf("%d attempts, want 2", len(hits))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < 950*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("retried after %v, want Retry-After's 1s", gap)
	}
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		base       time.Duration
		try        int
		jitter     float64
		want       time.Duration
	}{
		{"first", "", 5 * time.Second, 1, 0, 5 * time.Second},
		{"doubles", "", 5 * time.Second, 3, 0, 20 * time.Second},
		{"jitter +20%", "", 5 * time.Second, 2, 1, 12 * time.Second},
		{"jitter -20%", "", 5 * time.Second, 2, -1, 8 * time.Second},
		{"capped", "", 5 * time.Second, 7, 0, maxBackoff},
		{"capped after jitter", "", 5 * time.Second, 7, 1, maxBackoff},
		{"no overflow", "", 5 * time.Second, 200, 0, maxBackoff},
		{"seconds", "7", 20 * time.Millisecond, 4, 0, 7 * time.Second},
		{"seconds capped", "86400", 20 * time.Millisecond, 1, 0, maxBackoff},
		{"huge seconds capped", "99999999999", 20 * time.Millisecond, 1, 0, maxBackoff},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), time.Second, 1, 0, 90 * time.Second},
		{"past date ignored", now.Add(-time.Hour).Format(http.TimeFormat), time.Second, 1, 0, time.Second},
		{"zero ignored", "0", time.Second, 1, 0, time.Second},
		{"negative ignored", "-5", time.Second, 1, 0, time.Second},
		{"garbage ignored", "soon", time.Second, 1, 0, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after := retryAfter(tc.retryAfter, now)
			got := backoff(tc.base, tc.try, tc.jitter)
			if after > 0 {
				got = retryWait(after, tc.base, tc.try)
			}
			if got != tc.want {
				t.Errorf("wait %v, want %v", got, tc.want)
			}
		})
	}
}
