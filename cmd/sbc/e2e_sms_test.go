package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"sbc/control"
	"sbc/sbc"
	"sbc/sbc/sbctest"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// TestE2ESMS: messages sent through the API go to the carrier (sipp) as
// SIP MESSAGE, in order; the carrier's 200 makes them sent, its delivery
// report delivered, its 403 failed with the reason, its 503 retried; a number that is not
// SMS-enabled is refused with "Source Number Not SMS Enabled"; a recipient
// who writes STOP (sipp as the carrier delivering it) gets nothing more
// from the account until START.
func TestE2ESMS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	const smsNum, voiceNum = "+14155550500", "+14155550501"
	// The customer's web server: it refuses the first try of each "sent"
	// status callback (503), so each is retried.
	hooks := newHookReceiver(t)
	hooks.fail = func(path string, p url.Values) bool { return p.Get("MessageStatus") == "sent" }
	acct, acctToken := smsAccount(t, dir, smsNum, voiceNum, hooks.url("/sms"))
	hooks.token = acctToken
	e, base, admin, token := apiDaemon(t, bin, dir, func(c *sbctest.DaemonConfig) {
		c.Edit = func(cfg *sbc.Config) {
			cfg.Routes = append(cfg.Routes, sbc.Route{Prefix: "+", To: c.Callee.Name})
			cfg.Control.Webhooks.AllowHTTP, cfg.Control.Webhooks.AllowPrivateNetworks = true, true
			cfg.Control.Webhooks.Backoff = 100 * time.Millisecond
		}
	})
	api := &apiClient{base: base, user: admin, token: token,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}}

	// The customer sends with the twilio-go SDK, its own credentials.
	sdk := twilioSDK(base, acct, acctToken)
	carrier := e.uas(t, sippOpts{scenario: "uas_message.xml", calls: 3})
	var sids []string
	for _, body := range []string{"first", "second", "third"} {
		p := &openapi.CreateMessageParams{}
		p.SetFrom(smsNum).SetTo("+14155550199").SetBody(body).SetStatusCallback(hooks.url("/status"))
		m, err := sdk.Api.CreateMessage(p)
		if err != nil || *m.Status != "queued" || *m.NumSegments != "1" {
			t.Fatalf("send %q with the SDK: %v %+v", body, err, m)
		}
		sids = append(sids, *m.Sid)
	}
	carrier.expectSuccess(t)
	msgs := carrier.messages(t)
	if i, j, k := strings.Index(msgs, "\nfirst"), strings.Index(msgs, "\nsecond"), strings.Index(msgs, "\nthird"); i < 0 || i > j || j > k {
		t.Errorf("the carrier got the texts out of order or not at all:\n%s", msgs)
	}
	if !strings.Contains(msgs, "From: <sip:"+smsNum+"@") {
		t.Errorf("the MESSAGEs do not come from %s:\n%s", smsNum, msgs)
	}
	for _, sid := range sids {
		api.waitStatus(t, acct, sid, "sent")
	}

	// The carrier reports the first one delivered: a MESSAGE whose
	// In-Reply-To names the Call-ID of the MESSAGE it got.
	callID := regexp.MustCompile(`(?m)^Call-ID: *(\S+)`).FindStringSubmatch(msgs[strings.Index(msgs, "\nfirst")-min(strings.Index(msgs, "\nfirst"), 600):])
	if callID == nil {
		t.Fatalf("no Call-ID before the first text in the carrier's trace:\n%s", msgs)
	}
	carrierUAC := func(scenario string, keys ...string) {
		t.Helper()
		var extra []string
		for i := 0; i+1 < len(keys); i += 2 {
			extra = append(extra, "-key", keys[i], keys[i+1])
		}
		e.uac(t, sippOpts{name: "carrier", ip: calleeIP, port: int(e.cfg.Callee.Addr.Port()), scenario: scenario, extra: extra}).expectSuccess(t)
	}
	carrierUAC("uac_message_report.xml", "from", "+14155550199", "to", smsNum, "reply_to", callID[1], "body", "Delivered to handset")
	m := api.waitStatus(t, acct, sids[0], "delivered")
	if m["status_reason"] != "Delivered Successfully" || m["carrier_status"] != "Delivered to handset" || m["error_message"] != nil {
		t.Errorf("delivered message: %v; want the translation and the carrier's text", m)
	}

	// Each message's status callbacks arrive in order, signed; each "sent"
	// after its retry, with the first try's idempotency token.
	for i, sid := range sids {
		want := "queued sending sent"
		if i == 0 {
			want += " delivered"
		}
		got := hooks.await(t, "/status", sid+": "+want, func(h []hookHit) bool {
			var mine []hookHit
			for _, x := range h {
				if x.params.Get("MessageSid") == sid {
					mine = append(mine, x)
				}
			}
			return statuses(mine) == want
		})
		for _, x := range got {
			if x.params.Get("AccountSid") != acct || x.params.Get("From") != smsNum || x.params.Get("To") != "+14155550199" {
				t.Errorf("status callback %v: wrong message fields", x.params)
			}
		}
	}
	hooks.mu.Lock()
	for _, x := range hooks.hits {
		if x.params.Get("MessageStatus") == "sent" && hooks.attempts[x.idem] != 2 {
			t.Errorf("sent callback of %s tried %d times; want 2 (refused once)", x.params.Get("MessageSid"), hooks.attempts[x.idem])
		}
	}
	hooks.mu.Unlock()
	listed, err := sdk.Api.ListMessage(&openapi.ListMessageParams{})
	if err != nil || len(listed) < 3 {
		t.Errorf("ListMessage with the SDK: %v, %d messages", err, len(listed))
	}

	// The recipient writes STOP to the number: nothing more goes to it
	// from the account, until START.
	carrierUAC("uac_message.xml", "from", "+14155550199", "to", smsNum, "body", " stop ")
	st, out := api.post(t, "/2010-04-01/Accounts/"+acct+"/Messages.json", url.Values{"From": {smsNum}, "To": {"+14155550199"}, "Body": {"after STOP"}})
	if st != 201 || out["status"] != "failed" || out["error_code"] != float64(21610) {
		t.Fatalf("to an opted-out recipient: %d %v; want failed 21610", st, out)
	}
	if st, out := api.do(t, "GET", "/2010-04-01/Accounts/"+acct+"/SMS/OptOuts.json", nil); st != 200 || !strings.Contains(fmt.Sprint(out["opt_outs"]), "+14155550199") {
		t.Errorf("opt-outs: %d %v", st, out)
	}
	if st, out := api.do(t, "GET", "/2010-04-01/Accounts/"+acct+"/Messages.json?"+url.Values{"To": {smsNum}}.Encode(), nil); st != 200 ||
		!strings.Contains(fmt.Sprint(out["messages"]), "direction:inbound") || !strings.Contains(fmt.Sprint(out["messages"]), "status:received") {
		t.Errorf("inbound messages: %d %v", st, out)
	}
	carrierUAC("uac_message.xml", "from", "+14155550199", "to", smsNum, "body", "START")
	// Both reached the number's SMS URL, in order, with their bodies.
	hooks.await(t, "/sms", `" stop " then "START"`, func(h []hookHit) bool {
		// (sipp's scenario ends the body with a line break)
		return len(h) == 2 && strings.TrimRight(h[0].params.Get("Body"), "\r\n") == " stop " && strings.TrimRight(h[1].params.Get("Body"), "\r\n") == "START" &&
			h[1].params.Get("From") == "+14155550199" && h[1].params.Get("To") == smsNum
	})
	if st, out := api.do(t, "GET", "/2010-04-01/Accounts/"+acct+"/SMS/OptOuts.json", nil); st != 200 || strings.Contains(fmt.Sprint(out["opt_outs"]), "+14155550199") {
		t.Errorf("opt-outs after START: %d %v", st, out)
	}

	// The Avaya CPaaS path; the carrier refuses this one.
	refuser := e.uas(t, sippOpts{scenario: "uas_message_refused.xml", calls: 1})
	st, out = api.post(t, "/v2/Accounts/"+acct+"/SMS/Messages.json", url.Values{"From": {smsNum}, "To": {"+14155550199"}, "Body": {"refused"}})
	if st != 201 {
		t.Fatalf("send on the /v2 path: %d %v", st, out)
	}
	refuser.expectSuccess(t)
	m = api.waitStatus(t, acct, out["sid"].(string), "failed")
	if !strings.Contains(m["error_message"].(string), "403") {
		t.Errorf("refused message: %v; want the carrier's 403 in its reason", m)
	}

	// A carrier briefly overloaded (503, Retry-After: 1): offered again,
	// sent.
	busy := e.uas(t, sippOpts{scenario: "uas_message_503.xml", calls: 1})
	st, out = api.post(t, "/2010-04-01/Accounts/"+acct+"/Messages.json", url.Values{"From": {smsNum}, "To": {"+14155550198"}, "Body": {"after a 503"}})
	if st != 201 {
		t.Fatalf("send: %d %v", st, out)
	}
	busy.expectSuccess(t)
	api.waitStatus(t, acct, out["sid"].(string), "sent")

	// A number of the account without SMS: refused, nothing queued.
	st, out = api.post(t, "/2010-04-01/Accounts/"+acct+"/Messages.json", url.Values{"From": {voiceNum}, "To": {"+14155550199"}, "Body": {"x"}})
	if st != 400 || out["message"] != "Source Number Not SMS Enabled" || out["code"] != float64(21606) {
		t.Errorf("from a voice-only number: %d %v", st, out)
	}
	hooks.checkSigned(t)
}

// smsAccount makes, in a control store in dir, an account with an
// SMS-enabled number (inbound messages posted to smsURL) and a voice-only
// one, and returns its SID and auth token.
func smsAccount(t *testing.T, dir, smsNum, voiceNum, smsURL string) (string, string) {
	t.Helper()
	p, _ := storePlane(t, dir)
	ctx := context.Background()
	name, rate := "Texter", 10
	a, token, err := p.CreateAccount(ctx, "cli", control.AccountSpec{Name: &name, SMSPerSecond: &rate})
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	for _, n := range []struct {
		num string
		sms *bool
	}{{smsNum, &yes}, {voiceNum, &no}} {
		if _, err := p.CreateNumber(ctx, "cli", a.SID, control.NumberSpec{PhoneNumber: &n.num, SMS: n.sms, SMSURL: &smsURL}); err != nil {
			t.Fatal(err)
		}
	}
	return a.SID, token
}

// apiClient calls the daemon's REST API with HTTP Basic credentials.
type apiClient struct {
	base, user, token string
	http              *http.Client
}

func (c *apiClient) do(t *testing.T, method, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.user, c.token)
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func (c *apiClient) post(t *testing.T, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	return c.do(t, "POST", path, form)
}

// waitStatus polls a message until it has status, and returns it.
func (c *apiClient) waitStatus(t *testing.T, acct, sid, status string) map[string]any {
	t.Helper()
	var out map[string]any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var st int
		if st, out = c.do(t, "GET", "/2010-04-01/Accounts/"+acct+"/Messages/"+sid+".json", nil); st == 200 && out["status"] == status {
			return out
		}
	}
	t.Fatalf("message %s: %v; want status %s", sid, out, status)
	return nil
}
