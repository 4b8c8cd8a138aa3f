//go:build linux

package ladder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/freeport"
)

// sbcSystem is the sbc daemon, built (or given) and started with a config
// written for the run: trunk "uac" for the sipp caller, trunk "uas" for the
// sipp callee, one route between them, media anchored on its own address.
type sbcSystem struct {
	p     *proc
	sip   netip.AddrPort
	ip    netip.Addr
	ended atomic.Int64 // "call ended" lines in its log
}

func (*sbcSystem) name() string               { return SystemSBC }
func (s *sbcSystem) sipAddr() netip.AddrPort  { return s.sip }
func (s *sbcSystem) mediaIP() netip.Addr      { return s.ip }
func (s *sbcSystem) check() error             { return exitedErr(s.p) }
func (s *sbcSystem) counted() (int64, string) { return s.ended.Load(), "calls ended (sbc log)" }
func (s *sbcSystem) pgids() []int             { return []int{s.p.pid()} }

// countLine counts the daemon's "call ended" lines (JSON log).
func (s *sbcSystem) countLine(line string) {
	if strings.Contains(line, `"msg":"call ended"`) {
		s.ended.Add(1)
	}
}

// buildSBC compiles the daemon into dir. The import path works from
// anywhere inside the module.
func buildSBC(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sbc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build sbc: %w", err)
	}
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "sbc/cmd/sbc").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build sbc (run from inside the sbc module, or pass the binary): go build: %w\n%s", err, out)
	}
	return bin, nil
}

func sbcConfig(e env, sipPort int, account string) string {
	// No calls.max_active: only the media range limits the calls up.
	return sbctest.DaemonConfig{
		LogLevel:  "info",
		UserAgent: "sbc-bench-ladder",
		IP:        e.ip,
		SIPPort:   sipPort,
		PortMin:   e.portMin,
		PortMax:   e.portMax,
		// The ladder sends no RTP: far beyond any call.
		MediaTimeout: time.Hour,
		RingTimeout:  60 * time.Second,
		DrainTimeout: 2 * time.Second,
		// The caller's trunk is a customer's: every call passes the
		// control plane's admission and writes its call log.
		Caller: sbctest.Trunk{Name: "uac", Addr: e.uac, Account: account},
		Callee: sbctest.Trunk{Name: "uas", Addr: e.uas},
		// The control plane's store in the run's directory.
		Control: control.Config{DataDir: filepath.Join(e.dir, "control")},
	}.TOML()
}

func (s *sbcSystem) start(ctx context.Context, e env) error {
	// The daemon refuses a SIP port inside its media range.
	port, err := freeport.UDPOutside(e.ip, e.portMin, e.portMax)
	if err != nil {
		return err
	}
	account, err := ladderAccount(ctx, filepath.Join(e.dir, "control"))
	if err != nil {
		return err
	}
	path := filepath.Join(e.dir, "sbc.toml")
	if err := os.WriteFile(path, []byte(sbcConfig(e, port, account)), 0o644); err != nil {
		return fmt.Errorf("write sbc config: %w", err)
	}
	s.ip, s.sip = e.ip, netip.AddrPortFrom(e.ip, uint16(port))
	s.p, err = startProc("sbc", exec.Command(e.sbcBin, "run", "-config", path), s.countLine, e.logPath("sbc.log"))
	if err != nil {
		return err
	}
	if err := waitBound(ctx, s.sip, 10*time.Second, s.p.done); err != nil {
		return fmt.Errorf("start sbc: %w%s", err, s.p.lastLines())
	}
	return nil
}

// ladderAccount makes, in the control plane's store in dir, the account
// the ladder's calls run under, with limits no ladder reaches.
func ladderAccount(ctx context.Context, dir string) (string, error) {
	cfg := control.Config{DataDir: dir}
	off := ""
	cfg.API.Listen = &off
	cfg.SetDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	st, err := store.Open(ctx, cfg.StorePath())
	if err != nil {
		return "", fmt.Errorf("ladder account: %w", err)
	}
	defer st.Close()
	p := control.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	name, cps, max := "sbc-bench ladder", 10000, 1_000_000
	a, _, err := p.CreateAccount(ctx, "sbc-bench", control.AccountSpec{Name: &name, CPS: &cps, MaxConcurrent: &max})
	if err != nil {
		return "", fmt.Errorf("ladder account: %w", err)
	}
	return a.SID, nil
}

// sbcStopWait is how long stop waits after SIGTERM: the drain (2 s), then
// the BYEs to calls still up, which wait up to 5 s for an answer (a failed
// step can leave calls up towards a callee sipp that has gone), and slack.
const sbcStopWait = 10 * time.Second

// stop sends SIGTERM: the daemon drains and exits 0.
func (s *sbcSystem) stop() error {
	if s.p == nil {
		return nil
	}
	early := exitedErr(s.p)
	clean := s.p.stop(syscall.SIGTERM, sbcStopWait)
	_, waitErr := s.p.exited()
	switch {
	case early != nil:
		return early
	case !clean:
		return fmt.Errorf("sbc did not exit within %v of SIGTERM: killed%s", sbcStopWait, s.p.lastLines())
	case waitErr != nil:
		return fmt.Errorf("sbc after SIGTERM: %v%s", waitErr, s.p.lastLines())
	}
	return nil
}
