package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sbc/control/messaging"
	"sbc/control/store"
)

// posted records what the plane asks its webhook sender to post.
type posted struct {
	mu    sync.Mutex
	hooks []post
}

type post struct {
	url, key, token string
	params          url.Values
}

func (p *posted) Post(rawURL string, params url.Values, key, token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = append(p.hooks, post{rawURL, key, token, params})
	return true
}

func (p *posted) take() []post {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.hooks
	p.hooks = nil
	return out
}

func TestWebhooks(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	name := "a"
	a, token, err := p.CreateAccount(ctx, "cli", AccountSpec{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	if a.TokenSealed == "" || strings.Contains(a.TokenSealed, token) {
		t.Fatalf("sealed token %q", a.TokenSealed)
	}
	w := &posted{}
	p.SetWebhooks(w)
	num, sms, smsURL, callURL := "+14155550100", true, "https://hooks.example.com/sms", "https://hooks.example.com/calls"
	if _, err := p.CreateNumber(ctx, "cli", a.SID, NumberSpec{PhoneNumber: &num, SMS: &sms, SMSURL: &smsURL, Callback: &callURL}); err != nil {
		t.Fatal(err)
	}
	q := messaging.NewQueue(p.st, nil, p.SMSRate, slog.New(slog.NewTextHandler(io.Discard, nil))) // not started
	p.SetMessageQueue(q)

	// Outbound: queued at once, then each status the row moves to, the
	// carrier's report with its own words.
	m, err := p.SendMessage(ctx, a.SID, num, "+14155550199", "hi", "https://hooks.example.com/status")
	if err != nil {
		t.Fatal(err)
	}
	m.CarrierID = "c1@sbc"
	for _, st := range []messaging.Status{messaging.Sending, messaging.Sent} {
		m.Status = string(st)
		if _, err := p.SetMessageStatus(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	for _, report := range []string{"ENROUTE", "Spam Reject"} { // an interim report is no news
		if _, err := p.DeliveryReport(ctx, "c1@sbc", report); err != nil {
			t.Fatal(err)
		}
	}
	var statuses []string
	for _, h := range w.take() {
		if h.url != "https://hooks.example.com/status" || h.key != m.SID || h.token != token ||
			h.params.Get("MessageSid") != m.SID || h.params.Get("AccountSid") != a.SID || h.params.Get("ApiVersion") != "2010-04-01" {
			t.Fatalf("status hook %+v", h)
		}
		statuses = append(statuses, h.params.Get("MessageStatus"))
		if last := h.params; last.Get("MessageStatus") == "failed" && (last.Get("ErrorCode") != "30007" || last.Get("ChannelStatusMessage") != "Spam Reject") {
			t.Fatalf("failed hook %v", last)
		}
	}
	if got := strings.Join(statuses, " "); got != "queued sending sent failed" {
		t.Fatalf("statuses posted: %s", got)
	}

	// Inbound: to the number's SMS URL, keyed by the conversation.
	if _, _, err := p.ReceiveMessage(ctx, "+14155550199", num, "hello"); err != nil {
		t.Fatal(err)
	}
	hs := w.take()
	if len(hs) != 1 || hs[0].url != smsURL || hs[0].params.Get("Body") != "hello" || hs[0].params.Get("From") != "+14155550199" ||
		hs[0].params.Get("SmsStatus") != "received" || hs[0].key != num+" +14155550199" {
		t.Fatalf("inbound hooks %+v", hs)
	}

	// A call to the number: its end, once written.
	sid := store.NewSID(store.PrefixCall)
	now := time.Now()
	p.LogCall(store.Call{SID: sid, AccountSID: a.SID, From: "+14155550199", To: num, Status: store.CallRinging, Created: now})
	if err := p.FlushCall(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if hs := w.take(); len(hs) != 0 {
		t.Fatalf("hooks before the call ended: %+v", hs)
	}
	p.LogCall(store.Call{SID: sid, AccountSID: a.SID, From: "+14155550199", To: num, Status: store.CallCompleted, SIPCode: 200,
		Duration: 42, Created: now, Answered: now, Ended: now.Add(42 * time.Second)})
	if err := p.FlushCall(ctx, sid); err != nil {
		t.Fatal(err)
	}
	hs = w.take()
	if len(hs) != 1 || hs[0].url != callURL || hs[0].key != sid || hs[0].params.Get("CallStatus") != "completed" ||
		hs[0].params.Get("CallDuration") != "42" || hs[0].token != token {
		t.Fatalf("call hooks %+v", hs)
	}

	// A rotated token signs from then on; a token made before tokens
	// were sealed signs nothing.
	token2, err := p.RotateToken(ctx, "cli", a.SID)
	if err != nil {
		t.Fatal(err)
	}
	p.ReceiveMessage(ctx, "+14155550199", num, "again")
	if hs := w.take(); len(hs) != 1 || hs[0].token != token2 {
		t.Fatalf("after rotation: %+v", hs)
	}
	if _, err := p.st.UpdateAccount(ctx, "cli", a.SID, func(a *store.Account) error { a.TokenSealed = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	p.ReceiveMessage(ctx, "+14155550199", num, "unsigned")
	if hs := w.take(); len(hs) != 0 {
		t.Fatalf("unsignable hook sent: %+v", hs)
	}
}

func TestTokenSealer(t *testing.T) {
	dir := t.TempDir()
	s := &tokenSealer{path: filepath.Join(dir, "sub", "token.key")}
	sealed, err := s.seal("AC1", "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// Another process (the CLI, a restart) reads the same key.
	again := &tokenSealer{path: s.path}
	if tok, err := again.open("AC1", sealed); err != nil || tok != "secret-token" {
		t.Fatalf("open: %q %v", tok, err)
	}
	if _, err := again.open("AC2", sealed); err == nil {
		t.Fatal("a sealed token opened for another account")
	}
	other := &tokenSealer{path: filepath.Join(dir, "other.key")}
	if _, err := other.open("AC1", sealed); err == nil || !strings.Contains(err.Error(), "another node's key") {
		t.Fatalf("another key: %v", err)
	}
	if _, err := s.open("AC1", ""); !errors.Is(err, ErrNoSealedToken) {
		t.Fatalf("no sealed token: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "short.key"), []byte("short"), 0o600)
	if _, err := (&tokenSealer{path: filepath.Join(dir, "short.key")}).seal("AC1", "x"); err == nil || !strings.Contains(err.Error(), "token_key_file") {
		t.Fatalf("short key: %v", err)
	}
}
