//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sbc/sbc"
	"sbc/sbc/sbctest"
)

// TestE2ETestssl runs testssl.sh (Debian's testssl.sh) against the SIP
// TLS listener and the REST API: TLS 1.2 and 1.3 offered, SSLv2, SSLv3,
// TLS 1.0 and 1.1 not; no NULL, anonymous, export, low, 3DES/IDEA or CBC
// ("average") cipher, only strong ones; forward secrecy. Both at once:
// testssl spends its ~25 s waiting on openssl.
func TestE2ETestssl(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests: skipped in -short mode")
	}
	bin := buildSBC(t)
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		api := "127.0.0.1:0"
		c.Control.API.Listen = &api
		c.LogLevel = "info"
		c.Edit = func(cfg *sbc.Config) {
			cfg.SIP.Listen = append(cfg.SIP.Listen, sbc.Listener{Transport: "tls", Address: sbcIP + ":0"})
		}
	}, false)
	sipTLS := e.sbc.waitN(t, 1, 5*time.Second, "tls listening", func(l logLine) bool {
		return l.msg() == "listening" && l.str("transport") == "tls"
	})[0].str("address")
	api := e.sbc.waitN(t, 1, 5*time.Second, "api listening", func(l logLine) bool { return l.msg() == "api listening" })[0].str("address")
	for _, target := range []struct{ name, addr string }{{"sip_tls", sipTLS}, {"api", api}} {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			findings := testssl(t, target.addr)
			want := map[string]string{
				"SSLv2": "not offered", "SSLv3": "not offered", "TLS1": "not offered", "TLS1_1": "not offered",
				"TLS1_2": "offered", "TLS1_3": "offered",
				"cipherlist_NULL": "not offered", "cipherlist_aNULL": "not offered", "cipherlist_EXPORT": "not offered",
				"cipherlist_LOW": "not offered", "cipherlist_3DES_IDEA": "not offered", "cipherlist_AVERAGE": "not offered",
				"cipherlist_STRONG": "offered", "PFS": "offered",
			}
			for id, w := range want {
				got, ok := findings[id]
				if !ok {
					t.Errorf("testssl reported nothing for %s", id)
					continue
				}
				if !strings.HasPrefix(got, w) {
					t.Errorf("%s: %q; want %q", id, got, w)
				}
			}
		})
	}
}

// testssl runs testssl.sh's protocol, cipher category and forward
// secrecy checks against addr and returns its findings by id.
func testssl(t *testing.T, addr string) map[string]string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "testssl.json")
	cmd := exec.Command("testssl", "--quiet", "--color", "0", "--warnings", "off", "--fast",
		"--protocols", "--std", "--fs", "--jsonfile", out, addr)
	cmd.Env = append(os.Environ(), "TERM=dumb")
	if b, err := cmd.CombinedOutput(); err != nil {
		// testssl's exit status counts findings; the JSON file is what counts.
		t.Logf("testssl %s: %v\n%s", addr, err, lastLines(string(b), 20))
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("testssl wrote no report: %v", err)
	}
	var rows []struct{ ID, Finding string }
	if err := json.Unmarshal(raw, &rows); err != nil {
		t.Fatalf("testssl report: %v", err)
	}
	m := map[string]string{}
	for _, r := range rows {
		m[r.ID] = r.Finding
	}
	return m
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
