package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sbc/control/store"
)

// testPlane is a plane over a fresh SQLite store with a clock the test
// moves.
func testPlane(t testing.TB, cfg Config) (*Plane, *time.Time) {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "sbc.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.calls = newCallLog(st, p.log, p.callsWritten)
	p.msgw = newMsgWriter(st)
	t.Cleanup(func() { p.Close() })
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	return p, &now
}

func ptr[T any](v T) *T { return &v }

func mustAccount(t testing.TB, p *Plane, name string, s AccountSpec) store.Account {
	t.Helper()
	s.Name = &name
	a, tok, err := p.CreateAccount(context.Background(), "cli", s)
	if err != nil || len(tok) != 32 {
		t.Fatal(err)
	}
	return a
}

func mustNumber(t testing.TB, p *Plane, account, num, target string) store.Number {
	t.Helper()
	n, err := p.CreateNumber(context.Background(), "cli", account, NumberSpec{PhoneNumber: &num, VoiceTarget: &target})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdmitCall(t *testing.T) {
	p, now := testPlane(t, Config{Classes: []Class{{Name: "intl", International: true}}})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{CPS: ptr(2), MaxConcurrent: ptr(3)})
	b := mustAccount(t, p, "b", AccountSpec{Class: ptr("intl"), CPS: ptr(100), MaxConcurrent: ptr(100)})
	susp := mustAccount(t, p, "s", AccountSpec{})
	if _, err := p.UpdateAccount(ctx, "cli", susp.SID, AccountSpec{Status: ptr(store.StatusSuspended)}); err != nil {
		t.Fatal(err)
	}
	mustNumber(t, p, a.SID, "+14155550100", "trunk:pbx-a")
	mustNumber(t, p, a.SID, "+14155550101", "")
	mustNumber(t, p, b.SID, "+14155550200", "trunk:pbx-b")
	mustNumber(t, p, susp.SID, "+14155550300", "trunk:pbx-s")
	off := mustNumber(t, p, b.SID, "+14155550201", "trunk:pbx-b")
	if _, err := p.UpdateNumber(ctx, "cli", b.SID, off.SID, NumberSpec{Voice: ptr(false)}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		at        Attempt
		code      int
		reason    string
		account   string
		direction string
		target    string
	}{
		{"carrier to a's number", Attempt{To: "+14155550100"}, 0, "", a.SID, store.DirectionOriginating, "trunk:pbx-a"},
		{"carrier to number without +", Attempt{To: "14155550200"}, 0, "", b.SID, store.DirectionOriginating, "trunk:pbx-b"},
		{"carrier to unknown number: transit", Attempt{To: "+14155559999"}, 0, "", "", store.DirectionTransit, ""},
		{"carrier to suspended account's number", Attempt{To: "+14155550300"}, 403, "not active", "", "", ""},
		{"carrier to voice-disabled number", Attempt{To: "+14155550201"}, 404, "not voice-enabled", "", "", ""},
		{"a on-net to own number", Attempt{Account: a.SID, To: "+14155550100"}, 0, "", a.SID, store.DirectionTerminating, "trunk:pbx-a"},
		{"a to own number without target: dial plan", Attempt{Account: a.SID, To: "+14155550101"}, 0, "", a.SID, store.DirectionTerminating, ""},
		{"a to b's number: PSTN, not on-net", Attempt{Account: a.SID, To: "+14155550200"}, 0, "", a.SID, store.DirectionTerminating, ""},
		{"a premium", Attempt{Account: a.SID, To: "+19005550100"}, 403, "class default: premium +1900", "", "", ""},
		{"a international", Attempt{Account: a.SID, To: "+442079460958"}, 403, "class default: international (outside +1)", "", "", ""},
		{"b international allowed", Attempt{Account: b.SID, To: "+442079460958"}, 0, "", b.SID, store.DirectionTerminating, ""},
		{"b premium still denied", Attempt{Account: b.SID, To: "+19765550100"}, 403, "premium +1976", "", "", ""},
		{"suspended account calls", Attempt{Account: susp.SID, To: "+14155550100"}, 403, "account suspended", "", "", ""},
		{"unknown account", Attempt{Account: store.NewSID("AC"), To: "+14155550100"}, 403, "account not found", "", "", ""},
		{"not a number", Attempt{Account: b.SID, To: "alice"}, 404, "not an E.164", "", "", ""},
	}
	for _, tt := range tests {
		*now = now.Add(time.Second) // a fresh token each
		d := p.AdmitCall(tt.at)
		if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) || (d.Code == 0 && (d.Account != tt.account || d.Direction != tt.direction || d.Target != tt.target)) {
			t.Errorf("%s: %+v; want code %d reason ~%q account %s direction %s target %q", tt.name, d, tt.code, tt.reason, tt.account, tt.direction, tt.target)
		}
		d.Release()
	}

	// Cross-account refusal when the config says so.
	p.cfg.CrossAccount = CrossRefuse
	*now = now.Add(time.Second)
	if d := p.AdmitCall(Attempt{Account: a.SID, To: "+14155550200"}); d.Code != 403 || !strings.Contains(d.Reason, "another account") {
		t.Errorf("cross-account refuse: %+v", d)
	}
}

func TestAdmitLimits(t *testing.T) {
	p, now := testPlane(t, Config{})
	a := mustAccount(t, p, "a", AccountSpec{CPS: ptr(2), MaxConcurrent: ptr(3)})
	at := Attempt{Account: a.SID, To: "+14155550100"}
	// Burst of cps, then 503 with Retry-After until a token comes back.
	d1, d2 := p.AdmitCall(at), p.AdmitCall(at)
	if !d1.Admitted() || !d2.Admitted() {
		t.Fatalf("burst: %+v %+v", d1, d2)
	}
	d3 := p.AdmitCall(at)
	if d3.Code != 503 || d3.RetryAfter != 1 {
		t.Fatalf("over cps: %+v", d3)
	}
	*now = now.Add(500 * time.Millisecond) // one token at 2/s
	d4 := p.AdmitCall(at)
	if !d4.Admitted() {
		t.Fatalf("after 0.5 s: %+v", d4)
	}
	// Three calls up: the fourth is refused as busy, and takes no token.
	*now = now.Add(10 * time.Second)
	d5 := p.AdmitCall(at)
	if d5.Code != 486 || p.Active(a.SID) != 3 {
		t.Fatalf("over concurrency: %+v, active %d", d5, p.Active(a.SID))
	}
	d1.Release()
	d1.Release() // twice is harmless
	if d := p.AdmitCall(at); !d.Admitted() || p.Active(a.SID) != 3 {
		t.Fatalf("after a release: %+v active %d", d, p.Active(a.SID))
	}
	// A refused decision releases nothing.
	d5.Release()
	if p.Active(a.SID) != 3 {
		t.Fatalf("active %d", p.Active(a.SID))
	}
}

func TestReloadSeesOtherWriters(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{})
	// Another node (here: the store directly) suspends the account.
	if _, err := p.st.UpdateAccount(ctx, "cli", a.SID, func(a *store.Account) error { a.Status = store.StatusSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	at := Attempt{Account: a.SID, To: "+14155550100"}
	if d := p.AdmitCall(at); !d.Admitted() {
		t.Fatalf("before reload: %+v", d) // the cache is what decides
	}
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if d := p.AdmitCall(at); d.Code != 403 {
		t.Fatalf("after reload: %+v", d)
	}
}

func TestCallLogCoalescesAndFlushes(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	sid := store.NewSID(store.PrefixCall)
	c := store.Call{SID: sid, AccountSID: "AC1", Status: store.CallRinging, Created: time.Now()}
	p.LogCall(c)
	c.Status, c.SIPCode = store.CallCompleted, 200
	p.LogCall(c)
	c.Status = store.CallInProgress // late: must not undo the final row
	p.LogCall(c)
	if err := p.FlushCalls(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := p.st.Call(ctx, "", sid)
	if err != nil || got.Status != store.CallCompleted || got.Node == "" {
		t.Fatalf("row %+v %v", got, err)
	}
}

func TestPasswordsAndUsers(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{})
	for _, pw := range []string{"short1A!", "alllowercase1!", "ALLUPPERCASE1!", "NoDigitsHere!!", "NoSpecial1234", "Tab\tInside1!x"} {
		if _, err := p.CreateUser(ctx, "cli", a.SID, "u", pw, ""); err == nil {
			t.Errorf("password %q accepted", pw)
		}
	}
	u, err := p.CreateUser(ctx, "cli", a.SID, "alice", "Correct-Horse-9", "")
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7616 §3.4.2's HA1 form: H(user:realm:password).
	if u.HA1MD5 != HA1("MD5", "alice", "sbc", "Correct-Horse-9") || len(u.HA1SHA256) != 64 || u.HA1MD5 == u.HA1SHA256[:32] {
		t.Fatalf("hashes %q %q", u.HA1MD5, u.HA1SHA256)
	}
	// RFC 2617 §3.5's example: Mufasa / testrealm@host.com / Circle Of Life.
	if got := HA1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("RFC 2617 HA1 = %s", got)
	}
	// RFC 7616 §3.9.1's example has SHA-256 HA1 of Mufasa / http-auth@example.org / Circle of Life.
	if got := HA1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life"); got != "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232" {
		t.Fatalf("RFC 7616 SHA-256 HA1 = %s", got)
	}
}

// TestPurgeDefaults runs the plane's purge at a moved clock with the
// default retention: 18 months of calls and audit, 6 of messages, 30 days
// of message bodies.
func TestPurgeDefaults(t *testing.T) {
	p, now := testPlane(t, Config{})
	ctx := context.Background()
	at := func(months, days int) time.Time { return now.AddDate(0, -months, -days) }
	calls := []store.Call{
		{SID: store.NewSID(store.PrefixCall), Status: store.CallCompleted, Created: at(18, 1)}, // goes
		{SID: store.NewSID(store.PrefixCall), Status: store.CallCompleted, Created: at(17, 27)},
	}
	if _, err := p.st.WriteCalls(ctx, calls); err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.Message{
		{SID: store.NewSID(store.PrefixMessage), Body: "old", Created: at(6, 1)},  // goes
		{SID: store.NewSID(store.PrefixMessage), Body: "mid", Created: at(0, 31)}, // body erased
		{SID: store.NewSID(store.PrefixMessage), Body: "new", Created: at(0, 29)},
	} {
		if err := p.st.WriteMessage(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	n, err := p.Purge(ctx)
	if err != nil || n.Calls != 1 || n.Messages != 1 || n.Bodies != 1 {
		t.Fatalf("purge at %v: %+v %v", *now, n, err)
	}
	// Eighteen months and a day after a change, its audit row goes, with
	// the call that was kept.
	mustAccount(t, p, "a", AccountSpec{})
	*now = time.Now().AddDate(0, 18, 1)
	if n, err := p.Purge(ctx); err != nil || n.Audit != 1 || n.Calls != 1 {
		t.Fatalf("purge 18 months on: %+v %v", n, err)
	}
}

func TestCloseLost(t *testing.T) {
	p, _ := testPlane(t, Config{Node: "pop1"})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	mk := func(status, node string, answered bool) store.Call {
		c := store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: "AC1", Status: status, Node: node, Created: now}
		if answered {
			c.Answered = now.Add(time.Second)
		}
		return c
	}
	up, ringing, adopted, done, other := mk(store.CallInProgress, "pop1", true), mk(store.CallRinging, "pop1", false),
		mk(store.CallInProgress, "pop1", true), mk(store.CallBusy, "pop1", false), mk(store.CallInProgress, "pop2", true)
	if _, err := p.st.WriteCalls(ctx, []store.Call{up, ringing, adopted, done, other}); err != nil {
		t.Fatal(err)
	}
	n, err := p.CloseLost(ctx, []string{adopted.SID})
	if err != nil || n != 2 {
		t.Fatalf("CloseLost = %d, %v; want the two of pop1 not taken over", n, err)
	}
	for _, w := range []struct {
		c      store.Call
		status string
	}{{up, store.CallCompleted}, {ringing, store.CallFailed}, {adopted, store.CallInProgress}, {done, store.CallBusy}, {other, store.CallInProgress}} {
		got, _ := p.st.Call(ctx, "", w.c.SID)
		if got.Status != w.status {
			t.Errorf("%s on %s: %s, want %s", w.c.Status, w.c.Node, got.Status, w.status)
		}
		if w.c.SID == up.SID && (got.EndedBy != EndedByLost || !got.Ended.Equal(up.Answered)) {
			t.Errorf("lost call row %+v", got)
		}
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	p, _ := testPlane(t, Config{})
	dir := p.cfg.DataDir
	// A data_dir it cannot write: no credential left in the store that
	// nobody holds (the next start would never write the file).
	p.cfg.DataDir = filepath.Join(dir, "missing")
	if _, err := p.EnsureAdmin(ctx); err == nil {
		t.Fatal("EnsureAdmin wrote into a missing directory")
	}
	if admins, _ := p.st.Admins(ctx); len(admins) != 0 {
		t.Fatalf("a failed EnsureAdmin left %d credentials", len(admins))
	}
	p.cfg.DataDir = dir
	path, err := p.EnsureAdmin(ctx)
	if err != nil || path != filepath.Join(dir, AdminTokenFile) {
		t.Fatalf("EnsureAdmin = %q, %v", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	sid, token, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	admins, _ := p.st.Admins(ctx)
	if len(admins) != 1 || admins[0].SID != sid || admins[0].TokenHash != store.HashToken(token) {
		t.Fatalf("file %q does not hold the store's credential %+v", b, admins)
	}
	if path, err := p.EnsureAdmin(ctx); path != "" || err != nil {
		t.Fatalf("second EnsureAdmin = %q, %v; want nothing made", path, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, AdminTokenFile+".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// A call's row is flushed however busy the queue is with other calls:
// FlushCall waits for that call's row alone; FlushCalls for an empty queue.
func TestFlushCallUnderLoad(t *testing.T) {
	w := &callLog{pending: map[string]store.Call{}, urgent: make(chan struct{}, 1)}
	other, sid := store.NewSID(store.PrefixCall), store.NewSID(store.PrefixCall)
	w.pending[other] = store.Call{SID: other}
	w.inflight = []store.Call{{SID: sid}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.flushCall(ctx, sid); err == nil {
		t.Fatal("FlushCall returned with the call's row being written")
	}
	w.inflight = nil // written; other rows keep the queue busy
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.flushCall(ctx, sid); err != nil {
		t.Fatalf("FlushCall with only other calls' rows queued: %v", err)
	}
	if err := w.flush(ctx); err == nil {
		t.Fatal("FlushCalls returned with rows queued")
	}
}

// A change applied to the snapshot leaves it as a full reload would, also
// when another writer changed the store in between.
func TestChangedMatchesReload(t *testing.T) {
	ctx := context.Background()
	p, _ := testPlane(t, Config{})
	if err := p.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	other := New(p.cfg, p.st, p.log) // another node, or the CLI
	same := func(step string) {
		t.Helper()
		fresh := New(p.cfg, p.st, p.log)
		if err := fresh.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		got, want := p.snap.Load(), fresh.snap.Load()
		if got.gen != want.gen || !sameRows(got.accounts, want.accounts) || !sameRows(got.numbers, want.numbers) || !sameRows(got.users, want.users) {
			t.Fatalf("%s: snapshot gen %d differs from a full reload (gen %d)", step, got.gen, want.gen)
		}
	}
	a := mustAccount(t, p, "a", AccountSpec{})
	same("create account")
	b := mustAccount(t, other, "b", AccountSpec{})
	n := mustNumber(t, p, a.SID, "+14155550100", "trunk:pbx")
	same("create number after another writer's account")
	if _, err := p.UpdateAccount(ctx, "cli", b.SID, AccountSpec{CPS: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	same("update account")
	if _, err := p.UpdateNumber(ctx, "cli", a.SID, n.SID, NumberSpec{VoiceTarget: ptr("trunk:other")}); err != nil {
		t.Fatal(err)
	}
	same("update number")
	u, err := p.CreateUser(ctx, "cli", a.SID, "alice", "Str0ng-Passw0rd!", "")
	if err != nil {
		t.Fatal(err)
	}
	same("create user")
	if _, err := p.UpdateUser(ctx, "cli", a.SID, u.SID, nil, ptr(DefaultClass)); err != nil {
		t.Fatal(err)
	}
	same("update user")
	if _, err := p.RotateToken(ctx, "cli", a.SID); err != nil {
		t.Fatal(err)
	}
	same("rotate token")
	if err := p.DeleteUser(ctx, "cli", a.SID, u.SID); err != nil {
		t.Fatal(err)
	}
	same("delete user")
	mustNumber(t, other, b.SID, "+14155550200", "")
	if err := p.DeleteNumber(ctx, "cli", a.SID, n.SID); err != nil {
		t.Fatal(err)
	}
	same("delete number after another writer's number")
	if p.snap.Load().numbers["+14155550200"] == nil {
		t.Fatal("the other writer's number is not in the snapshot")
	}
}

// sameRows compares two snapshot maps by value.
func sameRows[T any](a, b map[string]*T) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !reflect.DeepEqual(*v, *w) {
			return false
		}
	}
	return true
}

// After a backlog the queue's map is made anew once it empties (a Go map
// never gives its buckets back).
func TestCallLogShrinks(t *testing.T) {
	p, _ := testPlane(t, Config{})
	w := &callLog{st: p.st, log: p.log, pending: map[string]store.Call{}, wake: make(chan struct{}, 1)}
	for range shrinkAt + 1 {
		w.put(store.Call{SID: store.NewSID(store.PrefixCall), AccountSID: "AC1", Status: store.CallQueued, Created: time.Now()})
	}
	if !w.grown {
		t.Fatal("a backlog past shrinkAt not noticed")
	}
	before := w.pending
	for {
		n, err := w.writeBatch()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if n, _ := p.st.CountCalls(context.Background(), "AC1"); n != shrinkAt+1 || w.grown || reflect.ValueOf(w.pending).UnsafePointer() == reflect.ValueOf(before).UnsafePointer() {
		t.Fatalf("%d rows written, grown %v, same map %v", n, w.grown, reflect.ValueOf(w.pending).UnsafePointer() == reflect.ValueOf(before).UnsafePointer())
	}
}

// A device presents a number of its account, never another's.
func TestAdmitDeviceCallerID(t *testing.T) {
	p, _ := testPlane(t, Config{})
	ctx := context.Background()
	a := mustAccount(t, p, "a", AccountSpec{CPS: ptr(100)})
	b := mustAccount(t, p, "b", AccountSpec{CPS: ptr(100)})
	if _, err := p.CreateUser(ctx, "cli", a.SID, "alice", "Str0ng-Passw0rd!", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateUser(ctx, "cli", a.SID, "carol", "Str0ng-Passw0rd!", ""); err != nil {
		t.Fatal(err)
	}
	mustNumber(t, p, a.SID, "+14155550402", "user:alice")
	mustNumber(t, p, a.SID, "+14155550401", "user:alice")
	mustNumber(t, p, a.SID, "+14155550403", "trunk:pbx")
	mustNumber(t, p, b.SID, "+14155550500", "")
	// One account never points a number at another's phones.
	num, target := "+14155550501", "user:alice"
	var fe *FieldError
	if _, err := p.CreateNumber(ctx, "cli", b.SID, NumberSpec{PhoneNumber: &num, VoiceTarget: &target}); !errors.As(err, &fe) || fe.Field != "VoiceUrl" {
		t.Errorf("account b's number to account a's user: %v; want a VoiceUrl field error", err)
	}
	for _, tt := range []struct{ from, want string }{
		{"+14155550403", "+14155550403"}, // the account's, chosen by the device
		{"+14155550500", "+14155550401"}, // another account's: replaced
		{"alice", "+14155550401"},        // no number: the user's lowest
	} {
		d := p.AdmitCall(Attempt{User: "alice", From: tt.from, To: "+14155550100"})
		if !d.Admitted() || d.CallerID != tt.want {
			t.Errorf("from %s: %+v; want admitted presenting %s", tt.from, d, tt.want)
		}
		d.Release()
	}
	if d := p.AdmitCall(Attempt{User: "carol", From: "carol", To: "+14155550100"}); d.Code != 403 {
		t.Errorf("a user with no number: %+v; want 403", d)
	}
	// A number added later counts from the next call on.
	mustNumber(t, p, a.SID, "+14155550399", "user:alice")
	d := p.AdmitCall(Attempt{User: "alice", From: "alice", To: "+14155550100"})
	if d.CallerID != "+14155550399" {
		t.Errorf("after a lower number was added: %+v; want it presented", d)
	}
	d.Release()
}
