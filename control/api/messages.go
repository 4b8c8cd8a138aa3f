package api

import (
	"net/http"
	"strconv"
	"time"

	"sbc/control/store"
)

// SMS: send (queue) a message, list and fetch them, list the opt-outs.

type messageJSON struct {
	SID                 string            `json:"sid"`
	AccountSID          string            `json:"account_sid"`
	From                string            `json:"from"`
	To                  string            `json:"to"`
	Body                string            `json:"body"`
	Status              string            `json:"status"`
	Direction           string            `json:"direction"`
	NumSegments         string            `json:"num_segments"`
	NumMedia            string            `json:"num_media"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	APIVersion          string            `json:"api_version"`
	DateCreated         *string           `json:"date_created"`
	DateUpdated         *string           `json:"date_updated"`
	DateSent            *string           `json:"date_sent"`
	URI                 string            `json:"uri"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	// Beyond the CPaaS message: the status's translated reason (the
	// error_message too when it failed) and the carrier's own text.
	StatusReason  string `json:"status_reason,omitempty"`
	CarrierStatus string `json:"carrier_status,omitempty"`
}

func messageOut(m *store.Message) messageJSON {
	j := messageJSON{SID: m.SID, AccountSID: m.AccountSID, From: m.From, To: m.To, Body: m.Body, Status: m.Status,
		Direction: m.Direction, NumSegments: strconv.Itoa(m.Segments), NumMedia: "0", PriceUnit: "USD", APIVersion: "2010-04-01",
		DateCreated: rfc2822(m.Created), DateUpdated: rfc2822(m.Updated), DateSent: rfc2822(m.Sent),
		URI: Version + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID + ".json", SubresourceURIs: map[string]string{},
		CarrierStatus: m.RawStatus}
	if m.Price != 0 {
		p := "-" + m.Price.String()
		j.Price = &p
	}
	if m.ErrorCode != 0 {
		j.ErrorCode = &m.ErrorCode
	}
	if m.Reason != "" && (m.Status == "failed" || m.Status == "undelivered") {
		j.ErrorMessage = &m.Reason
	}
	if m.Reason != "" {
		j.StatusReason = m.Reason // the translated reason, delivered or not
	}
	return j
}

func (a *API) sendMessage(q *request) (any, error) {
	from, _ := q.get("From")
	to, _ := q.get("To")
	body, _ := q.get("Body")
	callback, _ := q.get("StatusCallback")
	m, err := a.p.SendMessage(q.ctx, q.accountSID(), from, to, body, callback)
	if err != nil {
		return nil, err
	}
	q.status = http.StatusCreated
	return messageOut(&m), nil
}

func (a *API) listMessages(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	f := store.MessageFilter{AccountSID: q.accountSID()}
	f.Status, _ = q.get("Status")
	if v, ok := q.get("From"); ok {
		f.From = normalise(v)
	}
	if v, ok := q.get("To"); ok {
		f.To = normalise(v)
	}
	msgs, err := a.p.Store().ListMessages(q.ctx, f, p.store)
	if err != nil {
		return nil, err
	}
	out := make([]messageJSON, len(msgs))
	var lastT time.Time
	var lastSID string
	for i := range msgs {
		out[i] = messageOut(&msgs[i])
		lastT, lastSID = msgs[i].Created, msgs[i].SID
	}
	return q.keyset("messages", out, len(out), p, lastT, lastSID), nil
}

func (a *API) fetchMessage(q *request) (any, error) {
	sid, err := q.pathSID("msg", store.PrefixMessage)
	if err != nil {
		return nil, err
	}
	m, err := a.p.Store().Message(q.ctx, sid, q.accountSID())
	if err != nil {
		return nil, err
	}
	return messageOut(&m), nil
}

type optOutJSON struct {
	AccountSID  string  `json:"account_sid"`
	PhoneNumber string  `json:"phone_number"`
	DateCreated *string `json:"date_created"`
}

func (a *API) listOptOuts(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	list, err := a.p.Store().OptOuts(q.ctx, q.accountSID(), store.Page{Size: p.size + 1, Offset: p.num * p.size})
	if err != nil {
		return nil, err
	}
	more := len(list) > p.size
	list = list[:min(len(list), p.size)]
	out := make([]optOutJSON, len(list))
	for i, e := range list {
		out[i] = optOutJSON{AccountSID: e.AccountSID, PhoneNumber: e.Number, DateCreated: rfc2822(e.Created)}
	}
	return q.list("opt_outs", out, len(out), p, more, ""), nil
}
