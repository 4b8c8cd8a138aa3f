package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"sbc/control/messaging"
)

func TestSendMessage(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{})
	b := mustAccount(t, p, "b", AccountSpec{})
	for _, n := range []struct {
		acct, num string
		sms       bool
	}{{a.SID, "+14155550100", true}, {a.SID, "+14155550101", false}, {b.SID, "+14155550200", true}} {
		if _, err := p.CreateNumber(ctx, "cli", n.acct, NumberSpec{PhoneNumber: &n.num, SMS: &n.sms}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", "hi", ""); !errors.Is(err, ErrNoMessaging) {
		t.Fatalf("without a queue: %v", err)
	}
	q := messaging.NewQueue(p.st, nil, p.SMSRate, slog.New(slog.NewTextHandler(io.Discard, nil))) // not started: holds what it gets
	p.SetMessageQueue(q)
	for _, tt := range []struct {
		name, from, to, body, callback string
		want                           error
		field                          string
	}{
		{"not SMS-enabled", "+14155550101", "+14155550199", "hi", "", ErrSourceNotSMS, ""},
		{"another account's number", "+14155550200", "+14155550199", "hi", "", ErrSourceNotSMS, ""},
		{"not a number of ours", "+14155550999", "+14155550199", "hi", "", ErrSourceNotSMS, ""},
		{"bad To", "+14155550100", "14155550199x", "hi", "", ErrBadTo, ""},
		{"empty body", "+14155550100", "+14155550199", "  ", "", ErrNoBody, ""},
		{"long body", "+14155550100", "+14155550199", strings.Repeat("a", 1601), "", ErrBodyTooLong, ""},
		{"private callback", "+14155550100", "+14155550199", "hi", "https://10.0.0.1/", nil, "StatusCallback"},
	} {
		_, err := p.SendMessage(ctx, a.SID, tt.from, tt.to, tt.body, tt.callback)
		var fe *FieldError
		if tt.want != nil && !errors.Is(err, tt.want) || tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("%s: %v; want %v %s", tt.name, err, tt.want, tt.field)
		}
	}
	if q.Queued() != 0 {
		t.Fatalf("%d queued after refusals", q.Queued())
	}
	m, err := p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", strings.Repeat("b", 161), "https://hooks.example.com/s")
	if err != nil || m.Status != "queued" || m.Segments != 2 || q.Queued() != 1 {
		t.Fatalf("sent: %+v %v, %d queued", m, err, q.Queued())
	}
	// The recipient wrote STOP to the account: its next message fails at
	// once, saying why, and is not queued.
	if err := p.st.OptOut(ctx, a.SID, "+14155550199", p.now()); err != nil {
		t.Fatal(err)
	}
	m, err = p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", "hi", "")
	if err != nil || m.Status != "failed" || m.ErrorCode != messaging.ErrOptedOut || !strings.Contains(m.Reason, "Opted Out") || q.Queued() != 1 {
		t.Fatalf("to an opted-out recipient: %+v %v", m, err)
	}
	if got, err := p.st.Message(ctx, m.SID, a.SID); err != nil || got.Status != "failed" {
		t.Fatalf("its row: %+v %v", got, err)
	}
}
