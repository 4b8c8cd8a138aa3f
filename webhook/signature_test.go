package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"

	tclient "github.com/twilio/twilio-go/client"
)

// hmacB64 is the signature of a concatenation written out by hand.
func hmacB64(token, s string) string {
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSignature(t *testing.T) {
	t.Parallel()
	// Twilio's vector, from twilio-go client/request_validator_test.go.
	twilioParams := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
		"Caller": {"+14158675309"}, "From": {"+14158675309"},
		"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	tests := []struct {
		name, token, url string
		params           url.Values
		want             string
	}{
		{"twilio https", "12345", "https://mycompany.com/myapp.php?foo=1&bar=2", twilioParams,
			"vOEb5UThFn24KEfnOFLQY2AE5FY="},
		{"twilio http", "12345", "http://mycompany.com/myapp.php?foo=1&bar=2", twilioParams,
			"n2xBNyzSW7rfYStDtOFiFMv7qNo="},
		{"no params", "tok", "https://h/cb", nil, hmacB64("tok", "https://h/cb")},
		{"several values sorted", "tok", "https://h/cb",
			url.Values{"B": {"z", "a", "m"}, "A": {"1"}},
			hmacB64("tok", "https://h/cbA1BaBmBz")},
		{"unicode and specials unescaped", "tok", "https://h/cb?x=%20",
			url.Values{"Body": {"héllo & = +✓"}},
			hmacB64("tok", "https://h/cb?x=%20Bodyhéllo & = +✓")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := url.Values{}
			for k, v := range tc.params {
				before[k] = slices.Clone(v)
			}
			if got := Signature(tc.token, tc.url, tc.params); got != tc.want {
				t.Errorf("Signature = %s, want %s", got, tc.want)
			}
			for k, v := range before {
				if !slices.Equal(tc.params[k], v) {
					t.Errorf("params[%q] changed to %q, was %q", k, tc.params[k], v)
				}
			}
		})
	}
}

// TestSignatureValidatedByTwilio delivers requests to a loopback receiver
// that checks them as a Twilio customer would, with twilio-go's validator.
func TestSignatureValidatedByTwilio(t *testing.T) {
	t.Parallel()
	const token = "c0ffee-auth-token"
	rc := newReceiver(t, nil)
	s := newTestSender(t, Options{})

	params := url.Values{
		"MessageSid": {"SM0123456789abcdef"},
		"From":       {"+14155550100"},
		"To":         {"+4930 123 456"},
		"Body":       {"Grüße, 世界! 50% off & more: a=b+c? ✓ \"quoted\" <tag> 🚀\nline 2"},
		"Empty":      {""},
	}
	urls := []string{
		rc.URL + "/sms",
		rc.URL + "/status?account=AC123&cb=1&q=a%20b",
	}
	for i, u := range urls {
		if !s.Post(u, params, "SM0123456789abcdef", token) {
			t.Fatalf("Post %d dropped", i)
		}
	}
	s.Post(rc.URL+"/unsigned", params, "SM0123456789abcdef", "") // same key: arrives last
	waitStats(t, s, "3 delivered", func(st Stats) bool { return st.Delivered == 3 })

	rv := tclient.NewRequestValidator(token)
	hits := rc.Hits()
	for i, h := range hits[:2] {
		if h.url != urls[i] {
			t.Errorf("hit %d url %s, want %s", i, h.url, urls[i])
		}
		single := make(map[string]string)
		for k, v := range h.form {
			single[k] = v[0]
		}
		if !maps.EqualFunc(h.form, params, slices.Equal[[]string]) {
			t.Errorf("hit %d form %q, want %q", i, h.form, params)
		}
		if !rv.Validate(h.url, single, h.sig) {
			t.Errorf("hit %d: twilio-go rejects signature %q of %s", i, h.sig, h.url)
		}
		if !rv.Validate(h.url, single, Signature(token, h.url, h.form)) {
			t.Errorf("hit %d: Signature of the received request rejected", i)
		}
		if rv.Validate(h.url, single, Signature("other", h.url, h.form)) {
			t.Errorf("hit %d: signature with the wrong token accepted", i)
		}
	}
	for i, h := range hits {
		for name, want := range map[string]string{
			"Content-Type": "application/x-www-form-urlencoded",
			"User-Agent":   "sbc-webhook/1",
		} {
			if got := h.hdr.Get(name); got != want {
				t.Errorf("hit %d %s = %q, want %q", i, name, got, want)
			}
		}
		if h.token == "" {
			t.Errorf("hit %d without I-Twilio-Idempotency-Token", i)
		}
	}
	if _, ok := hits[2].hdr[http.CanonicalHeaderKey("X-Twilio-Signature")]; ok {
		t.Errorf("request without token carries X-Twilio-Signature %q", hits[2].sig)
	}
	if hits[0].token == hits[1].token {
		t.Errorf("two requests share idempotency token %s", hits[0].token)
	}
}
