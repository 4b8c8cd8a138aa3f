package webhook

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// outcome is the result of one attempt.
type outcome struct {
	err    error         // nil: delivered
	status int           // HTTP status, 0 if no response
	retry  bool          // worth another attempt
	after  time.Duration // the receiver's Retry-After, 0 if none
}

// work delivers ready requests until Close.
func (s *Sender) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.ready:
			s.settle(r, s.attempt(r))
		}
	}
}

// attempt makes one try of r.
func (s *Sender) attempt(r *request) outcome {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	r.tries++
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, strings.NewReader(r.body))
	if err != nil {
		return outcome{err: errBadURL}
	}
	req.Header = r.header // tries of one request never overlap, and the client does not write it
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may carry secrets: keep the cause.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return outcome{err: err, retry: !errors.Is(err, errRefused)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()

	o := outcome{status: resp.StatusCode}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return o
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		// RFC 6585 §4 and RFC 9110 §10.2.3: the receiver says when to come back.
		o.after = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		o.retry = true
	case c >= 500 && c < 600:
		o.retry = true
	}
	// Redirects are not followed and other 4xx will not change by retrying.
	o.err = &statusError{resp.StatusCode}
	return o
}

// settle accounts for r's attempt: delivered, given up, or parked to retry.
func (s *Sender) settle(r *request, o outcome) {
	tries := r.tries // once unlocked, r may be another worker's
	s.mu.Lock()
	var gaveUp, retrying bool
	var wait time.Duration
	switch {
	case o.err == nil:
		s.stats.Delivered++
		s.finish(r)
	case o.retry && s.closed:
		// Cancelled by Close, or would wait for a retry that never comes:
		// it stays pending and Close counts it dropped.
	case !o.retry || tries >= s.opts.Attempts:
		s.stats.Failed++
		s.finish(r)
		gaveUp = true
	default:
		s.stats.Retries++
		wait = retryWait(o.after, s.opts.Backoff, tries)
		s.schedule(r, wait)
		retrying = true
	}
	s.mu.Unlock()

	switch {
	case gaveUp:
		s.log.Warn("webhook given up", "host", r.host, "key", r.key, "status", o.status,
			"attempts", tries, "err", o.err)
	case retrying:
		s.log.Debug("webhook retry", "host", r.host, "key", r.key, "status", o.status,
			"attempt", tries, "wait", wait, "err", o.err)
	}
}

// retryWait is the wait after failed try n (1 for the first): the
// receiver's Retry-After if it gave one, else backoff; never above
// maxBackoff, so a receiver cannot park a request (and its key) for days.
func retryWait(after, base time.Duration, n int) time.Duration {
	if after > 0 {
		return min(after, maxBackoff)
	}
	return backoff(base, n, 2*rand.Float64()-1)
}

// backoff is base doubled n-1 times, scaled by 1+0.2*jitter (jitter in
// [-1, 1], so ±20%: receivers recovering from an outage are not hit by
// every sender at once), at most maxBackoff.
func backoff(base time.Duration, n int, jitter float64) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(time.Duration(float64(d)*(1+0.2*jitter)), maxBackoff)
}

// retryAfter parses a Retry-After value, delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3), at most maxBackoff; 0 if absent, malformed or
// past.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		return time.Duration(min(secs, uint64(maxBackoff/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
