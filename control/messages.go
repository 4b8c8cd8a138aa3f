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
	ErrQueueFull    = &CodedError{30001, "Queue overflow: the account has four hours' worth of messages waiting at its SMS rate"}
	ErrNoBalance    = &CodedError{20402, "Insufficient balance: the account's balance is at or below zero"}
	ErrUnrated      = &CodedError{21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number (no rate)"}
	ErrNoMessaging  = errors.New("control: messaging is not running")
)

// maxQueuedFor is how many messages an account may have waiting: four
// hours at its rate, at least 1,000 (each waits in memory, body and all).
func maxQueuedFor(rate float64) int { return max(int(rate*4*3600), 1000) }

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
	case strings.ContainsRune(body, 0):
		return store.Message{}, fieldErr("Body", "a NUL character (U+0000) is not text")
	}
	if err := p.cfg.Webhooks.CheckURL(callback); err != nil {
		return store.Message{}, fieldErr("StatusCallback", "%v", err)
	}
	if r := p.led.rates; r.Enabled() {
		if b, ok := p.led.balance(account); ok && b <= 0 || !ok && a.Balance <= 0 {
			return store.Message{}, ErrNoBalance
		}
		if _, ok := r.SMS(dst); !ok && r.RefuseUnrated() {
			return store.Message{}, ErrUnrated
		}
	}
	if q.QueuedFor(account) >= maxQueuedFor(p.SMSRate(account)) {
		return store.Message{}, ErrQueueFull
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
	if _, err := p.writeMessage(ctx, store.MessageWrite{Insert: true, M: &m}); err != nil {
		return store.Message{}, err
	}
	p.messageHook(&m)
	if !out {
		queued := m
		q.Add(&queued)
	}
	return m, nil
}

// Refusals of an inbound message, each with its SIP answer.
var (
	ErrNotOurNumber = errors.New("control: no account has the number") // 404
	ErrNumberNotSMS = errors.New("control: the number takes no SMS")   // 403
)

// ReceiveMessage files a message a carrier delivered to number to: its
// row, status received, in the account owning to. Where the number handles
// keywords (SMSStop), a body that is exactly STOP (or its kin) opts the
// sender out of all the account's messages, START lets them through
// again.
func (p *Plane) ReceiveMessage(ctx context.Context, from, to, body string) (store.Message, messaging.Keyword, error) {
	dst, ok := E164(to)
	n := p.snap.Load().numbers[dst]
	switch {
	case !ok || n == nil:
		return store.Message{}, messaging.NoKeyword, ErrNotOurNumber
	case !n.SMS:
		return store.Message{}, messaging.NoKeyword, ErrNumberNotSMS
	}
	src := from
	if e, ok := E164(from); ok {
		src = e
	}
	segments, _ := messaging.Segments(body)
	m := store.Message{SID: store.NewSID(store.PrefixMessage), AccountSID: n.AccountSID, From: src, To: dst,
		Direction: store.DirectionInbound, Status: string(messaging.Received), Body: body, Segments: segments, Created: p.now().UTC()}
	if _, err := p.writeMessage(ctx, store.MessageWrite{Insert: true, M: &m}); err != nil {
		return store.Message{}, messaging.NoKeyword, err
	}
	p.inboundHook(&m, n)
	kw := messaging.NoKeyword
	if n.SMSStop {
		kw = messaging.KeywordOf(body)
	}
	var err error
	switch kw {
	case messaging.OptOut:
		err = p.st.OptOut(ctx, n.AccountSID, src, m.Created)
	case messaging.OptIn:
		err = p.st.OptIn(ctx, n.AccountSID, src)
	}
	return m, kw, err
}

// DeliveryReport applies a carrier's report on the message it gave
// carrierID (raw: the report's text, or "imdn:delivered" and its kin):
// translated through [[control.sms.status]], both kept. A message whose
// status is final already keeps it. ErrNotFound: no such message.
func (p *Plane) DeliveryReport(ctx context.Context, carrierID, raw string) (store.Message, error) {
	m, err := p.st.MessageByCarrierID(ctx, carrierID)
	if err != nil {
		return m, err
	}
	if messaging.Status(m.Status).Final() {
		return m, nil
	}
	r := p.cfg.SMS.Translate(strings.TrimSpace(raw))
	prev := m.Status
	m.Status, m.Reason, m.RawStatus = string(r.Status), r.Reason, r.Raw
	if r.Status == messaging.Failed || r.Status == messaging.Undelivered {
		m.ErrorCode = messaging.ErrCarrierRefused
	}
	p.priceMessage(&m)
	res, err := p.writeMessage(ctx, store.MessageWrite{M: &m})
	if err != nil {
		return m, err
	}
	if res.Balance != nil {
		p.charged([]store.Balance{*res.Balance})
	}
	if res.Moved && m.Status != prev { // an interim report (still sent) is no news
		p.messageHook(&m)
	}
	return p.st.Message(ctx, m.SID) // what the row says now
}

// CheckDispatch tells why a queued message may no longer leave (a
// messaging.Check): its account no longer active, its number no longer
// the account's or SMS-enabled, its recipient opted out meanwhile, the
// balance spent. The store is asked about opt-outs: on error the
// message goes (sending it is what was accepted).
func (p *Plane) CheckDispatch(ctx context.Context, m *store.Message) (string, int) {
	snap := p.snap.Load()
	a := snap.accounts[m.AccountSID]
	if a == nil || a.Status != store.StatusActive {
		return "Failed - Account not active", 20005
	}
	if n := snap.numbers[m.From]; n == nil || n.AccountSID != m.AccountSID || !n.SMS {
		return "Failed - " + ErrSourceNotSMS.Message, ErrSourceNotSMS.Code
	}
	if p.led.rates.Enabled() {
		if b, ok := p.led.balance(m.AccountSID); ok && b <= 0 {
			return "Failed - Insufficient balance", ErrNoBalance.Code
		}
	}
	if out, err := p.st.OptedOut(ctx, m.AccountSID, m.To); err == nil && out {
		return "Failed - Recipient Opted Out (STOP)", messaging.ErrOptedOut
	}
	return "", 0
}
