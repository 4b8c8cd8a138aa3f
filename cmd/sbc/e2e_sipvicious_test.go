//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sbc/sbc"
	"sbc/sbc/sbctest"
)

// Loopback addresses of the scanners, one each: a ban of one does not
// hide the next one's behaviour.
const (
	svmapIP    = "127.0.0.71"
	svwarIP    = "127.0.0.72"
	svcrackIP  = "127.0.0.73"
	svwarBare  = "127.0.0.74" // svwar against a daemon that does not drop scanners
	svcrackBar = "127.0.0.75"
)

// sipvicious runs one of SIPVicious' tools (Debian's sipvicious 0.3.3)
// from bind. Its svwar and svcrack take -b but do not pass it on to their
// socket (they send from the address the kernel picks: here the SBC's
// own, which is never banned), so the tool's own code runs with the
// binding address put back.
func sipvicious(t *testing.T, dir, tool, bind string, args ...string) string {
	t.Helper()
	class := map[string]string{"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}[tool]
	script := `import sys
sys.path.insert(0, "/usr/share/sipvicious")
from sipvicious import ` + tool + ` as m
bind = sys.argv[1]
orig = m.` + class + `.__init__
def init(self, *a, **k):
    k["bindingip"] = bind
    orig(self, *a, **k)
m.` + class + `.__init__ = init
sys.argv = ["` + tool + `"] + sys.argv[2:]
sys.exit(m.main())
`
	cmd := exec.Command("python3", append([]string{"-c", script, bind}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("%s from %s %s: %v\n%s", tool, bind, strings.Join(args, " "), err, out)
	return string(out)
}

// TestE2ESipvicious runs SIPVicious (Debian's sipvicious: svmap, svwar,
// svcrack) against the daemon, which has a real user (alice). With its
// scanner User-Agent dropped (the default): svmap finds no SIP device,
// svwar no extension (its requests get no answer). With scanner
// detection off: svwar tells no user from another (alice, who exists,
// answers as a name that does not), and svcrack is banned after
// sip.ban_threshold wrong passwords, before it tries the right one.
func TestE2ESipvicious(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests: skipped in -short mode")
	}
	for _, tool := range []string{"svmap", "svwar", "svcrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not in PATH (Debian: apt-get install sipvicious)", tool)
		}
	}
	bin := buildSBC(t)
	work := t.TempDir()
	users := filepath.Join(work, "users.txt")
	os.WriteFile(users, []byte("alice\nmallory\nbob\ncarol\ndave\nerin\nfrank\n"), 0o644)
	words := filepath.Join(work, "passwords.txt")
	var pw strings.Builder
	for i := range 30 {
		fmt.Fprintf(&pw, "guess%d\n", i)
	}
	pw.WriteString("Str0ng-Passw0rd!\n") // found, were it not for the ban
	os.WriteFile(words, []byte(pw.String()), 0o644)
	// daemon starts one with a store holding user alice.
	daemon := func(t *testing.T, scanners []string) (*e2eEnv, string) {
		t.Helper()
		dir := dataDir(t, false)
		deviceAccount(t, dir, "alice", "Str0ng-Passw0rd!", "+14155550600")
		e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
			c.Control.DataDir = dir
			c.LogLevel = "info"
			c.BanThreshold, c.BanTime = 5, time.Minute
			c.Edit = func(cfg *sbc.Config) {
				cfg.SIP.Scanners = scanners
				// SIPVicious answers MD5 challenges only, and fails on others.
				cfg.SIP.Registrar.Digest = []string{"MD5"}
			}
		}, false)
		return e, fmt.Sprint(e.cfg.SIPPort)
	}
	banned := func(t *testing.T, e *e2eEnv, ip string) logLine {
		t.Helper()
		return e.sbc.waitN(t, 1, 5*time.Second, ip+" banned", func(l logLine) bool {
			return strings.HasPrefix(l.msg(), "source banned") && l.str("source") == ip+"/32"
		})[0]
	}

	t.Run("scanners_dropped", func(t *testing.T) {
		e, port := daemon(t, nil)                                                   // the default list
		cmd := exec.Command("svmap", "-b", svmapIP, "-p", port, "-t", "0.2", sbcIP) // its -b works
		cmd.Dir = work
		b, _ := cmd.CombinedOutput()
		out := string(b)
		t.Logf("svmap: %s", out)
		if strings.Contains(out, sbcIP+":"+port) {
			t.Errorf("svmap found the SBC:\n%s", out)
		}
		dropped := e.sbc.waitN(t, 1, 5*time.Second, "scanner dropped", func(l logLine) bool {
			return l.msg() == "scanner dropped" && strings.HasPrefix(l.str("source"), svmapIP+":")
		})[0]
		if !strings.Contains(strings.ToLower(dropped.str("user_agent")), "friendly-scanner") {
			t.Errorf("dropped %v", dropped)
		}
		out = sipvicious(t, work, "svwar", svwarIP, "-p", port, "-t", "0.1", "-d", users, "--force", sbcIP)
		if strings.Contains(out, "| alice") || !strings.Contains(out, "found nothing") {
			t.Errorf("svwar found something:\n%s", out)
		}
		e.sbc.waitN(t, 1, 5*time.Second, "svwar dropped", func(l logLine) bool {
			return l.msg() == "scanner dropped" && strings.HasPrefix(l.str("source"), svwarIP+":")
		})
	})

	t.Run("scanner_detection_off", func(t *testing.T) {
		e, port := daemon(t, []string{})
		out := sipvicious(t, work, "svwar", svwarBare, "-p", port, "-t", "0.1", "-d", users, "--force", sbcIP)
		// svwar first asks for a user that surely does not exist, and
		// reports the users answered otherwise: alice (who exists) gets
		// what any name gets, so svwar gives up ("will probably not work")
		// and finds nothing.
		if strings.Contains(out, "| alice") || !strings.Contains(out, "found nothing") {
			t.Errorf("svwar told alice from others:\n%s", out)
		}
		out = sipvicious(t, work, "svcrack", svcrackBar, "-p", port, "-t", "0.1", "-u", "alice", "-d", words, "--maximumtime", "4", sbcIP)
		if strings.Contains(out, "Str0ng-Passw0rd!") {
			t.Errorf("svcrack found the password:\n%s", out)
		}
		if n, _ := banned(t, e, svcrackBar).num("failures"); n != 5 {
			t.Errorf("svcrack's source banned after %v failures; want 5", n)
		}
		fails := e.sbc.find(func(l logLine) bool {
			return l.msg() == "authentication failed" && strings.HasPrefix(l.str("source"), svcrackBar+":")
		})
		if len(fails) == 0 || fails[0].str("username") != "alice" || fails[0].str("reason") != "wrong password" {
			t.Errorf("authentication failed lines: %v", fails)
		}
		for _, l := range e.sbc.find(func(logLine) bool { return true }) {
			if strings.Contains(l.String(), "guess") {
				t.Errorf("a password reached the log: %v", l)
			}
		}
	})
}
