package messaging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sbc/control/store"
)

// Sender carries one message to its carrier (the SBC: SIP MESSAGE, RFC
// 3428, whose Call-ID is m.CarrierID) and returns the carrier's answer:
// its SIP status (2xx: the carrier took it) and reason phrase, or err when
// the message could not be sent at all (no route, no answer, transport
// failure).
type Sender interface {
	SendSMS(ctx context.Context, m *store.Message) (code int, reason string, err error)
}

// Writer keeps a message's row: the store, in the daemon.
type Writer interface {
	SetMessageStatus(ctx context.Context, m *store.Message) (bool, error)
}

// Queue is the outbound messages on their way: one line per account, in
// the order they were queued, each let go at most at its account's SMS
// rate, in segments as carriers count it (a token bucket: a second's
// worth at once, then steady) with a
// window of them in flight, but one at a time to any one recipient: a
// conversation (and a long text's parts) arrives in order; messages to
// different recipients go side by side. Messages over
// the rate wait, never dropped: their rows say queued until they go.
// Statuses move queued → sending → sent | failed as the carrier answers.
type Queue struct {
	w      Writer
	send   Sender
	check  Check                        // nil: none
	rate   func(account string) float64 // messages a second; ≤ 0: no limit
	log    *slog.Logger
	window int
	now    func() time.Time

	mu       sync.Mutex
	accounts map[string]*line
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// line is one account's queue and its bucket.
type line struct {
	msgs     []*store.Message
	tokens   float64
	last     time.Time
	inFlight int
	busy     map[string]bool // recipients with a message in flight
}

// lookahead bounds how far past a waiting recipient's message dispatch
// looks for one to another recipient.
const lookahead = 256

// DefaultWindow is how many messages of one account may await their
// carrier's answer at once.
const DefaultWindow = 64

// Check tells, as a message is about to leave, why it may no longer go
// (the recipient opted out while it waited, the number or account
// changed): a failed status's reason and error code; code 0: it goes.
type Check func(ctx context.Context, m *store.Message) (reason string, code int)

// SetCheck makes the queue ask check before each message leaves. Call
// before Start.
func (q *Queue) SetCheck(check Check) { q.check = check }

// NewQueue returns a queue sending with send and keeping rows with w;
// rate is an account's messages per second.
func NewQueue(w Writer, send Sender, rate func(account string) float64, log *slog.Logger) *Queue {
	return &Queue{w: w, send: send, rate: rate, log: log, window: DefaultWindow, now: time.Now,
		accounts: map[string]*line{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Start runs the queue until Stop; pending are the messages a previous
// run left queued or sending (store.PendingMessages), sent first.
func (q *Queue) Start(pending []store.Message) {
	for i := range pending {
		q.Add(&pending[i])
	}
	q.wg.Add(1)
	go q.run()
}

// Stop ends the queue once the messages in flight have their answers;
// queued ones stay queued in the store for the next run.
func (q *Queue) Stop() {
	q.stopOnce.Do(func() { close(q.stop) })
	q.wg.Wait()
}

// Add queues m, whose row says queued already.
func (q *Queue) Add(m *store.Message) {
	q.mu.Lock()
	l := q.accounts[m.AccountSID]
	if l == nil {
		l = &line{last: q.now(), tokens: q.burst(m.AccountSID), busy: map[string]bool{}}
		q.accounts[m.AccountSID] = l
	}
	l.msgs = append(l.msgs, m)
	q.mu.Unlock()
	q.nudge()
}

// QueuedFor is how many of account's messages wait.
func (q *Queue) QueuedFor(account string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.accounts[account]; l != nil {
		return len(l.msgs)
	}
	return 0
}

// Queued is how many messages wait, in all.
func (q *Queue) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, l := range q.accounts {
		n += len(l.msgs)
	}
	return n
}

func (q *Queue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// burst is an account's bucket size: a second's worth, at least one.
func (q *Queue) burst(account string) float64 {
	return max(q.rate(account), 1)
}

func (q *Queue) run() {
	defer q.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-q.stop:
			return
		default:
		}
		wait, going := q.dispatch()
		for _, m := range going {
			q.wg.Add(1)
			go q.deliver(m) // apart: a carrier slow to connect holds up no other
		}
		timer.Reset(wait)
		select {
		case <-q.stop:
			q.mu.Lock()
			q.accounts = map[string]*line{} // their rows stay queued
			q.mu.Unlock()
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// dispatch takes what the accounts' buckets and windows let go, in
// order, and returns it with how long until a bucket has its next token.
func (q *Queue) dispatch() (time.Duration, []*store.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	wait := time.Hour
	var going []*store.Message
	for account, l := range q.accounts {
		rate := q.rate(account)
		for i := 0; i < len(l.msgs) && i < lookahead && l.inFlight < q.window; {
			m := l.msgs[i]
			if l.busy[m.To] {
				i++ // its recipient's previous message first
				continue
			}
			if rate > 0 {
				l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*rate, max(rate, 1))
				l.last = now
				// A segment a token, as carriers count their rate; a text
				// longer than the bucket goes when it is full, on credit
				// its next ones wait out.
				segs := float64(max(m.Segments, 1))
				need := min(segs, max(rate, 1))
				if l.tokens < need {
					wait = min(wait, time.Duration((need-l.tokens)/rate*float64(time.Second))+time.Millisecond)
					break
				}
				l.tokens -= segs
			}
			if i == 0 {
				l.msgs[0] = nil
				l.msgs = l.msgs[1:] // the usual case: O(1)
			} else {
				l.msgs = append(l.msgs[:i], l.msgs[i+1:]...)
			}
			l.inFlight++
			l.busy[m.To] = true
			going = append(going, m)
		}
		if q.idle(account, l, now) {
			delete(q.accounts, account)
		}
	}
	return wait, going
}

// idle tells whether an account's line may go: nothing queued or in
// flight, and its bucket full again (a new line starts full). Under q.mu.
func (q *Queue) idle(account string, l *line, now time.Time) bool {
	rate := q.rate(account)
	return len(l.msgs) == 0 && l.inFlight == 0 && (rate <= 0 || l.tokens+now.Sub(l.last).Seconds()*rate >= max(rate, 1))
}

// deliver sends one message and records what becomes of it: sending,
// with the ID its MESSAGE carries (recorded first: a delivery report may
// follow the carrier's 200 at once), then the carrier's answer.
func (q *Queue) deliver(m *store.Message) {
	defer q.wg.Done()
	defer func() {
		q.mu.Lock()
		if l := q.accounts[m.AccountSID]; l != nil {
			l.inFlight--
			delete(l.busy, m.To)
		}
		q.mu.Unlock()
		q.nudge()
	}()
	if q.check != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reason, code := q.check(ctx, m)
		cancel()
		if code != 0 {
			m.Status, m.Reason, m.ErrorCode = string(Failed), reason, code
			q.write(m)
			q.log.Info("message not sent", "message_sid", m.SID, "account_sid", m.AccountSID, "reason", reason)
			return
		}
	}
	m.Status, m.CarrierID = string(Sending), newCarrierID()
	q.write(m)
	ctx, cancel := context.WithTimeout(context.Background(), 64*500*time.Millisecond) // Timer F
	code, reason, err := q.send.SendSMS(ctx, m)
	cancel()
	switch {
	case err != nil:
		m.Status, m.Reason, m.ErrorCode = string(Failed), "Failed - Not Sent: "+err.Error(), ErrNotSent
	case code >= 200 && code < 300:
		m.Status, m.Reason, m.Sent = string(Sent), "Sent to the Carrier", q.now()
	default:
		m.Status, m.Reason, m.ErrorCode = string(Failed), fmt.Sprintf("Failed - Refused by the Carrier (%d %s)", code, reason), ErrCarrierRefused
	}
	m.RawStatus = ""
	if code != 0 {
		m.RawStatus = fmt.Sprintf("SIP %d %s", code, reason)
	}
	q.write(m)
	q.log.Info("message sent", "message_sid", m.SID, "account_sid", m.AccountSID, "status", m.Status, "sip_code", code, "error", err)
}

// write records m's status, with a time of its own (not the send's: a
// carrier that never answered must not leave the row sending).
func (q *Queue) write(m *store.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := q.w.SetMessageStatus(ctx, m); err != nil {
		q.log.Warn("message row not written", "message_sid", m.SID, "status", m.Status, "error", err)
	}
}

// newCarrierID is the Call-ID of a message's (first) MESSAGE, by which
// the carrier's delivery reports name it: 128 random bits.
func newCarrierID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@sbc"
}

// Error codes of failed messages, as the API reports them (the CPaaS
// codes of the same meaning).
const (
	ErrNotSent        = 30008 // unknown error: no route, no answer
	ErrCarrierRefused = 30007 // filtered / refused by the carrier
	ErrOptedOut       = 21610 // the recipient wrote STOP
)
