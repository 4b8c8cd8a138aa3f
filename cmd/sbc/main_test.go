package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	ref, err := os.ReadFile("../../sbc.toml")
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, ref, 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(string(ref), `latching = "symmetric"`, `latching = "sometimes"`, 1)), 0o644)
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, append(ref, []byte("\n[media2]\nx = 1\n")...), 0o644)

	tests := []struct {
		name        string
		args        []string
		code        int
		out, errOut string
	}{
		{"version", []string{"version"}, exitOK, "sbc ", ""},
		{"check good config", []string{"check-config", "-config", good}, exitOK, "ok", ""},
		{"check bad value", []string{"check-config", "-config", bad}, exitConfig, "", `media.latching: "sometimes"`},
		{"check unknown key", []string{"check-config", "-config", unknown}, exitConfig, "", "media2"},
		{"check missing file", []string{"check-config", "-config", filepath.Join(dir, "nope.toml")}, exitConfig, "", "nope.toml"},
		{"unknown command", []string{"frobnicate"}, exitConfig, "", `unknown command "frobnicate"`},
		{"stray argument", []string{"run", "extra"}, exitConfig, "", `unexpected argument "extra"`},
		{"bad flag", []string{"-nope"}, exitConfig, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.code {
				t.Errorf("exit code %d; want %d (stderr: %s)", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.errOut) {
				t.Errorf("stdout %q, stderr %q; want them to contain %q and %q", out.String(), errOut.String(), tt.out, tt.errOut)
			}
		})
	}
}

// A bad config must stop the daemon before it opens any socket: run with a
// config whose SIP port is held by the test, and check the error is the
// config's, not the bind's.
func TestRunBadConfigOpensNothing(t *testing.T) {
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ref, _ := os.ReadFile("../../sbc.toml")
	doc := strings.Replace(string(ref), `address = "0.0.0.0:5060"`, `address = "`+l.LocalAddr().String()+`"`, 1)
	doc = strings.Replace(doc, `port_min = 20000`, `port_min = 20001`, 1)
	// Below the ephemeral ports, where the held SIP port is.
	doc = strings.Replace(doc, `port_max = 59999`, `port_max = 29999`, 1)
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(doc), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "-config", path}, &out, &errOut); code != exitConfig {
		t.Fatalf("exit code %d; want %d", code, exitConfig)
	}
	if !strings.Contains(errOut.String(), "media.port_min: 20001") || strings.Contains(errOut.String(), "listen") {
		t.Fatalf("stderr %q; want only the config error", errOut.String())
	}
}
