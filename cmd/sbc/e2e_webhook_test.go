package main

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	tclient "github.com/twilio/twilio-go/client"
)

// hookReceiver is a customer's web server on loopback: every webhook's
// signature is checked as a customer checks it, with twilio-go's request
// validator and the account's auth token.
type hookReceiver struct {
	srv   *httptest.Server
	token string
	// fail answers 503 to the first attempt of a request it picks.
	fail func(path string, params url.Values) bool

	mu       sync.Mutex
	hits     []hookHit // in arrival order
	attempts map[string]int
}

type hookHit struct {
	path, idem string
	params     url.Values
	valid      bool // the signature checks out
	answered   int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{attempts: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		params := map[string]string{}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		rv := tclient.NewRequestValidator(h.token)
		hit := hookHit{path: r.URL.Path, idem: r.Header.Get("I-Twilio-Idempotency-Token"), params: r.PostForm,
			valid: rv.Validate("http://"+r.Host+r.URL.RequestURI(), params, r.Header.Get("X-Twilio-Signature")), answered: 204}
		h.attempts[hit.idem]++
		if h.attempts[hit.idem] == 1 && h.fail != nil && h.fail(r.URL.Path, r.PostForm) {
			hit.answered = 503
		}
		h.hits = append(h.hits, hit)
		w.WriteHeader(hit.answered)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url(path string) string { return h.srv.URL + path }

// taken are the hits answered with success, in arrival order.
func (h *hookReceiver) taken(path string) []hookHit {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookHit
	for _, x := range h.hits {
		if x.path == path && x.answered < 300 {
			out = append(out, x)
		}
	}
	return out
}

// await waits until cond holds of the hits taken at path.
func (h *hookReceiver) await(t *testing.T, path string, what string, cond func([]hookHit) bool) []hookHit {
	t.Helper()
	var got []hookHit
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = h.taken(path); cond(got) {
			return got
		}
	}
	t.Fatalf("webhooks at %s: want %s; got %+v", path, what, got)
	return nil
}

// checkSigned fails on any webhook whose signature twilio-go refuses.
func (h *hookReceiver) checkSigned(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range h.hits {
		if !x.valid {
			t.Errorf("webhook to %s %v: X-Twilio-Signature refused by twilio-go's validator", x.path, x.params)
		}
	}
}

// sdkRewrite sends the SDK's requests for api.twilio.com to the daemon.
type sdkRewrite struct {
	to   *url.URL
	next http.RoundTripper
}

func (r sdkRewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = r.to.Scheme, r.to.Host, ""
	return r.next.RoundTrip(req)
}

// twilioSDK is the official twilio-go client logged in as account with
// token, talking to the daemon's API at base (its certificate self-made).
func twilioSDK(base, account, token string) *twilio.RestClient {
	to, _ := url.Parse(base)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	c := &tclient.Client{Credentials: tclient.NewCredentials(account, token),
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: sdkRewrite{to, tr}}}
	c.SetAccountSid(account)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

// statuses are the MessageStatus values of hits, joined.
func statuses(hits []hookHit) string {
	var s []string
	for _, x := range hits {
		s = append(s, x.params.Get("MessageStatus"))
	}
	return strings.Join(s, " ")
}
