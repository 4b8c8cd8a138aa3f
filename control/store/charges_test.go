package store

import (
	"context"
	"testing"
	"time"
)

// TestCharges: a final priced row charges its account in its own
// transaction, once however often it is written; the low-balance crossing
// is reported once; a message's charge comes with its sent status.
func TestCharges(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := newAccount(t, s, "billed") // balance 10.00, low 2.00
		now := time.Now()
		live := Call{SID: NewSID(PrefixCall), AccountSID: a.SID, From: "+14155550100", To: "+14155550199", Status: CallInProgress,
			Created: now, Answered: now, Price: 3 * Unit} // not final: not charged
		if bals, err := s.WriteCalls(ctx, []Call{live}); err != nil || len(bals) != 0 {
			t.Fatalf("live row: %v %v", bals, err)
		}
		done := live
		done.Status, done.Ended, done.Duration = CallCompleted, now.Add(time.Minute), 60
		transit := done
		transit.SID, transit.AccountSID = NewSID(PrefixCall), ""
		for i := range 3 { // a retried batch, a restart writing it again
			bals, err := s.WriteCalls(ctx, []Call{done, transit})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 && (len(bals) != 1 || bals[0].Balance != 7*Unit || bals[0].Low) || i > 0 && len(bals) != 0 {
				t.Fatalf("write %d: balances %+v", i, bals)
			}
		}
		if got, _ := s.Account(ctx, a.SID); got.Balance != 7*Unit {
			t.Fatalf("balance %v; want 7.00", got.Balance)
		}
		if c, _ := s.Call(ctx, a.SID, done.SID); c.Price != 3*Unit {
			t.Fatalf("call price %v", c.Price)
		}

		// Down to the threshold: reported once, not again below it.
		second := done
		second.SID, second.Price = NewSID(PrefixCall), 5*Unit
		bals, err := s.WriteCalls(ctx, []Call{second})
		if err != nil || len(bals) != 1 || bals[0].Balance != 2*Unit || !bals[0].Low {
			t.Fatalf("to the threshold: %+v %v", bals, err)
		}
		m := Message{SID: NewSID(PrefixMessage), AccountSID: a.SID, From: "+14155550100", To: "+14155550199", Direction: DirectionOutboundAPI,
			Status: "sending", Body: "hi", Segments: 1, Created: now}
		if err := s.WriteMessage(ctx, &m); err != nil {
			t.Fatal(err)
		}
		m.Status, m.Price = "sent", 7500
		moved, bal, err := s.SetMessageStatusCharged(ctx, &m)
		if err != nil || !moved || bal == nil || bal.Balance != 2*Unit-7500 || bal.Low {
			t.Fatalf("message charge: %v %+v %v", moved, bal, err)
		}
		m.Status = "delivered"
		if _, bal, err := s.SetMessageStatusCharged(ctx, &m); err != nil || bal != nil {
			t.Fatalf("delivered charged again: %+v %v", bal, err)
		}
		if got, _ := s.Charged(ctx, m.SID); got != 7500 {
			t.Fatalf("message charged %v", got)
		}
		// A top-up above the threshold arms the notification again.
		if _, err := s.UpdateAccount(ctx, "cli", a.SID, func(a *Account) error { a.Balance = 2*Unit + 1; return nil }); err != nil {
			t.Fatal(err)
		}
		third := second
		third.SID, third.Price = NewSID(PrefixCall), 1
		if bals, err := s.WriteCalls(ctx, []Call{third}); err != nil || len(bals) != 1 || !bals[0].Low {
			t.Fatalf("after a top-up, down to the threshold again: %+v %v", bals, err)
		}
		if _, err := s.UpdateAccount(ctx, "cli", a.SID, func(a *Account) error { a.Balance = 2*Unit - 7500; return nil }); err != nil {
			t.Fatal(err)
		}
		all, err := s.Balances(ctx)
		if err != nil || all[a.SID] != 2*Unit-7500 {
			t.Fatalf("balances %v %v", all, err)
		}
	})
}
