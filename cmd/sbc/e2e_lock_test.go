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

// TestE2EStateDirLocked: a second daemon given the calls.state_dir or the
// control.data_dir of a running one refuses to start (it would take the
// first one's calls over, or end them in the call log as lost) and says
// which directory, after waiting a moment for the first to exit.
func TestE2EStateDirLocked(t *testing.T) {
	bin := buildSBC(t)
	for _, key := range []string{"calls.state_dir", "control.data_dir"} {
		t.Run(key, func(t *testing.T) {
			state, data := t.TempDir(), dataDir(t, false)
			e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) { c.StateDir, c.Control.DataDir = state, data }, false)
			cfg := e.cfg
			cfg.SIPPort = freeSIPPort(t, sbcIP)
			cfg.PortMin += 2
			dir := state
			if key == "calls.state_dir" {
				cfg.Control.DataDir = dataDir(t, false)
			} else {
				cfg.StateDir, dir = t.TempDir(), data
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
				t.Fatalf("second daemon on the same %s: %v; want exit %d\n%s", key, err, exitFail, stderr.String())
			}
			for _, want := range []string{key, dir, "in use by another sbc process"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("second daemon's log lacks %q:\n%s", want, stderr.String())
				}
			}
			// The first one is unharmed, and once it has stopped the
			// directory is free again.
			e.sbc.stop(t)
			f, err := lockDir(dir, 0)
			if err != nil {
				t.Fatalf("%s still locked after the daemon stopped: %v", key, err)
			}
			f.Close()
		})
	}
}
