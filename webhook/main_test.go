package webhook

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: workers, the
// retry timer and the client's connections must all end on Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newTestSender is a Sender with test-sized waits, closed on cleanup.
func newTestSender(t testing.TB, o Options) *Sender {
	t.Helper()
	if o.Backoff == 0 {
		o.Backoff = 20 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	s := New(o, testLogger(t))
	t.Cleanup(s.Close)
	return s
}

// hit is one request a receiver saw.
type hit struct {
	at    time.Time
	url   string // as the receiver reconstructs it, for signature checks
	sig   string
	token string // I-Twilio-Idempotency-Token
	hdr   http.Header
	form  url.Values
	n     int             // this token's attempt number, 1 for the first
	gone  <-chan struct{} // closed when the sender goes away
}

// receiver is a loopback HTTP server recording every request; reply
// answers it (200 when nil).
type receiver struct {
	*httptest.Server
	reply func(w http.ResponseWriter, h hit)

	mu    sync.Mutex
	hits  []hit
	tries map[string]int
}

func newReceiver(t testing.TB, reply func(w http.ResponseWriter, h hit)) *receiver {
	rc := &receiver{reply: reply, tries: make(map[string]int)}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	h := hit{
		at:    time.Now(),
		url:   "http://" + r.Host + r.URL.RequestURI(),
		sig:   r.Header.Get("X-Twilio-Signature"),
		token: r.Header.Get("I-Twilio-Idempotency-Token"),
		hdr:   r.Header.Clone(),
		form:  form,
		gone:  r.Context().Done(),
	}
	rc.mu.Lock()
	rc.tries[h.token]++
	h.n = rc.tries[h.token]
	rc.hits = append(rc.hits, h)
	rc.mu.Unlock()
	if rc.reply != nil {
		rc.reply(w, h)
	}
}

func (rc *receiver) Hits() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

// waitStats polls until done holds of the Sender's stats, and checks
// Posted == Delivered + Failed + Dropped + Pending on the way.
func waitStats(t testing.TB, s *Sender, what string, done func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := s.Stats()
		if sum := st.Delivered + st.Failed + st.Dropped + uint64(st.Pending); sum != st.Posted {
			t.Fatalf("stats %+v: Delivered+Failed+Dropped+Pending = %d, want Posted", st, sum)
		}
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: stats %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
