package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sbc/sbc/sbctest"
)

// TestE2EStateDirLocked: a second daemon given the calls.state_dir of a
// running one refuses to start (it would take the first one's calls over)
// and says which directory, after waiting a moment for the first to exit.
func TestE2EStateDirLocked(t *testing.T) {
	bin := buildSBC(t)
	dir := t.TempDir()
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) { c.StateDir = dir }, false)

	cfg := e.cfg
	cfg.SIPPort = freeSIPPort(t, sbcIP)
	cfg.PortMin += 2
	if cfg.Control.DataDir == "" {
		cfg.Control.DataDir = dataDir(t, false)
	}
	path := filepath.Join(t.TempDir(), "sbc.toml")
	if err := os.WriteFile(path, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "-config", path)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFail {
		t.Fatalf("second daemon on the same state_dir: %v; want exit %d\n%s", err, exitFail, stderr.String())
	}
	for _, want := range []string{"calls.state_dir", dir, "in use by another sbc process"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("second daemon's log lacks %q:\n%s", want, stderr.String())
		}
	}
	// The first one is unharmed, and once it has stopped the directory is
	// free again.
	e.sbc.stop(t)
	f, err := lockDir(dir, 0)
	if err != nil {
		t.Fatalf("state_dir still locked after the daemon stopped: %v", err)
	}
	f.Close()
}
