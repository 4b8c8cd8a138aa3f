package control

import (
	"context"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"

	"sbc/control/messaging"
	"sbc/control/store"
)

// CodedError is a refusal the API answers with its own error code (the
// CPaaS code of the same meaning) and message.
type CodedError struct {
	Code    int
	Message string
}

func (e *CodedError) Error() string { return e.Message }

// Refusals of an outbound message.
var (
	ErrSourceNotSMS = &CodedError{21606, "Source Number Not SMS Enabled"}
	ErrBadTo        = &CodedError{21211, "The 'To' number is not a valid E.164 phone number"}
	ErrNoBody       = &CodedError{21602, "Message body is required"}
	ErrBodyTooLong  = &CodedError{21617, "The concatenated message body exceeds the 1600 character limit"}
	ErrNoMessaging  = errors.New("control: messaging is not running")
)

// maxBodyChars is the longest message body taken (the CPaaS limit).
const maxBodyChars = 1600

// messages is the plane's outbound queue, set by the daemon.
type messages struct {
	mu sync.RWMutex
	q  *messaging.Queue
}

// SetMessageQueue gives the plane the queue outbound messages go to.
func (p *Plane) SetMessageQueue(q *messaging.Queue) {
	p.msgs.mu.Lock()
	p.msgs.q = q
	p.msgs.mu.Unlock()
}

// SMSRate is account's messages per second (0 for an account unknown).
func (p *Plane) SMSRate(account string) float64 {
	if a := p.snap.Load().accounts[account]; a != nil {
		return float64(a.SMSPerSecond)
	}
	return 0
}

// SendMessage queues an outbound message of account from its number
// from to to, and returns its row: queued, or failed at once when the
// recipient opted out of the account's messages (STOP). callback is the
// URL status changes are posted to ("" none).
func (p *Plane) SendMessage(ctx context.Context, account, from, to, body, callback string) (store.Message, error) {
	p.msgs.mu.RLock()
	q := p.msgs.q
	p.msgs.mu.RUnlock()
	if q == nil {
		return store.Message{}, ErrNoMessaging
	}
	snap := p.snap.Load()
	a := snap.accounts[account]
	if a == nil {
		return store.Message{}, store.ErrNotFound
	}
	if a.Status != store.StatusActive {
		return store.Message{}, &CodedError{20005, "Account not active"}
	}
	src, ok := E164(from)
	if n := snap.numbers[src]; !ok || !strings.HasPrefix(from, "+") || n == nil || n.AccountSID != account || !n.SMS {
		return store.Message{}, ErrSourceNotSMS
	}
	dst, ok := E164(to)
	if !ok || !strings.HasPrefix(to, "+") {
		return store.Message{}, ErrBadTo
	}
	switch {
	case strings.TrimSpace(body) == "":
		return store.Message{}, ErrNoBody
	case utf8.RuneCountInString(body) > maxBodyChars || !utf8.ValidString(body):
		return store.Message{}, ErrBodyTooLong
	}
	if err := p.cfg.Webhooks.CheckURL(callback); err != nil {
		return store.Message{}, fieldErr("StatusCallback", "%v", err)
	}
	segments, _ := messaging.Segments(body)
	m := store.Message{SID: store.NewSID(store.PrefixMessage), AccountSID: account, From: src, To: dst, Direction: store.DirectionOutboundAPI,
		Status: string(messaging.Queued), Body: body, Segments: segments, StatusCallback: callback, Created: p.now().UTC()}
	out, err := p.st.OptedOut(ctx, account, dst)
	if err != nil {
		return store.Message{}, err
	}
	if out {
		m.Status, m.Reason, m.ErrorCode = string(messaging.Failed), "Failed - Recipient Opted Out (STOP)", messaging.ErrOptedOut
	}
	if err := p.st.WriteMessage(ctx, &m); err != nil {
		return store.Message{}, err
	}
	if !out {
		queued := m
		q.Add(&queued)
	}
	return m, nil
}
