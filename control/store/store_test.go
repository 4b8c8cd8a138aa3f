package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// engines runs f against a fresh SQLite store and a fresh PostgreSQL one.
func engines(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sbc.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := Open(context.Background(), postgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

func newAccount(t *testing.T, s *Store, name string) Account {
	t.Helper()
	a := Account{Name: name, Status: StatusActive, TokenHash: HashToken("secret-" + name), CPS: 1, SMSPerSecond: 1,
		MaxConcurrent: 10, Class: "default", Balance: 10 * Unit, LowBalance: 2 * Unit}
	if err := s.CreateAccount(context.Background(), "cli", &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMigrateTwice(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		v, err := s.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("schema version %d, %v", v, err)
		}
		if err := s.migrate(ctx); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		if v2, _ := s.SchemaVersion(ctx); v2 != v {
			t.Fatalf("version moved %d -> %d", v, v2)
		}
	})
}

// Nodes starting together on a new PostgreSQL database migrate it once.
func TestMigrateConcurrently(t *testing.T) {
	url := postgresURL(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent start: %v", err)
		}
	}
}

func TestClaimNode(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release, err := a.ClaimNode(ctx, "pop1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimNode(ctx, "pop1", 300*time.Millisecond); !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("second claim of pop1: %v; want ErrNodeInUse", err)
	}
	relB, err := b.ClaimNode(ctx, "pop2", 0)
	if err != nil {
		t.Fatalf("another node's name: %v", err)
	}
	relB()
	// A hand-over: the claim waits for the old daemon to let go.
	go func() { time.Sleep(200 * time.Millisecond); release() }()
	relB, err = b.ClaimNode(ctx, "pop1", 5*time.Second)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	relB()
}

func TestAccountsUsersNumbers(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		g0, _ := s.Generation(ctx)
		// SQL metacharacters go in and come out as text.
		evil := `Robert'); DROP TABLE accounts;-- "\ %_`
		a := newAccount(t, s, evil)
		if !ValidSID(PrefixAccount, a.SID) {
			t.Fatalf("sid %q", a.SID)
		}
		got, err := s.Account(ctx, a.SID)
		if err != nil || got.Name != evil || got.Balance != 10*Unit || !got.Created.Equal(a.Created) {
			t.Fatalf("Account = %+v, %v; want %+v", got, err, a)
		}
		if _, err := s.Account(ctx, NewSID(PrefixAccount)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
		up, err := s.UpdateAccount(ctx, "admin:AD1", a.SID, func(a *Account) error { a.Status = StatusSuspended; return nil })
		if err != nil || up.Status != StatusSuspended {
			t.Fatalf("suspend: %+v %v", up, err)
		}
		// A failing edit writes nothing.
		boom := errors.New("boom")
		if _, err := s.UpdateAccount(ctx, "cli", a.SID, func(a *Account) error { a.Name = "x"; return boom }); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _ := s.Account(ctx, a.SID); got.Name != evil {
			t.Fatalf("failed edit written: %q", got.Name)
		}
		// A check constraint guards the status.
		if _, err := s.UpdateAccount(ctx, "cli", a.SID, func(a *Account) error { a.Status = "bogus"; return nil }); err == nil {
			t.Fatal("status bogus accepted")
		}

		u := User{AccountSID: a.SID, Username: "alice", Realm: "sbc", HA1MD5: "ha1md5secret", HA1SHA256: "ha1sha256secret"}
		if err := s.CreateUser(ctx, "cli", &u); err != nil {
			t.Fatal(err)
		}
		dup := User{AccountSID: a.SID, Username: "alice"}
		if err := s.CreateUser(ctx, "cli", &dup); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		orphan := User{AccountSID: NewSID(PrefixAccount), Username: "bob"}
		if err := s.CreateUser(ctx, "cli", &orphan); !errors.Is(err, ErrNotFound) {
			t.Fatalf("user of unknown account: %v", err)
		}

		b := newAccount(t, s, "other")
		n := Number{AccountSID: a.SID, PhoneNumber: "+14155550100", Voice: true, VoiceTarget: "trunk:pbx"}
		if err := s.CreateNumber(ctx, "cli", &n); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateNumber(ctx, "cli", &Number{AccountSID: b.SID, PhoneNumber: "+14155550100"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate number: %v", err)
		}
		// Another account cannot see or change it.
		if _, err := s.Number(ctx, b.SID, n.SID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cross-account fetch: %v", err)
		}
		if _, err := s.UpdateNumber(ctx, "cli", b.SID, n.SID, func(*Number) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cross-account update: %v", err)
		}
		if err := s.DeleteNumber(ctx, "cli", b.SID, n.SID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cross-account delete: %v", err)
		}
		un, err := s.UpdateNumber(ctx, "cli", a.SID, n.SID, func(n *Number) error { n.SMS = true; n.PhoneNumber = "+1999"; return nil })
		if err != nil || !un.SMS || un.PhoneNumber != "+14155550100" {
			t.Fatalf("update number: %+v %v", un, err)
		}
		if g1, _ := s.Generation(ctx); g1 <= g0 {
			t.Fatalf("generation %d -> %d", g0, g1)
		}

		// The audit log has every change, and no secret.
		rows, err := s.ListAudit(ctx, AuditFilter{AccountSID: a.SID}, Page{Size: 100})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range rows {
			actions = append(actions, r.Action)
			for _, secret := range []string{u.HA1MD5, u.HA1SHA256, HashToken("secret-" + evil)} {
				if strings.Contains(r.Before+r.After, secret) {
					t.Errorf("audit %s carries a secret: %s %s", r.Action, r.Before, r.After)
				}
			}
		}
		want := "number.update number.create user.create account.update account.create"
		if strings.Join(actions, " ") != want {
			t.Fatalf("audit actions %q, want %q", actions, want)
		}
		if rows[3].Actor != "admin:AD1" || !strings.Contains(rows[3].Before, `"active"`) || !strings.Contains(rows[3].After, `"suspended"`) {
			t.Fatalf("suspend audit row %+v", rows[3])
		}
	})
}

func TestCallsPagingAndFilters(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b := newAccount(t, s, "a"), newAccount(t, s, "b")
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var calls []Call
		for i := range 25 {
			acct := a.SID
			if i%5 == 4 {
				acct = b.SID
			}
			c := Call{SID: NewSID(PrefixCall), AccountSID: acct, From: "+1555000" + fmt.Sprint(i%3), To: "+1415", Direction: DirectionOriginating,
				Status: CallRinging, Created: base.Add(time.Duration(i/2) * time.Second)} // pairs share a time: the SID orders them
			calls = append(calls, c)
		}
		if _, err := s.WriteCalls(ctx, calls); err != nil {
			t.Fatal(err)
		}
		// Move half to completed: the upsert updates, never duplicates.
		for i := range calls {
			if i%2 == 0 {
				calls[i].Status, calls[i].SIPCode = CallCompleted, 200
				calls[i].Answered = calls[i].Created.Add(time.Second)
				calls[i].Duration = 7
				calls[i].A = LegStats{Packets: 350, Lost: 1, JitterMs: 1.5, MOS: 4.3}
			}
		}
		if _, err := s.WriteCalls(ctx, calls); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.CountCalls(ctx, ""); n != 25 {
			t.Fatalf("%d rows, want 25", n)
		}
		c0, err := s.Call(ctx, calls[0].AccountSID, calls[0].SID)
		if err != nil || c0.Status != CallCompleted || c0.A != calls[0].A || !c0.Answered.Equal(calls[0].Answered) {
			t.Fatalf("Call = %+v %v", c0, err)
		}
		if _, err := s.Call(ctx, b.SID, calls[0].SID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another account's call: %v", err)
		}
		// Keyset paging over account a (20 calls) by 6 sees each once, newest first.
		seen := map[string]bool{}
		var p Page
		p.Size = 6
		var last time.Time
		for pages := 0; ; pages++ {
			got, err := s.ListCalls(ctx, CallFilter{AccountSID: a.SID}, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range got {
				if seen[c.SID] || c.AccountSID != a.SID {
					t.Fatalf("page %d: %s repeated or foreign", pages, c.SID)
				}
				if !last.IsZero() && c.Created.After(last) {
					t.Fatalf("not newest first")
				}
				seen[c.SID], last = true, c.Created
			}
			if len(got) < p.Size {
				break
			}
			p.AfterTime, p.AfterSID = got[len(got)-1].Created, got[len(got)-1].SID
		}
		if len(seen) != 20 {
			t.Fatalf("paged %d calls, want 20", len(seen))
		}
		off, _ := s.ListCalls(ctx, CallFilter{AccountSID: a.SID}, Page{Size: 6, Offset: 18})
		if len(off) != 2 {
			t.Fatalf("offset page has %d", len(off))
		}
		tests := []struct {
			f    CallFilter
			want int
		}{
			{CallFilter{Status: CallCompleted}, 13},
			{CallFilter{AccountSID: a.SID, Status: CallRinging}, 10},
			{CallFilter{From: "+15550001"}, 8},
			{CallFilter{To: "+1415"}, 25},
			{CallFilter{StartAfter: base.Add(5 * time.Second)}, 9},  // answered at 1..13 s
			{CallFilter{StartBefore: base.Add(5 * time.Second)}, 5}, // never answered: not matched
			{CallFilter{Status: "x' OR '1'='1"}, 0},
		}
		for _, tt := range tests {
			got, err := s.ListCalls(ctx, tt.f, Page{Size: 100})
			if err != nil || len(got) != tt.want {
				t.Errorf("filter %+v: %d rows, %v; want %d", tt.f, len(got), err, tt.want)
			}
		}
		// A late non-final row never undoes a final one.
		late := Call{SID: NewSID(PrefixCall), AccountSID: "ACx", Created: base}
		late.Status = CallBusy
		if _, err := s.WriteCalls(ctx, []Call{late}); err != nil {
			t.Fatal(err)
		}
		late.Status = CallInProgress
		if _, err := s.WriteCalls(ctx, []Call{late}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Call(ctx, "", late.SID); got.Status != CallBusy {
			t.Fatalf("final row overwritten: %s", got.Status)
		}
		late.Status = CallRinging
		if _, err := s.WriteCalls(ctx, []Call{late}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPurge(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := newAccount(t, s, "a")
		now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
		day := 24 * time.Hour
		var calls []Call
		for _, age := range []time.Duration{600 * day, 540*day + time.Hour, 500 * day, day} {
			calls = append(calls, Call{SID: NewSID(PrefixCall), AccountSID: a.SID, Status: CallCompleted, Created: now.Add(-age)})
		}
		if _, err := s.WriteCalls(ctx, calls); err != nil {
			t.Fatal(err)
		}
		msgs := map[string]time.Duration{}
		for _, age := range []time.Duration{200 * day, 100 * day, 31 * day, 29 * day} {
			m := Message{SID: NewSID(PrefixMessage), AccountSID: a.SID, Body: "hello", Status: "delivered", Created: now.Add(-age)}
			if err := s.WriteMessage(ctx, &m); err != nil {
				t.Fatal(err)
			}
			msgs[m.SID] = age
		}
		cut := func(now time.Time) Cutoffs {
			return Cutoffs{Calls: now.Add(-540 * day), Messages: now.Add(-180 * day), MessageBody: now.Add(-30 * day), Audit: now.Add(-540 * day)}
		}
		p, err := s.Purge(ctx, cut(now), 1) // batch 1: the loop must carry on
		if err != nil {
			t.Fatal(err)
		}
		if p.Calls != 2 || p.Messages != 1 || p.Bodies != 2 || p.Audit != 0 {
			t.Fatalf("purged %+v", p)
		}
		for sid, age := range msgs {
			m, err := s.Message(ctx, sid)
			switch {
			case age > 180*day:
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("message %v old kept", age)
				}
			case age > 30*day:
				if err != nil || m.Body != "" {
					t.Errorf("message %v old: body %q, %v", age, m.Body, err)
				}
			default:
				if err != nil || m.Body != "hello" {
					t.Errorf("message %v old: body %q, %v", age, m.Body, err)
				}
			}
		}
		// Audit rows are dated now (real clock): a purge far ahead takes them.
		p, err = s.Purge(ctx, cut(time.Now().Add(541*day)), 100)
		if err != nil || p.Audit == 0 {
			t.Fatalf("audit purge %+v %v", p, err)
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := newAccount(t, s, "a")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					n := Number{AccountSID: a.SID, PhoneNumber: fmt.Sprintf("+1202555%02d%02d", w, i)}
					if err := s.CreateNumber(ctx, "cli", &n); err != nil {
						errs <- err
						return
					}
					if _, err := s.UpdateAccount(ctx, "cli", a.SID, func(a *Account) error { a.Balance -= Unit / 100; return nil }); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, _ := s.Account(ctx, a.SID)
		if got.Balance != 10*Unit-160*(Unit/100) {
			t.Fatalf("balance %s after 160 concurrent debits of 0.01 from 10", got.Balance)
		}
		ns, _ := s.ListNumbers(ctx, NumberFilter{AccountSID: a.SID}, Page{Size: 1000})
		if len(ns) != 160 {
			t.Fatalf("%d numbers", len(ns))
		}
	})
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, filepath.Join(dir, "sbc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newAccount(t, s, "a")
	out := filepath.Join(dir, "backup.db")
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	if err := s.Backup(ctx, out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup %v, mode %v; want 0600 (it holds password hashes)", err, fi.Mode())
	}
	if err := s.Backup(ctx, out); err == nil {
		t.Fatal("backup over an existing file")
	}
	if err := s.Backup(ctx, filepath.Join(dir, "missing", "b.db")); err == nil {
		t.Fatal("backup into a missing directory")
	}
	b, err := Open(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.Account(ctx, a.SID); err != nil || got.Name != "a" {
		t.Fatalf("backup lacks the account: %v", err)
	}
}

func TestMoney(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Money
		out  string
	}{
		{"2", 2 * Unit, "2.00"}, {"2.5", 2500000, "2.50"}, {"-0.0075", -7500, "-0.0075"}, {"0.000001", 1, "0.000001"},
	} {
		m, err := ParseMoney(tt.in)
		if err != nil || m != tt.want || m.String() != tt.out {
			t.Errorf("ParseMoney(%q) = %d (%s), %v; want %d (%s)", tt.in, m, m, err, tt.want, tt.out)
		}
	}
	for _, bad := range []string{"", "1.0000001", "+1", "1e3", "abc", ".5", "1.2.3", "99999999999999"} {
		if _, err := ParseMoney(bad); err == nil {
			t.Errorf("ParseMoney(%q) accepted", bad)
		}
	}
}

func TestEndLive(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Second)
		live := Call{SID: NewSID(PrefixCall), Status: CallInProgress, Node: "n", Created: now, Answered: now}
		ended := Call{SID: NewSID(PrefixCall), Status: CallInProgress, Node: "n", Created: now, Answered: now}
		if _, err := s.WriteCalls(ctx, []Call{live, ended}); err != nil {
			t.Fatal(err)
		}
		rows, err := s.LiveCalls(ctx, "n")
		if err != nil || len(rows) != 2 {
			t.Fatalf("LiveCalls: %d %v", len(rows), err)
		}
		// One ends for real before the sweep writes.
		ended.Status, ended.EndedBy, ended.Ended = CallCompleted, "caller", now.Add(time.Minute)
		if _, err := s.WriteCalls(ctx, []Call{ended}); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			rows[i].Status, rows[i].EndedBy, rows[i].Ended = CallCompleted, "lost", now
		}
		n, err := s.EndLive(ctx, rows)
		if err != nil || n != 1 {
			t.Fatalf("EndLive = %d, %v; want only the live row", n, err)
		}
		if got, _ := s.Call(ctx, "", ended.SID); got.EndedBy != "caller" || !got.Ended.Equal(ended.Ended) {
			t.Fatalf("the real end was overwritten: %+v", got)
		}
		if got, _ := s.Call(ctx, "", live.SID); got.EndedBy != "lost" || got.Status != CallCompleted {
			t.Fatalf("the lost call: %+v", got)
		}
	})
}

func TestRegistrations(t *testing.T) {
	engines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		a := Registration{Username: "alice", Contact: "sip:alice@10.0.0.2", AccountSID: "AC1", Node: "n1", Transport: "tls",
			Source: "192.0.2.7:40000", Expires: now.Add(time.Minute), UserAgent: "baresip", CallID: "c1", CSeq: 4, Updated: now}
		b := a
		b.Contact, b.Expires = "sip:alice@10.0.0.3", now.Add(-time.Second) // expired
		if err := s.SaveRegistrations(ctx, []Registration{a, b}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Registrations(ctx, RegistrationFilter{Node: "n1"}, now)
		if err != nil || len(got) != 1 || got[0] != a {
			t.Fatalf("registrations %+v %v; want %+v", got, err, a)
		}
		a.CSeq, a.Source = 5, "192.0.2.7:40001" // refresh from a new NAT binding
		if err := s.SaveRegistrations(ctx, []Registration{a}, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Registrations(ctx, RegistrationFilter{AccountSID: "AC1"}, now); len(got) != 1 || got[0].Source != a.Source || got[0].CSeq != 5 {
			t.Fatalf("after refresh %+v", got)
		}
		if n, err := s.PurgeRegistrations(ctx, now); err != nil || n != 1 {
			t.Fatalf("purge: %d %v", n, err)
		}
		if err := s.SaveRegistrations(ctx, nil, []Registration{a}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Registrations(ctx, RegistrationFilter{}, now); len(got) != 0 {
			t.Fatalf("after removal %+v", got)
		}
	})
}
