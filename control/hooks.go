package control

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"sbc/control/messaging"
	"sbc/control/store"
)

// Poster sends webhooks (the daemon's webhook.Sender): Post queues a form
// POST of params to rawURL signed with token (X-Twilio-Signature), in the
// order posted among those of one key, and never blocks; false: dropped.
type Poster interface {
	Post(rawURL string, params url.Values, key, token string) bool
}

// hooks is where the plane's webhooks go, set by the daemon.
type hooks struct {
	mu     sync.RWMutex
	w      Poster
	mail   Mailer
	warned sync.Map // account SID → when its unsignable webhooks were last logged
}

// SetWebhooks gives the plane its webhook sender (nil: none sent).
func (p *Plane) SetWebhooks(w Poster) {
	p.hooks.mu.Lock()
	p.hooks.w = w
	p.hooks.mu.Unlock()
}

// apiVersion is the ApiVersion webhooks carry: the API's.
const apiVersion = "2010-04-01"

// hook posts params to rawURL on behalf of account, signed with its auth
// token. A webhook the plane cannot sign is not sent (logged): the
// customer's validator would refuse it anyway.
func (p *Plane) hook(account, rawURL, key string, params url.Values) {
	p.hooks.mu.RLock()
	w := p.hooks.w
	p.hooks.mu.RUnlock()
	if w == nil || rawURL == "" {
		return
	}
	a := p.snap.Load().accounts[account]
	if a == nil {
		return
	}
	token, err := p.tokens.open(account, a.TokenSealed)
	if err != nil {
		// Once a minute an account: a message flood would repeat it.
		if last, ok := p.hooks.warned.Load(account); !ok || time.Since(last.(time.Time)) > time.Minute {
			p.hooks.warned.Store(account, time.Now())
			p.log.Warn("webhooks not sent: they cannot be signed", "account_sid", account, "error", err)
		}
		return
	}
	params.Set("AccountSid", account)
	params.Set("ApiVersion", apiVersion)
	w.Post(rawURL, params, key, token)
}

// SetMessageStatus records m's new status (store.SetMessageStatus: only
// forward) and, when it moved, posts it to the message's status
// callback.
// With billing on, a message the carrier took is charged its price in
// the same transaction (priceMessage).
func (p *Plane) SetMessageStatus(ctx context.Context, m *store.Message) (bool, error) {
	p.priceMessage(m)
	res, err := p.writeMessage(ctx, store.MessageWrite{M: m})
	if err == nil && res.Moved {
		if res.Balance != nil {
			p.charged([]store.Balance{*res.Balance})
		}
		p.messageHook(m)
	}
	return res.Moved, err
}

// messageHook posts m's status to its status callback: MessageStatus
// (and SmsStatus, its older name), ErrorCode when it failed.
func (p *Plane) messageHook(m *store.Message) {
	if m.StatusCallback == "" {
		return
	}
	v := url.Values{"MessageSid": {m.SID}, "SmsSid": {m.SID}, "From": {m.From}, "To": {m.To},
		"MessageStatus": {m.Status}, "SmsStatus": {m.Status}}
	if m.ErrorCode != 0 {
		v.Set("ErrorCode", strconv.Itoa(m.ErrorCode))
	}
	if m.RawStatus != "" {
		v.Set("ChannelStatusMessage", m.RawStatus) // the carrier's own words
	}
	p.hook(m.AccountSID, m.StatusCallback, m.SID, v)
}

// inboundHook posts a received message to its number's SMS URL. A
// conversation's messages (one sender, one number) arrive in order.
func (p *Plane) inboundHook(m *store.Message, n *store.Number) {
	v := url.Values{"MessageSid": {m.SID}, "SmsSid": {m.SID}, "SmsMessageSid": {m.SID}, "From": {m.From}, "To": {m.To},
		"Body": {m.Body}, "NumMedia": {"0"}, "NumSegments": {strconv.Itoa(m.Segments)}, "SmsStatus": {string(messaging.Received)}}
	p.hook(m.AccountSID, n.SMSURL, m.To+" "+m.From, v)
}

// callHook posts the end of c to the status callback of the account's
// number it was to or from (the CPaaS default: the final status only).
func (p *Plane) callHook(c *store.Call) {
	if c.AccountSID == "" || !c.Final() {
		return
	}
	snap := p.snap.Load()
	n := snap.numbers[c.To]
	if n == nil || n.AccountSID != c.AccountSID || n.StatusCallback == "" {
		n = snap.numbers[c.From]
	}
	if n == nil || n.AccountSID != c.AccountSID || n.StatusCallback == "" {
		return
	}
	v := url.Values{"CallSid": {c.SID}, "CallStatus": {c.Status}, "Direction": {c.Direction}, "From": {c.From}, "To": {c.To},
		"CallDuration": {strconv.Itoa(c.Duration)}, "SipResponseCode": {strconv.Itoa(c.SIPCode)},
		"Timestamp": {c.Ended.UTC().Format(time.RFC1123Z)}, "SequenceNumber": {"0"}}
	p.hook(c.AccountSID, n.StatusCallback, c.SID, v)
}

// priceMessage prices an outbound message the carrier has taken (sent,
// or a report past it: delivered, undelivered, which may come before
// the queue has recorded the carrier's 200); the store charges a price
// once per message.
func (p *Plane) priceMessage(m *store.Message) {
	r := p.led.rates
	if !r.Enabled() || m.Price != 0 || m.Direction != store.DirectionOutboundAPI {
		return
	}
	switch messaging.Status(m.Status) {
	case messaging.Sent, messaging.Delivered, messaging.Undelivered:
		m.Price, _ = r.SMSPrice(m.To, m.Segments)
	}
}

// Mailer sends e-mail (the daemon's mailer.Sender): Send queues one and
// never blocks; false: dropped.
type Mailer interface {
	Send(to, subject, body string) bool
}

// SetMailer gives the plane its mailer (nil: no e-mail).
func (p *Plane) SetMailer(m Mailer) {
	p.hooks.mu.Lock()
	p.hooks.mail = m
	p.hooks.mu.Unlock()
}

// lowBalance tells an account its balance fell to its threshold: once per
// crossing (the store's flag), to its notification URL (signed, as every
// webhook) and e-mail address.
func (p *Plane) lowBalance(b store.Balance) {
	a := p.snap.Load().accounts[b.AccountSID]
	if a == nil {
		return
	}
	p.log.Info("account balance low: notifying", "account_sid", a.SID, "balance", b.Balance.String(), "threshold", a.LowBalance.String(),
		"webhook", a.NotifyURL != "", "email", a.Email != "")
	if a.NotifyURL != "" {
		p.hook(a.SID, a.NotifyURL, a.SID, url.Values{"Event": {"low-balance"}, "FriendlyName": {a.Name},
			"Balance": {b.Balance.String()}, "LowBalanceThreshold": {a.LowBalance.String()}})
	}
	p.hooks.mu.RLock()
	m := p.hooks.mail
	p.hooks.mu.RUnlock()
	if a.Email != "" && m != nil {
		m.Send(a.Email, "Low balance: "+a.Name+" "+b.Balance.String(), fmt.Sprintf(
			"The balance of account %s (%s) is %s, at or below its low-balance threshold of %s.\n\n"+
				"Calls and messages stop when it reaches zero; calls in progress end then.\n"+
				"This notice is sent once each time the balance falls to the threshold.\n",
			a.Name, a.SID, b.Balance.String(), a.LowBalance.String()))
	}
}
