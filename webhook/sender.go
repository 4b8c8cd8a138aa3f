// Package webhook is the SBC's outbound HTTP webhook sender: status
// callbacks and inbound-SMS posts to customer URLs, CPaaS style. Requests
// are form POSTs signed like Twilio's (X-Twilio-Signature), queued in
// bounded memory, retried with backoff, delivered in order per key.
package webhook

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// Options of a Sender; zero fields take the defaults.
type Options struct {
	// Allowed must pass the address a connection goes to (nil: any). It is
	// checked in net.Dialer.Control after name resolution, so a name
	// pointing at a private address is refused (SSRF guard).
	Allowed func(netip.Addr) bool
	// QueueSize bounds the requests pending (waiting, in flight or waiting
	// to retry); default 10000. Post beyond it drops and counts.
	QueueSize int
	Attempts  int           // tries per request before giving up; default 5
	Backoff   time.Duration // wait before the first retry, doubling (±20% jitter), at most 5 min; default 5s
	Timeout   time.Duration // per attempt, whole request; default 10s
	Workers   int           // requests in flight at once; default 32
}

const (
	maxBackoff = 5 * time.Minute
	maxDrain   = 64 << 10 // response body bytes read (so the connection can be reused), then discarded
	userAgent  = "sbc-webhook/1"
)

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	return o
}

// Stats counts requests. Posted counts every Post call, so at any moment
// Posted == Delivered + Failed + Dropped + Pending.
type Stats struct {
	Posted    uint64
	Delivered uint64 // answered 2xx
	Failed    uint64 // given up: permanent error or Attempts tries failed
	Dropped   uint64 // refused by Post (queue full, closed) or pending at Close
	Retries   uint64 // attempts after the first
	Pending   int    // waiting, in flight or waiting to retry
}

// Sender posts webhooks. It is safe for concurrent use: Post, Stats and
// Close may be called from any goroutine. Post only encodes, signs and
// queues under a short lock; Options.Workers goroutines deliver, one more
// runs the retry timers, and Close ends them all. A request waiting for a
// retry holds no worker, but holds its key: the next request of that key
// starts only once it has been delivered or given up.
type Sender struct {
	opts   Options
	log    *slog.Logger
	client *http.Client
	ctx    context.Context // cancelled by Close: ends goroutines and attempts in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan *request // to attempt now; holds at most Pending <= QueueSize, its capacity, so a send never blocks
	wake   chan struct{} // the earliest retry changed
	once   sync.Once

	mu       sync.Mutex // guards the fields below
	closed   bool
	dropping bool                // the last Post was dropped: log only the first of a run
	tails    map[string]*request // the last request posted of each key with requests pending
	waiting  retryHeap
	stats    Stats
}

// request is one webhook, from Post until delivered, given up or dropped.
type request struct {
	url    string
	host   string // for logs: never the path, query or userinfo, which may carry secrets
	key    string
	body   string
	header http.Header
	tries  int
	due    time.Time // when the retry is due, while waiting
	next   *request  // the next request posted with the same key
}

// New starts a Sender's goroutines; Close stops them.
func New(opts Options, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{
		opts:   opts,
		log:    log,
		client: newClient(opts),
		ctx:    ctx,
		cancel: cancel,
		ready:  make(chan *request, opts.QueueSize),
		wake:   make(chan struct{}, 1),
		tails:  make(map[string]*request),
	}
	s.wg.Add(opts.Workers + 1)
	for range opts.Workers {
		go s.work()
	}
	go s.timers()
	return s
}

// Post queues a form POST of params to rawURL signed with token
// (X-Twilio-Signature, omitted when token is ""). Requests with the same
// non-empty key (e.g. a MessageSid) are delivered in the order posted: a
// later one waits until the earlier has succeeded or been given up. Post
// never blocks; false means dropped (queue full or sender closed), counted.
// A malformed URL is given up at once: counted Failed and logged, not
// dropped. params is encoded before Post returns.
func (s *Sender) Post(rawURL string, params url.Values, key, token string) bool {
	r, err := newRequest(rawURL, params, key, token)
	s.mu.Lock()
	s.stats.Posted++
	queued, logDrop := false, false
	switch {
	case err != nil:
		s.stats.Failed++
	case s.closed || s.stats.Pending >= s.opts.QueueSize:
		s.stats.Dropped++
		logDrop, s.dropping = !s.dropping && !s.closed, true
	default:
		s.dropping = false
		s.stats.Pending++
		s.enqueue(r)
		queued = true
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Warn("webhook given up", "key", key, "err", err)
		return true
	case logDrop:
		s.log.Warn("webhook queue full, dropping", "queue_size", s.opts.QueueSize)
	}
	return queued
}

func newRequest(rawURL string, params url.Values, key, token string) (*request, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errBadURL // not err: url.Error repeats the URL, which may carry secrets
	}
	h := http.Header{
		"Content-Type":               {"application/x-www-form-urlencoded"},
		"User-Agent":                 {userAgent},
		"I-Twilio-Idempotency-Token": {rand.Text()},
	}
	if token != "" {
		h["X-Twilio-Signature"] = []string{Signature(token, rawURL, params)}
	}
	return &request{url: rawURL, host: u.Host, key: key, body: params.Encode(), header: h}, nil
}

// Stats is a consistent snapshot of the counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// CloseAfter waits up to d for the requests pending to go (a stop
// lets the last call ends and statuses out), then closes.
func (s *Sender) CloseAfter(d time.Duration) {
	for deadline := time.Now().Add(d); s.Stats().Pending > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()
}

// Close stops the Sender: attempts in flight are cancelled, pending requests
// are dropped and counted (logged once with the count). It returns when
// every goroutine of the Sender has ended. Post after Close drops.
func (s *Sender) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.client.CloseIdleConnections()

		s.mu.Lock()
		n := s.stats.Pending
		s.stats.Dropped += uint64(n)
		s.stats.Pending = 0
		s.tails, s.waiting = nil, nil
		s.mu.Unlock()
		if n > 0 {
			s.log.Warn("webhooks dropped on close", "count", n)
		}
	})
}
