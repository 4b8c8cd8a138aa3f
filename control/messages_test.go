package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"sbc/control/messaging"
	"sbc/control/store"
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
		{"NUL in the body", "+14155550100", "+14155550199", "a\x00b", "", nil, "Body"},
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

func TestReceiveMessageAndReports(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{})
	for _, n := range []struct {
		num       string
		sms, stop bool
	}{{"+14155550100", true, true}, {"+14155550101", false, true}, {"+14155550102", true, false}} {
		if _, err := p.CreateNumber(ctx, "cli", a.SID, NumberSpec{PhoneNumber: &n.num, SMS: ptr(n.sms), SMSStop: ptr(n.stop)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.ReceiveMessage(ctx, "+14155550199", "+14155550999", "hi"); !errors.Is(err, ErrNotOurNumber) {
		t.Errorf("to nobody's number: %v", err)
	}
	if _, _, err := p.ReceiveMessage(ctx, "+14155550199", "+14155550101", "hi"); !errors.Is(err, ErrNumberNotSMS) {
		t.Errorf("to a voice-only number: %v", err)
	}
	// STOP to a number that leaves keywords to its customer: only filed.
	if m, kw, err := p.ReceiveMessage(ctx, "+14155550199", "+14155550102", "STOP"); err != nil || kw != messaging.NoKeyword || m.Status != "received" {
		t.Errorf("STOP to a number without stop handling: %+v %v %v", m, kw, err)
	}
	if out, _ := p.st.OptedOut(ctx, a.SID, "+14155550199"); out {
		t.Error("opted out by a number that leaves keywords to its customer")
	}
	if _, kw, err := p.ReceiveMessage(ctx, "+14155550199", "+14155550100", "Stop"); err != nil || kw != messaging.OptOut {
		t.Errorf("STOP: %v %v", kw, err)
	}
	if out, _ := p.st.OptedOut(ctx, a.SID, "+14155550199"); !out {
		t.Error("not opted out after STOP")
	}
	// Reports: translated, the raw text kept; a final status stays.
	m := store.Message{SID: store.NewSID(store.PrefixMessage), AccountSID: a.SID, From: "+14155550100", To: "+14155550198",
		Direction: store.DirectionOutboundAPI, Status: "sent", CarrierID: "c1@sbc"}
	if err := p.st.WriteMessage(ctx, &m); err != nil {
		t.Fatal(err)
	}
	got, err := p.DeliveryReport(ctx, "c1@sbc", "Spam Reject\r\n")
	if err != nil || got.Status != "failed" || got.Reason != "Failed - Content Flagged as SPAM" || got.RawStatus != "Spam Reject" {
		t.Fatalf("spam report: %+v %v", got, err)
	}
	if got, err = p.DeliveryReport(ctx, "c1@sbc", "Delivered to handset"); err != nil || got.Status != "failed" {
		t.Errorf("a report after a final status: %+v %v", got, err)
	}
	// An interim report keeps the message open; the final one closes it.
	m2 := store.Message{SID: store.NewSID(store.PrefixMessage), AccountSID: a.SID, From: "+14155550100", To: "+14155550198",
		Direction: store.DirectionOutboundAPI, Status: "sent", CarrierID: "c2@sbc"}
	if err := p.st.WriteMessage(ctx, &m2); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ raw, status string }{{"ACCEPTD", "sent"}, {"DELIVRD", "delivered"}, {"UNDELIV", "delivered"}} {
		if got, err := p.DeliveryReport(ctx, "c2@sbc", r.raw); err != nil || got.Status != r.status {
			t.Errorf("%s: %+v %v; want %s", r.raw, got, err, r.status)
		}
	}
	if _, err := p.DeliveryReport(ctx, "nobody@sbc", "Delivered to handset"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a report on no message: %v", err)
	}
}

// TestCheckDispatch: a message that waited in the queue does not leave
// once its recipient has opted out, its number lost SMS or its account is
// no longer active; it fails with the reason instead.
func TestCheckDispatch(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{})
	num, sms := "+14155550100", true
	n, err := p.CreateNumber(ctx, "cli", a.SID, NumberSpec{PhoneNumber: &num, SMS: &sms})
	if err != nil {
		t.Fatal(err)
	}
	m := store.Message{SID: store.NewSID(store.PrefixMessage), AccountSID: a.SID, From: num, To: "+14155550199"}
	if reason, code := p.CheckDispatch(ctx, &m); code != 0 {
		t.Fatalf("a message free to go: %q %d", reason, code)
	}
	if err := p.st.OptOut(ctx, a.SID, "+14155550199", p.now()); err != nil {
		t.Fatal(err)
	}
	if _, code := p.CheckDispatch(ctx, &m); code != messaging.ErrOptedOut {
		t.Fatalf("opted out meanwhile: code %d", code)
	}
	if err := p.st.OptIn(ctx, a.SID, "+14155550199"); err != nil {
		t.Fatal(err)
	}
	off := false
	if _, err := p.UpdateNumber(ctx, "cli", a.SID, n.SID, NumberSpec{SMS: &off}); err != nil {
		t.Fatal(err)
	}
	if _, code := p.CheckDispatch(ctx, &m); code != ErrSourceNotSMS.Code {
		t.Fatalf("number without SMS meanwhile: code %d", code)
	}
	if _, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Status: ptr(store.StatusSuspended)}); err != nil {
		t.Fatal(err)
	}
	if _, code := p.CheckDispatch(ctx, &m); code != 20005 {
		t.Fatalf("account suspended meanwhile: code %d", code)
	}
}
