package main

import (
	"context"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sbc/control"
	"sbc/control/billing"
	"sbc/control/store"
	"sbc/sbc/sbctest"
)

// billingConfig: 0.60 a minute (0.01 a second) to +1, billed per second.
func billingConfig(grace time.Duration) billing.Config {
	return billing.Config{Enabled: true, Increment: billing.IncrementSecond, Grace: &grace, Unrated: billing.UnratedRefuse,
		Rates: []billing.Rate{{Prefix: "+1", PerMinute: "0.60", PerSMS: "0.01"}}}
}

// billedAccount makes, in the store in dir, an account with balance
// (and what more spec says) and returns its SID and auth token; with a
// callback, the number the tests call (+14155550199) is the account's,
// with that status callback.
func billedAccount(t *testing.T, dir string, balance store.Money, callback string, spec ...control.AccountSpec) (string, string) {
	t.Helper()
	p, _ := storePlane(t, dir)
	name, cps, max := "Billed", 100, 100
	var s control.AccountSpec
	if len(spec) > 0 {
		s = spec[0]
	}
	s.Name, s.CPS, s.MaxConcurrent, s.Balance = &name, &cps, &max, &balance
	a, token, err := p.CreateAccount(context.Background(), "cli", s)
	if err != nil {
		t.Fatal(err)
	}
	if callback != "" {
		// The called number is the account's, its calls' ends posted.
		num := "+14155550199"
		if _, err := p.CreateNumber(context.Background(), "cli", a.SID, control.NumberSpec{PhoneNumber: &num, Callback: &callback}); err != nil {
			t.Fatal(err)
		}
	}
	return a.SID, token
}

// TestE2EBillingKill9: calls of a known length through sipp are charged
// their price; the daemon killed (SIGKILL) while calls end and start,
// then started again, loses no charge and charges none twice: every
// completed call's row has exactly its price charged, and the balance is
// the start less the charges.
func TestE2EBillingKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	acct, _ := billedAccount(t, dir, 10*store.Unit, "")
	state := t.TempDir()
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Control.DataDir, c.StateDir = dir, state
		c.Control.Billing = billingConfig(30 * time.Second)
		c.Caller.Account = acct
		c.LogLevel = "info"
	}, false)

	// A steady stream: 2 calls a second, each answered for 2 s.
	const calls = 8
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml", calls: calls, timeout: 40 * time.Second, recvTimeout: 20 * time.Second})
	uac := e.uac(t, sippOpts{scenario: "uac_basic.xml", calls: calls, rate: 2, pause: 2 * time.Second,
		timeout: 40 * time.Second, recvTimeout: 20 * time.Second, extra: []string{"-s", "+14155550199"}})
	// Killed the moment a call has ended: its final row waits for the
	// call log's next batch (a quarter second), calls are up, more are
	// being set up.
	// Frozen (SIGSTOP) as a call ends, until one is caught between its end
	// and its row's write: then killed.
	var records []string
	ended := 0
	for n := 3; n <= calls && ended == 0; n++ {
		e.sbc.callsEnded(t, n)
		e.sbc.signal(t, syscall.SIGSTOP)
		records, _ = filepath.Glob(filepath.Join(state, "*.json"))
		for _, f := range records {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), `"ended":`) {
				ended++ // a call that ended, its row not yet written
			}
		}
		if ended == 0 {
			e.sbc.signal(t, syscall.SIGCONT)
		}
	}
	e.sbc.cmd.Process.Signal(syscall.SIGKILL)
	<-e.sbc.done
	t.Logf("killed with %d call records in the state directory, %d of calls that had ended", len(records), ended)
	if ended == 0 {
		t.Errorf("no record of an ended call left by the kill: the test did not kill between a call's end and its row's write")
	}

	// Started again on the same ports, store and state: it takes over the
	// calls up, writes the rows of those that had ended.
	d, err := startSBC(t, bin, e.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	e.sbc = d
	if ended > 0 {
		l := d.waitN(t, 1, 5*time.Second, "final rows written again", func(l logLine) bool {
			return strings.HasPrefix(l.msg(), "final log rows of calls that ended")
		})[0]
		if n, _ := l.num("calls"); int(n) != ended {
			t.Errorf("restarted daemon wrote %v final rows again; %d records had them", n, ended)
		}
	}
	uac.wait(t)
	uas.wait(t)
	ok := uac.statInt(t, uac.stats(t), "SuccessfulCall(C)")
	if ok < calls/2 {
		t.Fatalf("only %d of %d calls succeeded around the kill", ok, calls)
	}
	e.sbc.stop(t)

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "sbc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.ListCalls(ctx, store.CallFilter{AccountSID: acct}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	rates, _ := billing.NewTable(billingConfig(0))
	var total store.Money
	charged := 0
	for _, c := range rows {
		got, err := st.Charged(ctx, c.SID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := rates.CallPrice(c.To, c.Duration)
		if c.Status != store.CallCompleted || c.EndedBy == control.EndedByLost {
			want = 0
		}
		if !c.Final() || got != want || c.Price != want {
			t.Errorf("call %s: %s ended by %q after %d s: price %v, charged %v; want %v", c.SID, c.Status, c.EndedBy, c.Duration, c.Price, got, want)
		}
		if got > 0 {
			charged++
			total += got
			if c.Duration < 2 || c.Duration > 3 {
				t.Errorf("call %s lasted %d s; want 2 (sipp's pause)", c.SID, c.Duration)
			}
		}
	}
	if charged < ok {
		t.Errorf("%d calls charged; sipp completed %d", charged, ok)
	}
	a, err := st.Account(ctx, acct)
	if err != nil || a.Balance != 10*store.Unit-total {
		t.Fatalf("balance %v (%v); want 10.00 less the %v charged", a.Balance, err, total)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "*.json")); len(left) != 0 {
		t.Errorf("%d call records left after every call ended and the daemon stopped", len(left))
	}
	t.Logf("%d calls, %d completed by sipp, %d charged, %v in all; balance %v", len(rows), ok, charged, total, a.Balance)
}

// TestE2EBalanceExhausted: three calls at once spend a small balance; they
// are ended (BYE to both sides) once the grace period has passed, the
// account overdrawn by no more than the grace's worth, and its next call
// is refused with 403 and "Reason: SIP;cause=402". The three calls' charges
// take the balance below the low-balance threshold: one notification, not
// three, as a signed webhook and as an e-mail through a real SMTP server
// (exim on loopback, STARTTLS with its certificate checked).
func TestE2EBalanceExhausted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	hooks := newHookReceiver(t)
	mailbox := startSMTP(t, smtpSTARTTLS)
	ca := filepath.Join(t.TempDir(), "smtp-ca.pem")
	if err := os.WriteFile(ca, mailbox.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	low, notify, email := 4*store.Unit/100, hooks.url("/low"), "ops@example.com"
	acct, token := billedAccount(t, dir, 5*store.Unit/100, hooks.url("/calls"), // 0.05: 5 call-seconds
		control.AccountSpec{LowBalance: &low, NotifyURL: &notify, Email: &email})
	hooks.token = token
	const grace = time.Second
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Control.DataDir = dir
		c.Control.Billing = billingConfig(grace)
		c.Control.Webhooks = control.WebhookConfig{AllowHTTP: true, AllowPrivateNetworks: true}
		c.Control.SMTP = control.SMTPConfig{Relay: mailbox.Addr, From: "sbc@example.net", TLS: control.SMTPStartTLS, CAFile: ca}
		c.Caller.Account = acct
		c.LogLevel = "info"
	}, false)

	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml", calls: 3})
	uac := e.uac(t, sippOpts{scenario: "uac_callee_bye.xml", calls: 3, rate: 10, extra: []string{"-s", "+14155550199", "-l", "3"}})
	start := time.Now()
	uac.expectSuccessWithin(t, 15*time.Second)
	uas.expectSuccessWithin(t, 5*time.Second)
	took := time.Since(start)
	// 3 calls at 0.01/s spend 0.05 in ~1.7 s; then grace, then the next
	// once-a-second check.
	if took > 6*time.Second {
		t.Errorf("calls ended %v after they started; want about 1.7 s + %v grace + a check", took, grace)
	}
	lines := e.sbc.callsEnded(t, 3)
	for _, l := range lines {
		if l.str("ended_by") != control.EndedByBalance {
			t.Errorf("call ended by %q; want %q", l.str("ended_by"), control.EndedByBalance)
		}
	}

	refused := e.uac(t, sippOpts{name: "uac-refused", scenario: "uac_forbidden.xml", port: 0, extra: []string{"-s", "+14155550199"}})
	refused.expectSuccess(t)
	if msgs := refused.messages(t); !strings.Contains(msgs, "SIP/2.0 403") || !strings.Contains(msgs, "Reason: SIP;cause=402") {
		t.Errorf("call of an account without balance: want 403 with Reason cause 402:\n%s", msgs)
	}

	// One low-balance notification for the three charges.
	got := hooks.await(t, "/low", "one low-balance webhook", func(h []hookHit) bool { return len(h) >= 1 })
	if p := got[0].params; p.Get("Event") != "low-balance" || p.Get("AccountSid") != acct || p.Get("LowBalanceThreshold") != "0.04" {
		t.Errorf("low-balance webhook %v", p)
	}
	mails := mailbox.await(t, 1, 10*time.Second)
	m := mails[0]
	body, _ := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
	if !strings.Contains(m.To, email) || !strings.HasPrefix(m.Subject, "Low balance: Billed") || !m.TLS ||
		!strings.Contains(string(body), "threshold of 0.04") {
		t.Errorf("low-balance mail: to %q, subject %q, over TLS %v, body %q", m.To, m.Subject, m.TLS, body)
	}
	// Each call's end, to the number's status callback.
	ends := hooks.await(t, "/calls", "three call-end callbacks", func(h []hookHit) bool { return len(h) >= 3 })
	for _, h := range ends {
		if p := h.params; p.Get("CallStatus") != "completed" || p.Get("To") != "+14155550199" || p.Get("CallDuration") == "0" || p.Get("AccountSid") != acct {
			t.Errorf("call-end callback %v", p)
		}
	}
	e.sbc.stop(t)
	if n := len(hooks.taken("/low")); n != 1 {
		t.Errorf("%d low-balance webhooks; want 1 (once per crossing)", n)
	}
	if n := len(mailbox.messages(t)); n != 1 {
		t.Errorf("%d low-balance mails; want 1 (once per crossing)", n)
	}
	hooks.checkSigned(t)

	st, err := store.Open(context.Background(), filepath.Join(dir, "sbc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	// At most grace plus two checks of the three calls' 0.03 a second.
	floor := -store.Money(float64(3*10000) * (grace + 2*time.Second).Seconds())
	if a.Balance > 0 || a.Balance < floor {
		t.Errorf("balance after exhaustion %v; want between %v and 0", a.Balance, floor)
	}
	t.Logf("balance %v after the calls were ended (%v after they started)", a.Balance, took)
}
