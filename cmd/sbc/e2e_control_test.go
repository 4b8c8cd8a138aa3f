package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/sbctest"
)

// controlEnv is a daemon whose caller trunk "a" is account A's PBX and
// whose callee trunk "b" a carrier, with the store made before the daemon
// starts, as an operator would with the CLI.
type controlEnv struct {
	*e2eEnv
	st   *store.Store
	a, b store.Account
}

// Numbers of the test.
const (
	numPlain    = "+14155550100" // no owner: a PSTN number
	numB        = "+14155550200" // account B's, delivered to trunk a on-net
	numBCarrier = "+14155550201" // account B's, delivered to trunk b
)

func newControlEnv(t *testing.T, bin string) *controlEnv {
	t.Helper()
	dir := dataDir(t, false)
	p, st := storePlane(t, dir)
	ctx := context.Background()
	mk := func(name string, cps, max int) store.Account {
		a, _, err := p.CreateAccount(ctx, "cli", control.AccountSpec{Name: &name, CPS: &cps, MaxConcurrent: &max})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	e := &controlEnv{st: st, a: mk("A", 2, 50), b: mk("B", 20, 50)}
	for _, n := range []struct{ num, target string }{{numB, "trunk:a"}, {numBCarrier, "trunk:b"}} {
		num, target := n.num, n.target
		if _, err := p.CreateNumber(ctx, "cli", e.b.SID, control.NumberSpec{PhoneNumber: &num, VoiceTarget: &target}); err != nil {
			t.Fatal(err)
		}
	}
	e.e2eEnv = newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Caller.Account = e.a.SID
		c.Control.DataDir = dir
		c.RingTimeout = 2 * time.Second
		c.LogLevel = "info"
	}, false)
	return e
}

// call runs one call from trunk a to number with the callee answering by
// uasScenario (a file in testdata/sipp, or a path); "" for a call that
// must not reach the callee.
func (e *controlEnv) call(t *testing.T, number, uasScenario, uacScenario string) {
	t.Helper()
	var uas *sippRun
	if uasScenario != "" {
		uas = e.uas(t, sippOpts{scenario: uasScenario})
	}
	uac := e.uac(t, sippOpts{scenario: uacScenario, extra: []string{"-s", number}})
	uac.expectSuccess(t)
	if uas != nil {
		uas.expectSuccessWithin(t, 5*time.Second)
	}
}

// row waits for the newest call row of account to reach a final status.
func (e *controlEnv) row(t *testing.T, account string, n int) store.Call {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, err := e.st.ListCalls(context.Background(), store.CallFilter{AccountSID: account}, store.Page{Size: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) >= n && rows[0].Final() {
			return rows[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("account %s: %d call rows (want %d, the newest final): %+v", account, len(rows), n, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	bin := buildSBC(t)
	e := newControlEnv(t, bin)

	// Every way a call of account A ends, as its call log says it.
	uasBusy, err := os.ReadFile(filepath.Join(sippDir(t), "uas_busy.xml"))
	if err != nil {
		t.Fatal(err)
	}
	uasFailed := filepath.Join(t.TempDir(), "uas_failed.xml")
	os.WriteFile(uasFailed, []byte(strings.Replace(string(uasBusy), "486 Busy Here", "500 Server Internal Error", 1)), 0o644)
	uacBusy, _ := os.ReadFile(filepath.Join(sippDir(t), "uac_busy.xml"))
	uacFailed := filepath.Join(t.TempDir(), "uac_failed.xml")
	os.WriteFile(uacFailed, []byte(strings.Replace(string(uacBusy), `response="486"`, `response="500"`, 1)), 0o644)
	outcomes := []struct {
		name     string
		uas, uac string
		status   string
		code     int
	}{
		{"completed", "uas_basic.xml", "uac_basic.xml", store.CallCompleted, 200},
		{"busy", "uas_busy.xml", "uac_busy.xml", store.CallBusy, 486},
		{"no-answer", "uas_cancel.xml", "uac_timeout.xml", store.CallNoAnswer, 408},
		{"failed", uasFailed, uacFailed, store.CallFailed, 500},
		{"canceled", "uas_cancel.xml", "uac_cancel.xml", store.CallCanceled, 487},
	}
	for i, o := range outcomes {
		t.Run(o.name, func(t *testing.T) {
			time.Sleep(500 * time.Millisecond) // A's 2 calls per second
			e.call(t, numPlain, o.uas, o.uac)
			r := e.row(t, e.a.SID, i+1)
			if r.Status != o.status || r.SIPCode != o.code || r.To != numPlain || r.Direction != store.DirectionTerminating ||
				r.FromTrunk != "a" || r.ToTrunk != "b" || !store.ValidSID(store.PrefixCall, r.SID) {
				t.Fatalf("call row %+v; want status %s, code %d, to %s, terminating, a -> b", r, o.status, o.code, numPlain)
			}
			if o.status == store.CallCompleted && (r.Answered.IsZero() || r.Ended.Before(r.Answered) || r.Duration > 5) {
				t.Errorf("completed call times: answered %v ended %v duration %d", r.Answered, r.Ended, r.Duration)
			}
			if o.status != store.CallCompleted && !r.Answered.IsZero() {
				t.Errorf("unanswered call has an answer time %v", r.Answered)
			}
			// The daemon's log and the store name the call alike.
			if ended := e.sbc.find(func(l logLine) bool { return isCallEnded(l) && l.str("call_id") == r.SID }); len(ended) != 1 {
				t.Errorf("no call ended line with call_id %s", r.SID)
			}
		})
	}

	// Classes of restriction: premium and international are refused with
	// 403 before any B leg, the rule logged.
	t.Run("class_of_restriction", func(t *testing.T) {
		for _, c := range []struct{ num, rule string }{
			{"+19005550100", "class default: premium +1900"},
			{"+442079460958", "class default: international (outside +1)"},
		} {
			time.Sleep(500 * time.Millisecond)
			e.call(t, c.num, "", "uac_outcome.xml")
			l := e.sbc.waitN(t, 1, 5*time.Second, "call rejected "+c.num, func(l logLine) bool {
				return l.str("msg") == "call rejected" && l.str("number") == c.num
			})[0]
			if n, _ := l.num("status"); n != 403 || l.str("rule") != c.rule || l.str("account_sid") != e.a.SID {
				t.Errorf("rejection %v; want 403 by %q for account A", l, c.rule)
			}
		}
	})

	// Digits as dialled are not what the carrier gets: the B leg carries
	// the E.164 number the class of restriction checked.
	t.Run("sent_as_checked", func(t *testing.T) {
		time.Sleep(500 * time.Millisecond)
		before, _ := e.st.CountCalls(context.Background(), e.a.SID)
		e.call(t, "1-415-555-0100", uasExpectingUser(t, `\+14155550100`), "uac_basic.xml")
		if r := e.row(t, e.a.SID, before+1); r.To != numPlain || r.Status != store.CallCompleted {
			t.Fatalf("call dialled as 1-415-555-0100: %+v; want to %s, completed", r, numPlain)
		}
	})

	// Customer isolation: A calls B's number, which B delivers to trunk
	// a. It must not be bridged on-net (back to trunk a): it leaves by
	// the dial plan, to the carrier b, as A's call.
	t.Run("isolation", func(t *testing.T) {
		time.Sleep(500 * time.Millisecond)
		before, _ := e.st.CountCalls(context.Background(), e.a.SID)
		e.call(t, numB, "uas_basic.xml", "uac_basic.xml")
		r := e.row(t, e.a.SID, before+1)
		if r.To != numB || r.ToTrunk != "b" || r.Status != store.CallCompleted {
			t.Fatalf("A's call to B's number: %+v; want it out through the carrier trunk b", r)
		}
		if n, _ := e.st.CountCalls(context.Background(), e.b.SID); n != 0 {
			t.Fatalf("B has %d calls: A's call was bridged into B", n)
		}
	})

	// A number with a SIP URI target: A's own number, delivered on-net to
	// user 1001 at trunk b's address (the callee checks the Request-URI).
	t.Run("sip_uri_target", func(t *testing.T) {
		ctx := context.Background()
		p := control.New(control.Config{DataDir: e.cfg.Control.DataDir, Classes: []control.Class{{Name: control.DefaultClass}}}, e.st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		num, target := "+14155550300", "sip:1001@"+e.cfg.Callee.Addr.String()
		if _, err := p.CreateNumber(ctx, "cli", e.a.SID, control.NumberSpec{PhoneNumber: &num, VoiceTarget: &target}); err != nil {
			t.Fatal(err)
		}
		bad, badTarget := "+14155550301", "sip:1001@192.0.2.99:5060" // no trunk there
		if _, err := p.CreateNumber(ctx, "cli", e.a.SID, control.NumberSpec{PhoneNumber: &bad, VoiceTarget: &badTarget}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // the daemon's reload, and A's bucket
		before, _ := e.st.CountCalls(ctx, e.a.SID)
		e.call(t, num, uasExpectingUser(t, "1001"), "uac_basic.xml")
		if r := e.row(t, e.a.SID, before+1); r.To != num || r.ToTrunk != "b" || r.Status != store.CallCompleted {
			t.Fatalf("call to the URI target: %+v", r)
		}
		time.Sleep(500 * time.Millisecond)
		e.call(t, bad, "", "uac_outcome.xml")
		l := e.sbc.waitN(t, 1, 5*time.Second, "call rejected "+bad, func(l logLine) bool {
			return l.str("msg") == "call rejected" && l.str("number") == bad
		})[0]
		if n, _ := l.num("status"); n != 404 {
			t.Errorf("URI at no trunk: %v; want 404", l)
		}
	})

	// Calls per second: A (2/s) floods at 10/s and gets 503 with
	// Retry-After for most; meanwhile the carrier's calls to B's number
	// (B: 20/s) all pass.
	t.Run("cps", func(t *testing.T) {
		time.Sleep(time.Second)
		const flood, inbound = 20, 6
		startedBefore := len(e.sbc.find(isCallStarted))
		uas := e.uas(t, sippOpts{scenario: "uas_basic.xml", calls: flood + inbound})
		fromA := e.uac(t, sippOpts{name: "uac_a", scenario: "uac_outcome.xml", calls: flood, rate: 10, extra: []string{"-s", numPlain}})
		fromCarrier := e.uac(t, sippOpts{name: "uac_carrier", ip: calleeIP, scenario: "uac_outcome.xml", calls: inbound, rate: 3,
			extra: []string{"-s", numBCarrier}})
		fromA.expectSuccess(t)
		fromCarrier.expectSuccess(t)
		refused := e.sbc.find(func(l logLine) bool {
			n, _ := l.num("status")
			return l.str("msg") == "call rejected" && n == 503 && l.str("account_sid") == e.a.SID
		})
		admittedA := flood - len(refused)
		// 2 at once, then 2 a second over the ~2 s of the flood.
		if admittedA < 2 || admittedA > 8 {
			t.Errorf("account A: %d of %d calls at 10/s admitted; want about 2 + 2/s", admittedA, flood)
		}
		e.sbc.waitN(t, startedBefore+admittedA+inbound, 10*time.Second, "calls started", isCallStarted)
		bRows, _ := e.st.ListCalls(context.Background(), store.CallFilter{AccountSID: e.b.SID}, store.Page{Size: 100})
		if len(bRows) != inbound {
			t.Errorf("account B: %d call rows; want its %d calls from the carrier, none refused", len(bRows), inbound)
		}
		for _, r := range bRows {
			if r.Direction != store.DirectionOriginating || r.To != numBCarrier {
				t.Errorf("B's row %+v; want trunking-originating to %s", r, numBCarrier)
			}
		}
		_ = uas // it waits for calls that were refused; cleanup kills it
	})
	e.stop(t, len(e.sbc.find(isCallStarted)))
}

func isCallStarted(l logLine) bool { return l.str("msg") == "call started" }

// uasExpectingUser is uas_basic.xml that fails unless the INVITE's
// Request-URI user matches the regular expression user.
func uasExpectingUser(t *testing.T, user string) string {
	t.Helper()
	uasXML, err := os.ReadFile(filepath.Join(sippDir(t), "uas_basic.xml"))
	if err != nil {
		t.Fatal(err)
	}
	checked := strings.Replace(strings.Replace(string(uasXML),
		`<recv request="INVITE" crlf="true">
    <action>`, `<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="^INVITE sip:`+user+`@" search_in="msg" check_it="true" assign_to="ruri"/>`, 1),
		`<Reference variables="leak,`, `<Reference variables="ruri,leak,`, 1)
	if strings.Count(checked, "ruri") != 2 {
		t.Fatal("uas_basic.xml changed: the Request-URI check was not added")
	}
	path := filepath.Join(t.TempDir(), "uas_ruri.xml")
	if err := os.WriteFile(path, []byte(checked), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
