package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMessagesAndOptOuts(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b := newAccount(t, s, "a"), newAccount(t, s, "b")
		t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
		var sids []string
		for i, st := range []string{"queued", "sending", "delivered", "queued"} {
			m := Message{SID: NewSID(PrefixMessage), AccountSID: a.SID, From: "+14155550100", To: "+14155550199", Direction: "outbound-api",
				Status: st, Body: "hi", Segments: 2, Price: 7500, StatusCallback: "https://hooks.example.com/s", Created: t0.Add(time.Duration(i) * time.Second)}
			if err := s.WriteMessage(ctx, &m); err != nil {
				t.Fatal(err)
			}
			sids = append(sids, m.SID)
		}
		in := Message{SID: NewSID(PrefixMessage), AccountSID: a.SID, From: "+14155550199", To: "+14155550100", Direction: "inbound", Status: "received", Created: t0}
		if err := s.WriteMessage(ctx, &in); err != nil {
			t.Fatal(err)
		}
		// The queue: queued and sending outbound ones, oldest first.
		pending, err := s.PendingMessages(ctx)
		if err != nil || len(pending) != 3 || pending[0].SID != sids[0] || pending[1].SID != sids[1] || pending[2].SID != sids[3] {
			t.Fatalf("pending %v %v", pending, err)
		}
		// A status change keeps what it does not change; the carrier's ID
		// finds the message.
		m := pending[0]
		m.Status, m.Reason, m.RawStatus, m.CarrierID, m.Sent = "delivered", "Delivered Successfully", "Delivered to handset", "abc@sbc", t0.Add(time.Minute)
		if err := s.WriteMessage(ctx, &m); err != nil {
			t.Fatal(err)
		}
		got, err := s.MessageByCarrierID(ctx, "abc@sbc")
		if err != nil || got.SID != m.SID || got.Status != "delivered" || got.RawStatus != "Delivered to handset" || got.Segments != 2 ||
			got.Price != 7500 || got.StatusCallback != "https://hooks.example.com/s" || !got.Sent.Equal(m.Sent) || !got.Created.Equal(t0) {
			t.Fatalf("by carrier id: %+v %v", got, err)
		}
		if _, err := s.MessageByCarrierID(ctx, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("an empty carrier id found %v", err)
		}
		// Another account does not see it.
		if _, err := s.Message(ctx, m.SID, b.SID); !errors.Is(err, ErrNotFound) {
			t.Errorf("account b fetched a's message: %v", err)
		}
		if l, err := s.ListMessages(ctx, MessageFilter{AccountSID: a.SID, Status: "queued"}, Page{}); err != nil || len(l) != 1 || l[0].SID != sids[3] {
			t.Errorf("queued of a: %v %v", l, err)
		}
		// Opt-outs are per account, idempotent, lifted by an opt-in.
		for range 2 {
			if err := s.OptOut(ctx, a.SID, "+14155550199", t0); err != nil {
				t.Fatal(err)
			}
		}
		if out, _ := s.OptedOut(ctx, a.SID, "+14155550199"); !out {
			t.Error("not opted out")
		}
		if out, _ := s.OptedOut(ctx, b.SID, "+14155550199"); out {
			t.Error("opted out of another account")
		}
		if l, err := s.OptOuts(ctx, a.SID, Page{}); err != nil || len(l) != 1 || l[0].Number != "+14155550199" {
			t.Errorf("opt-outs %v %v", l, err)
		}
		if err := s.OptIn(ctx, a.SID, "+14155550199"); err != nil {
			t.Fatal(err)
		}
		if out, _ := s.OptedOut(ctx, a.SID, "+14155550199"); out {
			t.Error("still opted out after START")
		}
	})
}

// A status only moves forward: a late "sent" from the queue keeps a
// delivery report that came first, and a final status stays.
func TestSetMessageStatusForward(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := newAccount(t, s, "a")
		m := Message{SID: NewSID(PrefixMessage), AccountSID: a.SID, Direction: DirectionOutboundAPI, Status: "queued", Body: "hi"}
		if err := s.WriteMessage(ctx, &m); err != nil {
			t.Fatal(err)
		}
		step := func(status, raw string, want bool) {
			t.Helper()
			u := m
			u.Status, u.RawStatus, u.CarrierID = status, raw, "c1"
			if ok, err := s.SetMessageStatus(ctx, &u); err != nil || ok != want {
				t.Fatalf("%s: %v %v; want %v", status, ok, err, want)
			}
		}
		step("sending", "", true)
		step("sending", "", true) // sent again after a restart: a new carrier ID
		step("delivered", "Delivered to handset", true)
		step("sent", "SIP 200 OK", false)
		step("failed", "SIP 408", false)
		got, err := s.Message(ctx, m.SID)
		if err != nil || got.Status != "delivered" || got.RawStatus != "Delivered to handset" || got.Body != "hi" {
			t.Fatalf("row %+v %v", got, err)
		}
	})
}
