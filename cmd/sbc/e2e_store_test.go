package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/sbctest"
)

// apiDaemon starts the daemon with its REST API on a free loopback port
// and returns it, the API's base URL and the operator credential it wrote;
// change, if any, edits its config further.
func apiDaemon(t *testing.T, bin, dir string, change ...func(*sbctest.DaemonConfig)) (*e2eEnv, string, string, string) {
	t.Helper()
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		listen := "127.0.0.1:0"
		c.Control.DataDir, c.Control.API.Listen = dir, &listen
		c.LogLevel = "info"
		for _, f := range change {
			f(c)
		}
	}, false)
	l := e.sbc.waitN(t, 1, 5*time.Second, "api listening", func(l logLine) bool { return l.msg() == "api listening" })[0]
	cred, err := os.ReadFile(filepath.Join(dir, control.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, control.AdminTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-token mode %v; want 0600", fi.Mode().Perm())
	}
	sid, token, _ := strings.Cut(strings.TrimSpace(string(cred)), ":")
	return e, "https://" + l.str("address"), sid, token
}

// TestE2EStoreKill9 creates accounts through the API from several clients
// while `sbc backup` snapshots the store, kills the daemon with SIGKILL in
// the middle, and checks that every account the API acknowledged (201) is
// in the store afterwards, and that the backup is a whole store.
func TestE2EStoreKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	e, base, admin, token := apiDaemon(t, bin, dir)
	// The daemon made its certificate itself: trust no other.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", base+"/2010-04-01/Accounts.json", strings.NewReader(url.Values{"FriendlyName": {fmt.Sprintf("w%d-%d", w, i)}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(admin, token)
				res, err := client.Do(req)
				if err != nil {
					return // the daemon is gone
				}
				var sid string
				if res.StatusCode == 201 {
					var b bytes.Buffer
					b.ReadFrom(res.Body)
					if j := strings.Index(b.String(), `"sid":"`); j >= 0 {
						sid = b.String()[j+7 : j+7+34]
					}
				}
				res.Body.Close()
				if sid != "" {
					mu.Lock()
					acked = append(acked, sid)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Second)
	backup := filepath.Join(t.TempDir(), "backup.db")
	cfgPath := filepath.Join(t.TempDir(), "sbc.toml")
	os.WriteFile(cfgPath, []byte(e.cfg.TOML()), 0o644)
	if out, err := exec.Command(bin, "backup", "-config", cfgPath, "-out", backup).CombinedOutput(); err != nil {
		t.Fatalf("sbc backup under load: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	e.sbc.cmd.Process.Kill()
	<-e.sbc.done
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d accounts acknowledged before the kill: no load", len(acked))
	}

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "sbc.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lost := 0
	for _, sid := range acked {
		if _, err := st.Account(ctx, sid); err != nil {
			lost++
		}
	}
	all, _ := st.Accounts(ctx)
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged accounts lost by kill -9", lost, len(acked))
	}
	t.Logf("%d accounts acknowledged, all there after kill -9 (%d in the store)", len(acked), len(all))

	b, err := store.Open(ctx, backup)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer b.Close()
	bAll, err := b.Accounts(ctx)
	if err != nil || len(bAll) == 0 || len(bAll) > len(all) {
		t.Fatalf("backup has %d accounts (%v); want some, at most the %d now", len(bAll), err, len(all))
	}
	if fi, _ := os.Stat(backup); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v; want 0600", fi.Mode().Perm())
	}
	// Every account's audit row is in the backup too: one transaction each.
	audit, _ := b.ListAudit(ctx, store.AuditFilter{}, store.Page{Size: 100000})
	creates := 0
	for _, a := range audit {
		if a.Action == "account.create" {
			creates++
		}
	}
	if creates != len(bAll) {
		t.Errorf("backup: %d accounts but %d account.create audit rows: not one point in time", len(bAll), creates)
	}
}

// TestE2ECLI drives the control-plane commands against the store of a
// running daemon, which admits calls by what they wrote.
func TestE2ECLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	e, _, _, _ := apiDaemon(t, bin, dir)
	cfgPath := filepath.Join(t.TempDir(), "sbc.toml")
	os.WriteFile(cfgPath, []byte(e.cfg.TOML()), 0o644)
	run := func(stdin string, args ...string) (string, int) {
		// The command and subcommand, -config, then the rest.
		n := 2
		if args[0] == "backup" || args[0] == "admin-token" {
			n = 1
		}
		full := append(append(append([]string{}, args[:n]...), "-config", cfgPath), args[n:]...)
		cmd := exec.Command(bin, full...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	out, code := run("", "account", "create", "-name", "Acme", "-cps", "3")
	if code != 0 || !strings.Contains(out, "auth_token") {
		t.Fatalf("account create: %d %s", code, out)
	}
	sid := strings.Fields(out)[1]
	if out, code := run("", "account", "list"); code != 0 || !strings.Contains(out, sid) || !strings.Contains(out, "Acme") {
		t.Fatalf("account list: %d %s", code, out)
	}
	if out, code := run("weak\n", "user", "add", "-account", sid, "-username", "alice"); code != exitConfig || !strings.Contains(out, "Password") {
		t.Fatalf("weak password: %d %s", code, out)
	}
	if out, code := run("Str0ng-Passw0rd!\n", "user", "add", "-account", sid, "-username", "alice"); code != 0 || !strings.Contains(out, "user_sid CL") {
		t.Fatalf("user add: %d %s", code, out)
	}
	if out, code := run("", "number", "add", "-account", sid, "-number", "+14155550100", "-target", "trunk:b"); code != 0 || !strings.Contains(out, "PN") {
		t.Fatalf("number add: %d %s", code, out)
	}
	// The running daemon routes the number to trunk b within a second.
	time.Sleep(1500 * time.Millisecond)
	e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_basic.xml", extra: []string{"-s", "+14155550100"}})
	uac.expectSuccess(t)
	ended := e.sbc.callsEnded(t, 1)[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, code = run("", "calls", "list", "-account", sid)
		if code == 0 && strings.Contains(out, ended.str("call_id")) && strings.Contains(out, "completed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls list: %d %s; want call %s completed", code, out, ended.str("call_id"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, code := run("", "account", "suspend", sid); code != 0 || !strings.Contains(out, "suspended") {
		t.Fatalf("account suspend: %d %s", code, out)
	}
	if out, code := run("", "account", "suspend", "ACnope"); code != exitConfig {
		t.Fatalf("suspend a bad SID: %d %s", code, out)
	}
	if out, code := run("", "admin-token"); code != 0 || !strings.Contains(out, "admin_token") {
		t.Fatalf("admin-token: %d %s", code, out)
	}
	e.stop(t, 1)
}

// storePlane opens the control store in dir (the daemon, started on dir
// later, serves what a test makes in it) and a control plane over it, for
// the test's set-up; closed at the test's end. Webhook URLs on loopback
// are admitted (the tests' receivers).
func storePlane(t *testing.T, dir string) (*control.Plane, *store.Store) {
	t.Helper()
	cfg := control.Config{DataDir: dir, Webhooks: control.WebhookConfig{AllowHTTP: true, AllowPrivateNetworks: true}}
	cfg.SetDefaults()
	st, err := store.Open(context.Background(), cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return control.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil))), st
}
