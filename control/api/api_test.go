package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go"
	tclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"sbc/control"
	"sbc/control/api"
	"sbc/control/store"
	"sbc/control/store/pgtest"
)

// env is a control plane with its API on real HTTPS on loopback.
type env struct {
	p       *control.Plane
	base    string // https://127.0.0.1:port
	http    *http.Client
	adminID string
	adminTk string
	hangups chan string
	acct    string // newAccountOnce's
}

func (e *env) newAccountOnce(t *testing.T) (string, string) {
	if e.acct == "" {
		e.acct, _ = e.newAccount(t, "once")
	}
	return e.acct, ""
}

// One throw-away PostgreSQL server for the package's tests.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// engines runs f on an API over SQLite and over PostgreSQL.
func engines(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t, "")) })
	t.Run("postgres", func(t *testing.T) { f(t, newEnv(t, pg.URL(t))) })
}

func newEnv(t *testing.T, dsn string) *env {
	t.Helper()
	listen := "127.0.0.1:0"
	cfg := control.Config{DataDir: t.TempDir(), Store: dsn, Classes: []control.Class{{Name: "intl", International: true}}}
	cfg.API.Listen = &listen
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := control.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &env{p: p, hangups: make(chan string, 10)}
	// The SBC's hang-up, stood in for: the call's final row is written.
	p.SetHangup(func(sid, _ string) bool {
		c, err := p.Store().Call(context.Background(), "", sid)
		if err != nil {
			return false
		}
		c.Status, c.SIPCode, c.EndedBy, c.Ended = store.CallCompleted, 200, "api", time.Now()
		p.LogCall(c)
		e.hangups <- sid
		return true
	})
	if e.adminID, e.adminTk, err = p.SetAdmin(context.Background(), "test", ""); err != nil {
		t.Fatal(err)
	}
	tlsCfg, _, err := api.ServerTLS(cfg.API, cfg.DataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.HTTPServer(api.New(p, log), tlsCfg, log)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	e.base = "https://" + ln.Addr().String()
	// Trust the certificate the server made itself, nothing else.
	pemBytes, err := os.ReadFile(filepath.Join(cfg.DataDir, "api-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	e.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	return e
}

// rewrite sends the SDK's requests for api.twilio.com to our server.
type rewrite struct {
	to   *url.URL
	next http.RoundTripper
}

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = r.to.Scheme, r.to.Host, ""
	return r.next.RoundTrip(req)
}

// sdk is the official twilio-go client logged in as user, talking to our
// API over HTTPS.
func (e *env) sdk(user, token string) *twilio.RestClient {
	to, _ := url.Parse(e.base)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: rewrite{to, e.http.Transport}}
	c := &tclient.Client{Credentials: tclient.NewCredentials(user, token), HTTPClient: hc}
	c.SetAccountSid(user)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

func (e *env) admin() *twilio.RestClient { return e.sdk(e.adminID, e.adminTk) }

// raw makes a request with a form body, as user, and decodes the JSON.
func (e *env) raw(t *testing.T, method, path, user, token string, form url.Values) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, token)
	}
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %v", method, path, res.StatusCode, err)
		}
	}
	return res.StatusCode, out
}

func restErr(err error) *tclient.TwilioRestError {
	var te *tclient.TwilioRestError
	if errors.As(err, &te) {
		return te
	}
	return nil
}

// newAccount creates an account with the SDK as the operator and
// returns its SID and token.
func (e *env) newAccount(t *testing.T, name string) (string, string) {
	t.Helper()
	a, err := e.admin().Api.CreateAccount(&openapi.CreateAccountParams{FriendlyName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if a.Sid == nil || a.AuthToken == nil || *a.FriendlyName != name || *a.Status != "active" {
		t.Fatalf("created account %+v", a)
	}
	return *a.Sid, *a.AuthToken
}

func TestAccountsAndNumbersWithTheSDK(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		evil := `O'Brien"; DROP TABLE accounts; --`
		sid, token := e.newAccount(t, evil)
		other, otherTok := e.newAccount(t, "other")
		me := e.sdk(sid, token)
		a, err := me.Api.FetchAccount(sid)
		if err != nil || *a.FriendlyName != evil || a.AuthToken != nil || *a.DateCreated == "" {
			t.Fatalf("FetchAccount = %+v, %v", a, err)
		}
		if _, err := time.Parse(time.RFC1123Z, *a.DateCreated); err != nil {
			t.Errorf("date_created %q is not RFC 2822: %v", *a.DateCreated, err)
		}
		// Another account's SID is not found, not forbidden.
		if _, err := me.Api.FetchAccount(other); restErr(err) == nil || restErr(err).Status != 404 {
			t.Fatalf("fetch another account: %v", err)
		}
		// Numbers are given by the operator.
		num := "+14155550100"
		trunk := "pbx"
		if _, err := me.Api.CreateIncomingPhoneNumber(&openapi.CreateIncomingPhoneNumberParams{PhoneNumber: &num}); restErr(err) == nil || restErr(err).Status != 404 {
			t.Fatalf("an account gave itself a number: %v", err)
		}
		n, err := e.admin().Api.CreateIncomingPhoneNumber((&openapi.CreateIncomingPhoneNumberParams{}).SetPathAccountSid(sid).SetPhoneNumber(num).SetTrunkSid(trunk))
		if err != nil || *n.PhoneNumber != num || *n.TrunkSid != "pbx" || !n.Capabilities.Voice || *n.AccountSid != sid {
			t.Fatalf("CreateIncomingPhoneNumber = %+v, %v", n, err)
		}
		if _, err := e.admin().Api.CreateIncomingPhoneNumber((&openapi.CreateIncomingPhoneNumberParams{}).SetPathAccountSid(other).SetPhoneNumber(num)); restErr(err) == nil || restErr(err).Status != 409 {
			t.Fatalf("the same number twice: %v", err)
		}
		nums, err := me.Api.ListIncomingPhoneNumber(&openapi.ListIncomingPhoneNumberParams{})
		if err != nil || len(nums) != 1 || *nums[0].Sid != *n.Sid {
			t.Fatalf("ListIncomingPhoneNumber = %+v, %v", nums, err)
		}
		if _, err := e.sdk(other, otherTok).Api.FetchIncomingPhoneNumber(*n.Sid, (&openapi.FetchIncomingPhoneNumberParams{}).SetPathAccountSid(sid)); restErr(err) == nil || restErr(err).Status != 404 {
			t.Fatalf("another account fetched the number: %v", err)
		}
		// The admission cache sees the new number at once.
		if d := e.p.AdmitCall(control.Attempt{To: num}); d.Account != sid || d.Target != "trunk:pbx" {
			t.Fatalf("admission after the API's change: %+v", d)
		}
		// Nor may it send its number's calls elsewhere (the target skips
		// the class of restriction: toll fraud through a carrier).
		for _, f := range []url.Values{{"VoiceUrl": {"sip:+19005551234@192.0.2.1:5060"}}, {"TrunkSid": {"carrier"}}} {
			if st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers/"+*n.Sid+".json", sid, token, f); st != 403 {
				t.Fatalf("account re-pointed its number with %v: %d %v", f, st, out)
			}
		}
		if st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers/"+*n.Sid+".json", sid, token, url.Values{"FriendlyName": {"main line"}}); st != 200 {
			t.Fatalf("account renamed its number: %d %v", st, out)
		}
		// An account may rename itself but not lift its own limits.
		st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+".json", sid, token, url.Values{"CallsPerSecond": {"1000"}})
		if st != 403 || out["code"] == nil || out["more_info"] == nil || out["status"].(float64) != 403 {
			t.Fatalf("account raised its own cps: %d %v", st, out)
		}
		st, out = e.raw(t, "POST", api.Version+"/Accounts/"+sid+".json", e.adminID, e.adminTk, url.Values{"Status": {"suspended"}, "CallsPerSecond": {"5"}})
		if st != 200 || out["status"] != "suspended" || out["calls_per_second"].(float64) != 5 {
			t.Fatalf("operator suspends: %d %v", st, out)
		}
		if d := e.p.AdmitCall(control.Attempt{Account: sid, To: "+14155550111"}); d.Code != 403 {
			t.Fatalf("suspended account admitted: %+v", d)
		}
		// The audit log has it all, secrets left out.
		st, out = e.raw(t, "GET", api.Version+"/Accounts/"+sid+"/AuditLog.json", sid, token, nil)
		rows, _ := out["audit_log"].([]any)
		if st != 200 || len(rows) != 4 { // create, number, rename, suspend
			t.Fatalf("audit log: %d %v", st, out)
		}
		if b, _ := json.Marshal(rows); strings.Contains(string(b), store.HashToken(token)) || strings.Contains(string(b), token) {
			t.Fatalf("audit log shows the token: %s", b)
		}
		// The customer sees the operator acted; the operator sees which
		// credential did.
		if rows[0].(map[string]any)["actor"] != "admin" || strings.Contains(fmt.Sprint(rows), e.adminID) {
			t.Errorf("customer's audit actor %v", rows[0])
		}
		st, out = e.raw(t, "GET", api.Version+"/Accounts/"+sid+"/AuditLog.json", e.adminID, e.adminTk, nil)
		if rows, _ := out["audit_log"].([]any); st != 200 || len(rows) != 4 || rows[0].(map[string]any)["actor"] != "admin:"+e.adminID {
			t.Errorf("operator's audit log: %d %v", st, out)
		}
	})
}

// callRows writes n calls of account over the last n minutes.
func callRows(t *testing.T, e *env, account string, n int) []store.Call {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	var calls []store.Call
	for i := range n {
		c := store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: account, From: "+14155550999", To: fmt.Sprintf("+1415555%04d", i%7),
			Direction: store.DirectionTerminating, Status: store.CallCompleted, SIPCode: 200, Created: now.Add(-time.Duration(n-i) * time.Minute)}
		c.Answered, c.Ended, c.Duration = c.Created.Add(2*time.Second), c.Created.Add(32*time.Second), 30
		if i%3 == 0 {
			c.Status, c.SIPCode, c.Answered, c.Ended, c.Duration = store.CallBusy, 486, time.Time{}, c.Created.Add(time.Second), 0
		}
		calls = append(calls, c)
	}
	if _, err := e.p.Store().WriteCalls(context.Background(), calls); err != nil {
		t.Fatal(err)
	}
	return calls
}

func TestCallsWithTheSDK(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		sid, token := e.newAccount(t, "a")
		other, _ := e.newAccount(t, "b")
		calls := callRows(t, e, sid, 120)
		callRows(t, e, other, 5)
		me := e.sdk(sid, token)

		// Paging: 120 calls by pages of 25, the SDK following next_page_uri.
		got, err := me.Api.ListCall((&openapi.ListCallParams{}).SetPageSize(25).SetLimit(1000))
		if err != nil || len(got) != 120 {
			t.Fatalf("ListCall: %d calls, %v", len(got), err)
		}
		seen := map[string]bool{}
		for i, c := range got {
			if seen[*c.Sid] || *c.AccountSid != sid {
				t.Fatalf("call %d: %s repeated or another account's", i, *c.Sid)
			}
			seen[*c.Sid] = true
		}
		if *got[0].Sid != calls[119].SID || *got[119].Sid != calls[0].SID {
			t.Errorf("not newest first")
		}
		page, err := me.Api.PageCall((&openapi.ListCallParams{}).SetPageSize(50), "", "")
		if err != nil || len(page.Calls) != 50 || page.NextPageUri == nil || page.PreviousPageUri != nil || page.Page != 0 {
			t.Fatalf("first page: %+v %v", page, err)
		}
		// Filters.
		busy, err := me.Api.ListCall((&openapi.ListCallParams{}).SetStatus("busy").SetLimit(1000))
		if err != nil || len(busy) != 40 {
			t.Fatalf("Status=busy: %d, %v", len(busy), err)
		}
		to, err := me.Api.ListCall((&openapi.ListCallParams{}).SetTo("+14155550003").SetLimit(1000))
		if err != nil || len(to) != 17 {
			t.Fatalf("To: %d, %v", len(to), err)
		}
		cut := calls[100].Answered
		after, err := me.Api.ListCall((&openapi.ListCallParams{}).SetStartTimeAfter(cut).SetLimit(1000))
		// Answered strictly after calls[100]: the answered ones among 101..119.
		want := 0
		for _, c := range calls[101:] {
			if !c.Answered.IsZero() {
				want++
			}
		}
		if err != nil || len(after) != want {
			t.Fatalf("StartTime>: %d, want %d, %v", len(after), want, err)
		}
		st, out := e.raw(t, "GET", api.Version+"/Accounts/"+sid+"/Calls.json?"+url.Values{"StartTime>=": {cut.Format(time.RFC3339)}, "StartTime<=": {calls[110].Answered.Format(time.RFC3339)}}.Encode(), sid, token, nil)
		// Answered from calls[100] to calls[110] inclusive: 11 but the 3 busy.
		if n := len(out["calls"].([]any)); st != 200 || n != 8 {
			t.Fatalf("StartTime>= and <=: %d, %d calls", st, n)
		}

		// Fetch, and the fields the SDK reads.
		c, err := me.Api.FetchCall(calls[5].SID, nil)
		if err != nil || *c.Status != "completed" || *c.Duration != "30" || *c.Direction != "trunking-terminating" || *c.To != calls[5].To ||
			!strings.HasSuffix(*c.Uri, "/Calls/"+calls[5].SID+".json") {
			t.Fatalf("FetchCall = %+v, %v", c, err)
		}
		if _, err := time.Parse(time.RFC1123Z, *c.StartTime); err != nil {
			t.Errorf("start_time %q: %v", *c.StartTime, err)
		}
		// Another account's call: 404, as if it did not exist.
		otherCalls, _ := e.p.Store().ListCalls(context.Background(), store.CallFilter{AccountSID: other}, store.Page{Size: 1})
		if _, err := me.Api.FetchCall(otherCalls[0].SID, nil); restErr(err) == nil || restErr(err).Status != 404 {
			t.Fatalf("fetch another account's call: %v", err)
		}
		if _, err := me.Api.FetchCall(otherCalls[0].SID, (&openapi.FetchCallParams{}).SetPathAccountSid(other)); restErr(err) == nil || restErr(err).Status != 404 {
			t.Fatalf("fetch under another account's path: %v", err)
		}

		// Hang up a live call.
		live := store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: sid, From: "+1", To: "+2", Direction: store.DirectionTerminating,
			Status: store.CallInProgress, Created: time.Now(), Answered: time.Now()}
		if _, err := e.p.Store().WriteCalls(context.Background(), []store.Call{live}); err != nil {
			t.Fatal(err)
		}
		done, err := me.Api.UpdateCall(live.SID, (&openapi.UpdateCallParams{}).SetStatus("completed"))
		if err != nil || *done.Status != "completed" {
			t.Fatalf("UpdateCall Status=completed = %+v, %v", done, err)
		}
		if sid := <-e.hangups; sid != live.SID {
			t.Fatalf("hung up %s", sid)
		}
		// An ended call is left as it is.
		if again, err := me.Api.UpdateCall(live.SID, (&openapi.UpdateCallParams{}).SetStatus("completed")); err != nil || *again.Status != "completed" {
			t.Fatalf("hang up an ended call: %+v %v", again, err)
		}
		if _, err := me.Api.UpdateCall(live.SID, (&openapi.UpdateCallParams{}).SetStatus("ringing")); restErr(err) == nil || restErr(err).Status != 400 {
			t.Fatalf("Status=ringing: %v", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		sid, token := e.newAccount(t, "a")
		base := api.Version + "/Accounts/" + sid
		tests := []struct {
			name, method, path string
			form               url.Values
			status             int
			msg                string
		}{
			{"unknown parameter", "GET", base + "/Calls.json?Colour=red", nil, 400, "Colour"},
			{"unknown form field", "POST", base + ".json", url.Values{"Nickname": {"x"}}, 400, "Nickname"},
			{"bad page size", "GET", base + "/Calls.json?PageSize=5000", nil, 400, "PageSize"},
			{"bad page token", "GET", base + "/Calls.json?PageToken=PAxyz", nil, 400, "PageToken"},
			{"bad date", "GET", base + "/Calls.json?" + url.Values{"StartTime>=": {"yesterday"}}.Encode(), nil, 400, "StartTime>="},
			{"SQL in a filter", "GET", base + "/Calls.json?" + url.Values{"Status": {"x' OR '1'='1"}}.Encode(), nil, 200, ""},
			{"weak password", "POST", base + "/SIP/Users.json", url.Values{"Username": {"alice"}, "Password": {"password"}}, 400, "Password"},
			{"bad username", "POST", base + "/SIP/Users.json", url.Values{"Username": {"al ice"}, "Password": {"Str0ng-Passw0rd!"}}, 400, "Username"},
			{"a user's class is the operator's", "POST", base + "/SIP/Users.json", url.Values{"Username": {"bob"}, "Password": {"Str0ng-Passw0rd!"}, "ClassOfRestriction": {"intl"}}, 403, "ClassOfRestriction"},
			{"an account does not top itself up", "POST", base + ".json", url.Values{"BalanceAdjustment": {"100"}}, 403, "BalanceAdjustment"},
			{"malformed call sid", "GET", base + "/Calls/CA123.json", nil, 404, ""},
			{"no such route", "GET", api.Version + "/Nothing.json", nil, 404, ""},
			{"malformed form", "POST", base + ".json", url.Values{"FriendlyName": {"%zz"}}, 200, ""},
		}
		for _, tt := range tests {
			st, out := e.raw(t, tt.method, tt.path, sid, token, tt.form)
			if st != tt.status || (tt.msg != "" && !strings.Contains(fmt.Sprint(out["message"]), tt.msg)) {
				t.Errorf("%s: %d %v; want %d naming %q", tt.name, st, out, tt.status, tt.msg)
			}
			if st >= 400 && (out["code"] == nil || out["more_info"] == nil) {
				t.Errorf("%s: error without code/more_info: %v", tt.name, out)
			}
		}
		// A JSON body is not a form.
		req, _ := http.NewRequest("POST", e.base+base+".json", strings.NewReader(`{"FriendlyName":`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(sid, token)
		res, err := e.http.Do(req)
		if err != nil || res.StatusCode != 415 {
			t.Fatalf("JSON body: %v %v", res.StatusCode, err)
		}
		res.Body.Close()
		// A good user is made, and no hash or password comes back.
		st, out := e.raw(t, "POST", base+"/SIP/Users.json", sid, token, url.Values{"Username": {"alice"}, "Password": {"Str0ng-Passw0rd!"}})
		if b, _ := json.Marshal(out); st != 201 || strings.Contains(string(b), "Passw0rd") || strings.Contains(string(b), "ha1") {
			t.Fatalf("create user: %d %s", st, b)
		}
	})
}

func TestAuthLockout(t *testing.T) {
	e := newEnv(t, "")
	sid, token := e.newAccount(t, "a")
	path := api.Version + "/Accounts/" + sid + ".json"
	if st, _ := e.raw(t, "GET", path, "", "", nil); st != 401 {
		t.Fatalf("no credentials: %d", st)
	}
	if st, _ := e.raw(t, "GET", path, sid, token+"x", nil); st != 401 {
		t.Fatalf("wrong token: %d", st)
	}
	for range 5 {
		e.raw(t, "GET", path, sid, "wrong", nil)
	}
	// Six failures: locked out, even with the right token.
	st, out := e.raw(t, "GET", path, sid, token, nil)
	if st != 429 || !strings.Contains(out["message"].(string), "retry in") {
		t.Fatalf("after 6 failures: %d %v", st, out)
	}
	time.Sleep(1100 * time.Millisecond)
	if st, _ := e.raw(t, "GET", path, sid, token, nil); st != 200 {
		t.Fatalf("after the lockout: %d", st)
	}
}

func TestTLSOnly12Plus(t *testing.T) {
	e := newEnv(t, "")
	host := strings.TrimPrefix(e.base, "https://")
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Errorf("TLS version %x accepted", v)
		}
	}
	// TLS 1.2 with a CBC suite is refused; with ECDHE-GCM it works.
	c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Error("TLS 1.2 CBC suite accepted")
	}
	c, err = tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	c.Close()
	// Plain HTTP to the HTTPS port gets no API.
	res, err := http.Get("http://" + host + "/openapi.json")
	if err == nil {
		if res.StatusCode == 200 {
			t.Error("plain HTTP served the API")
		}
		res.Body.Close()
	}
}

// TestConcurrentWriters creates numbers and changes an account from many
// clients at once through the API.
func TestConcurrentWriters(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		sid, _ := e.newAccount(t, "a")
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers.json", e.adminID, e.adminTk,
						url.Values{"PhoneNumber": {fmt.Sprintf("+1212555%02d%02d", w, i)}})
					if st != 201 {
						errs <- fmt.Errorf("create number: %d %v", st, out)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		st, out := e.raw(t, "GET", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers.json?PageSize=1000", e.adminID, e.adminTk, nil)
		if n := len(out["incoming_phone_numbers"].([]any)); st != 200 || n != 80 {
			t.Fatalf("%d numbers", n)
		}
	})
}

// TestSQLMetacharacters puts quotes, comment markers, wildcards and a
// statement separator in every free-text field and filter: they are
// stored and returned as text, and filters match them literally.
func TestSQLMetacharacters(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		evil := `x'; DROP TABLE calls; -- "%_\`
		st, out := e.raw(t, "POST", api.Version+"/Accounts.json", e.adminID, e.adminTk, url.Values{"FriendlyName": {evil}})
		if st != 201 || out["friendly_name"] != evil {
			t.Fatalf("account: %d %v", st, out)
		}
		sid := out["sid"].(string)
		st, out = e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers.json", e.adminID, e.adminTk,
			url.Values{"PhoneNumber": {"+14155550100"}, "FriendlyName": {evil}, "SmsUrl": {"https://example.com/sms?q=" + url.QueryEscape(evil)}})
		if st != 201 || out["friendly_name"] != evil {
			t.Fatalf("number: %d %v", st, out)
		}
		// Fields that must be names refuse it, naming the field.
		for _, f := range []url.Values{
			{"PhoneNumber": {evil}},
			{"PhoneNumber": {"+14155550101"}, "VoiceUrl": {evil}},
			{"PhoneNumber": {"+14155550101"}, "TrunkSid": {evil}},
		} {
			if st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers.json", e.adminID, e.adminTk, f); st != 400 {
				t.Errorf("%v: %d %v; want 400", f, st, out)
			}
		}
		for _, f := range []url.Values{
			{"Username": {evil}, "Password": {"Str0ng-Passw0rd!"}},
			{"Username": {"bob"}, "Password": {"Str0ng-Passw0rd!"}, "ClassOfRestriction": {evil}},
		} {
			if st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/SIP/Users.json", e.adminID, e.adminTk, f); st != 400 {
				t.Errorf("%v: %d %v; want 400", f, st, out)
			}
		}
		// A password full of metacharacters is a fine password.
		if st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/SIP/Users.json", e.adminID, e.adminTk,
			url.Values{"Username": {"bob"}, "Password": {"A1" + evil}}); st != 201 {
			t.Errorf("metacharacter password: %d %v", st, out)
		}
		for _, k := range []string{"Status", "From", "To"} {
			st, out := e.raw(t, "GET", api.Version+"/Accounts/"+sid+"/Calls.json?"+url.Values{k: {evil}}.Encode(), e.adminID, e.adminTk, nil)
			if st != 200 || len(out["calls"].([]any)) != 0 {
				t.Errorf("filter %s: %d %v", k, st, out)
			}
		}
		for _, k := range []string{"FriendlyName", "Status"} {
			st, out := e.raw(t, "GET", api.Version+"/Accounts.json?"+url.Values{k: {evil}}.Encode(), e.adminID, e.adminTk, nil)
			want := 0
			if k == "FriendlyName" {
				want = 1
			}
			if st != 200 || len(out["accounts"].([]any)) != want {
				t.Errorf("accounts filter %s: %d %v", k, st, out)
			}
		}
		// Everything is still there.
		if n, err := e.p.Store().CountCalls(context.Background(), ""); err != nil || n != 0 {
			t.Fatalf("calls table: %d %v", n, err)
		}
	})
}

// An account lists its users' registered devices, and no other account's.
func TestRegistrationsList(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		a, aTok := e.newAccount(t, "a")
		b, _ := e.newAccount(t, "b")
		now := time.Now().UTC().Truncate(time.Second)
		reg := func(acct, user string) store.Registration {
			return store.Registration{Username: user, Contact: "sip:" + user + "@10.0.0.2", AccountSID: acct, Node: "n1", Transport: "tls",
				Source: "192.0.2.7:40000", Expires: now.Add(time.Minute), UserAgent: "baresip", Updated: now}
		}
		if err := e.p.Store().SaveRegistrations(context.Background(), []store.Registration{reg(a, "alice"), reg(b, "bob")}, nil); err != nil {
			t.Fatal(err)
		}
		st, out := e.raw(t, "GET", api.Version+"/Accounts/"+a+"/SIP/Registrations.json", a, aTok, nil)
		rows, _ := out["registrations"].([]any)
		if st != 200 || len(rows) != 1 {
			t.Fatalf("registrations: %d %v", st, out)
		}
		r := rows[0].(map[string]any)
		if r["username"] != "alice" || r["transport"] != "tls" || r["source"] != "192.0.2.7:40000" || r["expires"] == nil {
			t.Errorf("row %v", r)
		}
		if st, _ := e.raw(t, "GET", api.Version+"/Accounts/"+b+"/SIP/Registrations.json", a, aTok, nil); st != 404 {
			t.Errorf("another account's registrations: %d; want 404", st)
		}
		if st, out := e.raw(t, "GET", api.Version+"/Accounts/"+b+"/SIP/Registrations.json?Username=bob", e.adminID, e.adminTk, nil); st != 200 || len(out["registrations"].([]any)) != 1 {
			t.Errorf("operator: %d %v", st, out)
		}
	})
}

// A customer cannot point its number's SmsUrl at the operator's network
// (server-side request forgery): private and metadata addresses, local
// names and plain http are refused, naming the field.
func TestSmsURLPolicy(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		sid, token := e.newAccount(t, "a")
		st, out := e.raw(t, "POST", api.Version+"/Accounts/"+sid+"/IncomingPhoneNumbers.json", e.adminID, e.adminTk,
			url.Values{"PhoneNumber": {"+14155550100"}, "SmsEnabled": {"true"}})
		if st != 201 {
			t.Fatalf("number: %d %v", st, out)
		}
		path := api.Version + "/Accounts/" + sid + "/IncomingPhoneNumbers/" + out["sid"].(string) + ".json"
		for _, u := range []string{"https://169.254.169.254/latest/meta-data/", "https://127.0.0.1:8443/", "https://[::1]/", "https://localhost/",
			"https://db.internal/", "http://hooks.example.com/sms"} {
			if st, out := e.raw(t, "POST", path, sid, token, url.Values{"SmsUrl": {u}}); st != 400 || !strings.Contains(fmt.Sprint(out["message"]), "SmsUrl") {
				t.Errorf("SmsUrl %s: %d %v; want 400 naming SmsUrl", u, st, out)
			}
		}
		if st, out := e.raw(t, "POST", path, sid, token, url.Values{"SmsUrl": {"https://hooks.example.com/sms"}}); st != 200 || out["sms_url"] != "https://hooks.example.com/sms" {
			t.Errorf("a public https URL: %d %v", st, out)
		}
	})
}
