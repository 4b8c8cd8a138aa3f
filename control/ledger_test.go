package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sbc/control/billing"
	"sbc/control/messaging"
	"sbc/control/store"
)

func billedPlane(t *testing.T) (*Plane, *time.Time) {
	grace := 2 * time.Second
	return testPlane(t, Config{Classes: []Class{{Name: "intl", International: true}},
		Billing: billing.Config{Enabled: true, Increment: billing.IncrementSecond, Grace: &grace, Unrated: billing.UnratedRefuse,
			Rates: []billing.Rate{{Prefix: "+1", PerMinute: "0.60", PerSMS: "0.01"}}}})
}

// TestBilling: admission refuses an account without balance (403, cause
// 402) and unrated destinations; a call's final row charges its price
// once written; a message is charged when the carrier takes it.
func TestBilling(t *testing.T) {
	p, _ := billedPlane(t)
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{Class: ptr("intl"), Balance: ptr(store.Unit)})
	broke := mustAccount(t, p, "broke", AccountSpec{})
	mustNumber(t, p, a.SID, "+14155550100", "")

	at := Attempt{Account: a.SID, From: "+14155550100", To: "+14155550199"}
	d := p.AdmitCall(at)
	if !d.Admitted() {
		t.Fatalf("rated call with balance refused: %+v", d)
	}
	d.Release()
	if d := p.AdmitCall(Attempt{Account: a.SID, To: "+442071234567"}); d.Code != 403 || d.Cause != 0 {
		t.Fatalf("unrated destination: %+v; want 403", d)
	}
	if d := p.AdmitCall(Attempt{Account: broke.SID, To: "+14155550199"}); d.Code != 403 || d.Cause != 402 {
		t.Fatalf("account without balance: %+v; want 403 cause 402", d)
	}

	// 30 s at 0.60 a minute: 0.30, charged once the final row is in.
	sid := store.NewSID(store.PrefixCall)
	now := time.Now()
	row := store.Call{SID: sid, AccountSID: a.SID, From: "+14155550100", To: "+14155550199", Status: store.CallInProgress, Created: now, Answered: now}
	p.LogCall(row)
	row.Status, row.Ended, row.Duration = store.CallCompleted, now.Add(30*time.Second), 30
	p.LogCall(row)
	if err := p.FlushCall(ctx, sid); err != nil {
		t.Fatal(err)
	}
	got, _ := p.st.Call(ctx, a.SID, sid)
	acct, _ := p.st.Account(ctx, a.SID)
	if got.Price != 300000 || acct.Balance != 700000 {
		t.Fatalf("call price %v, balance %v; want 0.30 and 0.70", got.Price, acct.Balance)
	}
	if b, ok := p.led.balance(a.SID); !ok || b != 700000 {
		t.Fatalf("balance in memory %v %v", b, ok)
	}

	// A message: charged per segment when sent, not again when delivered.
	q := messaging.NewQueue(p, nil, p.SMSRate, slog.New(slog.NewTextHandler(io.Discard, nil))) // not started
	p.SetMessageQueue(q)
	sms := true
	if _, err := p.UpdateNumber(ctx, "cli", a.SID, mustNumberSID(t, p, a.SID, "+14155550100"), NumberSpec{SMS: &sms}); err != nil {
		t.Fatal(err)
	}
	m, err := p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", strings.Repeat("x", 200), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendMessage(ctx, a.SID, "+14155550100", "+442071234567", "hi", ""); !errors.Is(err, ErrUnrated) {
		t.Fatalf("SMS to an unrated destination: %v", err)
	}
	for _, st := range []messaging.Status{messaging.Sending, messaging.Sent, messaging.Delivered} {
		m.Status = string(st)
		if _, err := p.SetMessageStatus(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := p.st.Charged(ctx, m.SID); c != store.Money(m.Segments)*10000 || m.Segments < 2 {
		t.Fatalf("message of %d segments charged %v", m.Segments, c)
	}

	// The carrier's report may come before the queue records its 200:
	// charged with the report, not again with the late "sent".
	early, err := p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", "early", "")
	if err != nil {
		t.Fatal(err)
	}
	early.Status, early.CarrierID = string(messaging.Sending), "early@sbc"
	if _, err := p.SetMessageStatus(ctx, &early); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeliveryReport(ctx, "early@sbc", "Delivered to handset"); err != nil {
		t.Fatal(err)
	}
	before, _ := p.st.Account(ctx, a.SID)
	early.Status = string(messaging.Sent)
	if moved, err := p.SetMessageStatus(ctx, &early); err != nil || moved {
		t.Fatalf("late sent: moved %v %v", moved, err)
	}
	after, _ := p.st.Account(ctx, a.SID)
	if c, _ := p.st.Charged(ctx, early.SID); c != 10000 || after.Balance != before.Balance {
		t.Fatalf("report-first message charged %v; balance %v then %v", c, before.Balance, after.Balance)
	}

	// A top-up adds to the balance as it stands (charges made since an
	// operator last read it stay); not with Balance at once.
	now0, _ := p.st.Account(ctx, a.SID)
	if got, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Adjust: ptr(5 * store.Unit)}); err != nil || got.Balance != now0.Balance+5*store.Unit {
		t.Fatalf("adjusted by 5.00: %v %v; had %v", got.Balance, err, now0.Balance)
	}
	if _, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Adjust: ptr(store.Unit), Balance: ptr(store.Unit)}); err == nil {
		t.Error("Balance and BalanceAdjustment at once taken")
	}

	// Spent: no more calls or messages.
	if _, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Balance: ptr(store.Money(0))}); err != nil {
		t.Fatal(err)
	}
	if err := p.refreshBalances(ctx); err != nil {
		t.Fatal(err)
	}
	if d := p.AdmitCall(at); d.Code != 403 || d.Cause != 402 {
		t.Fatalf("after the balance ran out: %+v", d)
	}
	if _, err := p.SendMessage(ctx, a.SID, "+14155550100", "+14155550199", "hi", ""); !errors.Is(err, ErrNoBalance) {
		t.Fatalf("SMS without balance: %v", err)
	}
}

func mustNumberSID(t *testing.T, p *Plane, account, num string) string {
	t.Helper()
	n := p.snap.Load().numbers[num]
	if n == nil || n.AccountSID != account {
		t.Fatalf("no number %s", num)
	}
	return n.SID
}

// TestBalanceWatch: calls whose running cost spends the balance are
// ended once the grace period has passed, not before; another account's
// are left alone.
func TestBalanceWatch(t *testing.T) {
	p, _ := billedPlane(t)
	a := mustAccount(t, p, "a", AccountSpec{Balance: ptr(store.Unit)}) // 1.00: 100 s at 0.60/min
	b := mustAccount(t, p, "b", AccountSpec{Balance: ptr(100 * store.Unit)})
	if err := p.refreshBalances(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hung []string
	p.SetHangup(func(sid, _ string) bool {
		mu.Lock()
		hung = append(hung, sid)
		mu.Unlock()
		return true
	})
	t0 := time.Now()
	calls := map[string]string{}
	for _, acct := range []string{a.SID, a.SID, b.SID} {
		sid := store.NewSID(store.PrefixCall)
		calls[sid] = acct
		p.LogCall(store.Call{SID: sid, AccountSID: acct, To: "+14155550199", Status: store.CallInProgress, Created: t0, Answered: t0})
	}
	// Two calls of a at 0.01/s each: 1.00 is spent after 50 s.
	for _, tt := range []struct {
		at   time.Duration
		want int
	}{{49 * time.Second, 0}, {50 * time.Second, 0}, {51 * time.Second, 0}, {52 * time.Second, 2}} {
		mu.Lock()
		hung = nil
		mu.Unlock()
		p.watchBalances(t0.Add(tt.at))
		mu.Lock()
		n := len(hung)
		for _, sid := range hung {
			if calls[sid] != a.SID {
				t.Errorf("call of another account ended: %s", sid)
			}
		}
		mu.Unlock()
		if n != tt.want {
			t.Fatalf("at %v: %d calls ended; want %d", tt.at, n, tt.want)
		}
	}
}

type mails struct {
	mu   sync.Mutex
	sent []string
}

func (m *mails) Send(to, subject, body string) bool {
	m.mu.Lock()
	m.sent = append(m.sent, to+"|"+subject+"|"+body)
	m.mu.Unlock()
	return true
}

// TestLowBalanceNotification: the first charge that takes the balance to
// the threshold notifies (webhook, e-mail), later ones do not, until a
// top-up lifts it above and it falls again.
func TestLowBalanceNotification(t *testing.T) {
	p, _ := billedPlane(t)
	ctx := context.Background()
	hooks, m := &posted{}, &mails{}
	p.SetWebhooks(hooks)
	p.SetMailer(m)
	a := mustAccount(t, p, "acme", AccountSpec{Balance: ptr(3 * store.Unit), LowBalance: ptr(2 * store.Unit),
		NotifyURL: ptr("https://hooks.example.com/low"), Email: ptr("ops@example.com")})
	call := func(seconds int) {
		t.Helper()
		sid := store.NewSID(store.PrefixCall)
		now := time.Now()
		p.LogCall(store.Call{SID: sid, AccountSID: a.SID, To: "+14155550199", Status: store.CallCompleted, Created: now, Answered: now,
			Ended: now.Add(time.Duration(seconds) * time.Second), Duration: seconds})
		if err := p.FlushCall(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
	notices := func() (int, int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(hooks.take()), len(m.sent)
	}
	call(60) // 2.40 left: above
	if h, e := notices(); h+e != 0 {
		t.Fatalf("notified above the threshold: %d hooks, %d mails", h, e)
	}
	call(60) // 1.80: crossed
	if h, e := notices(); h != 1 || e != 1 {
		t.Fatalf("at the crossing: %d hooks, %d mails; want 1 each", h, e)
	}
	m.mu.Lock()
	if !strings.HasPrefix(m.sent[0], "ops@example.com|Low balance: acme 1.80|") || !strings.Contains(m.sent[0], "threshold of 2.00") {
		t.Errorf("mail %q", m.sent[0])
	}
	m.mu.Unlock()
	call(60) // 1.20: still below, no news
	if h, e := notices(); h != 0 || e != 1 {
		t.Fatalf("below again: %d new hooks, %d mails in all; want 0 and 1", h, e)
	}
	if _, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Balance: ptr(5 * store.Unit)}); err != nil {
		t.Fatal(err)
	}
	call(60 * 5) // 2.00: at the threshold again after the top-up
	if h, e := notices(); h != 1 || e != 2 {
		t.Fatalf("after a top-up, crossing again: %d hooks, %d mails; want 1 and 2 in all", h, e)
	}
	if _, err := p.UpdateAccount(ctx, "cli", a.SID, AccountSpec{Email: ptr("Ops <ops@example.com>")}); err == nil {
		t.Error("a display name took as NotificationEmail")
	}
}

// TestLedgerLateRow: an in-progress row that comes after its call's final
// one (the answer's report raced the BYE) does not bring the call back
// into the balance watch; a call taken over after a restart is watched.
func TestLedgerLateRow(t *testing.T) {
	p, _ := billedPlane(t)
	a := mustAccount(t, p, "a", AccountSpec{Balance: ptr(store.Unit)})
	now := time.Now()
	row := store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: a.SID, To: "+14155550199", Created: now, Answered: now}
	row.Status, row.Ended, row.Duration = store.CallCompleted, now.Add(time.Second), 1
	p.LogCall(row)
	row.Status = store.CallInProgress
	p.LogCall(row)
	p.led.mu.Lock()
	n := len(p.led.live)
	p.led.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d live calls after a late in-progress row; want 0", n)
	}
	taken := store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: a.SID, To: "+14155550199", Status: store.CallInProgress, Created: now, Answered: now}
	d := p.Resume(taken)
	defer d.Release()
	p.led.mu.Lock()
	_, ok := p.led.live[taken.SID]
	p.led.mu.Unlock()
	if !ok {
		t.Fatal("a call taken over is not weighed against the balance")
	}
}
