//go:build linux

package ladder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"sbc/sbc/sbctest/freeport"
	"sbc/sbc/sbctest/rtpengine"
)

// kamailioSystem is Debian's Kamailio as a stateful proxy in front of the
// UAS, with the config in testdata/kamailio/kamailio.cfg; with media, it
// anchors every call in rtpengine (offer, answer, delete), which it starts
// first.
type kamailioSystem struct {
	media  bool
	p      *proc
	sip    netip.AddrPort
	rtp    *rtpengine.Proc
	rtpLog *os.File     // rtpengine's output, when kept
	offers atomic.Int64 // "Received command 'offer'" lines of rtpengine
}

// kamailioWrapper runs Kamailio ("$@") under sh: Kamailio's workers outlive
// its main process when that is killed, and PDEATHSIG reaches only the
// process the harness started. So that one is this shell, with PDEATHSIG
// SIGTERM: on SIGTERM (the harness died, or stops it) it ends Kamailio,
// which ends its workers, then kills whatever is left of the group, itself
// included; after 5 s it does so anyway.
const kamailioWrapper = `trap '(sleep 5; kill -KILL 0) & kill -TERM $k 2>/dev/null; wait $k; kill -KILL 0' TERM
"$@" &
k=$!
wait $k`

// Kamailio's memory: shared (transactions, which live on for tm's 5 s
// wait timer after a call's last reply) and per process.
const (
	kamailioSharedMB  = 512
	kamailioPrivateMB = 16
)

func (k *kamailioSystem) name() string {
	if k.media {
		return SystemKamailio
	}
	return SystemKamailioNoMedia
}

func (k *kamailioSystem) sipAddr() netip.AddrPort { return k.sip }

func (k *kamailioSystem) mediaIP() netip.Addr {
	if k.rtp == nil {
		return netip.Addr{}
	}
	return k.rtp.NGAddr().Addr()
}

func (k *kamailioSystem) pgids() []int {
	g := []int{k.p.pid()} // the main process and its workers
	if k.rtp != nil {
		g = append(g, k.rtp.Pid())
	}
	return g
}

func (k *kamailioSystem) counted() (int64, string) {
	if k.rtp == nil {
		return 0, ""
	}
	return k.offers.Load(), "ng offers (rtpengine log)"
}

func (k *kamailioSystem) check() error {
	if err := exitedErr(k.p); err != nil {
		return err
	}
	if k.rtp != nil {
		return k.rtp.Err()
	}
	return nil
}

// kamailioConfig is the template with the run's addresses defined after
// its first line, so that the file in the run's directory is complete:
// `kamailio -c -f` on it checks what ran.
func kamailioConfig(template []byte, listen netip.AddrPort, uas netip.AddrPort, ng netip.AddrPort, children int, media bool) string {
	first, rest, _ := strings.Cut(string(template), "\n")
	var b strings.Builder
	b.WriteString(first + "\n# Defines written by sbc-bench ladder.\n")
	if media {
		b.WriteString("#!define WITH_RTPENGINE\n")
	}
	fmt.Fprintf(&b, "#!define LISTEN udp:%s\n", listen)
	fmt.Fprintf(&b, "#!define UAS \"sip:%s\"\n", uas)
	if ng.IsValid() {
		fmt.Fprintf(&b, "#!define RTPENGINE_NG \"udp:%s\"\n", ng)
	}
	fmt.Fprintf(&b, "#!define CHILDREN %d\n", children)
	b.WriteString(rest)
	return b.String()
}

func (k *kamailioSystem) start(ctx context.Context, e env) error {
	template, err := os.ReadFile(filepath.Join(e.testdata, "kamailio", "kamailio.cfg"))
	if err != nil {
		return fmt.Errorf("kamailio config template: %w", err)
	}
	var ng netip.AddrPort
	if k.media {
		if err := k.startRTPEngine(ctx, e); err != nil {
			return err
		}
		ng = k.rtp.NGAddr()
	}
	port, err := freeport.UDP(e.ip)
	if err != nil {
		return err
	}
	k.sip = netip.AddrPortFrom(e.ip, uint16(port))
	cfg := filepath.Join(e.dir, "kamailio.cfg")
	if err := os.WriteFile(cfg, []byte(kamailioConfig(template, k.sip, e.uas, ng, e.children, k.media)), 0o644); err != nil {
		return fmt.Errorf("write kamailio config: %w", err)
	}
	run := filepath.Join(e.dir, "kamailio-run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fmt.Errorf("kamailio runtime dir: %w", err)
	}
	cmd := exec.Command("sh", "-c", kamailioWrapper, "kamailio-wrapper", "kamailio",
		"-DD", // the main process stays in the foreground, workers forked
		"-E",  // log to stderr
		"-f", cfg,
		"-m", strconv.Itoa(kamailioSharedMB), "-M", strconv.Itoa(kamailioPrivateMB),
		"-P", filepath.Join(run, "kamailio.pid"),
		"-Y", run,
		"-w", run,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // the wrapper's trap
	if k.p, err = startProc("kamailio", cmd, nil, e.logPath("kamailio.log")); err != nil {
		return fmt.Errorf("%w (Debian: apt-get install kamailio)", err)
	}
	if err := waitBound(ctx, k.sip, 10*time.Second, k.p.done); err != nil {
		return fmt.Errorf("start kamailio: %w%s", err, k.p.lastLines())
	}
	return nil
}

// startRTPEngine starts Debian's rtpengine (package rtpengine-daemon) for
// Kamailio: userspace only, media and ng listener on e.rtpengine. It logs
// each ng command it gets (the control subsystem at info) and little else
// (notice), so its log costs about what the sbc's per-call lines do.
func (k *kamailioSystem) startRTPEngine(ctx context.Context, e env) error {
	cfg := rtpengine.Config{
		IP:              e.rtpengine,
		PortMin:         e.portMin,
		PortMax:         e.portMax,
		Threads:         2,
		LogLevel:        5, // notice
		ControlLogLevel: 6, // info
		OnLine: func(line string) {
			if strings.Contains(line, "Received command 'offer'") {
				k.offers.Add(1)
			}
		},
		// Its command line names the run's directory, as Kamailio's does:
		// what a run left behind is found by it.
		PIDFile:  filepath.Join(e.dir, "rtpengine.pid"),
		OwnGroup: true, // its pid is a process group for groupCPU
	}
	if path := e.logPath("rtpengine.log"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("start rtpengine: %w", err)
		}
		k.rtpLog, cfg.Log = f, f
	}
	var err error
	k.rtp, err = rtpengine.Start(ctx, cfg)
	return err
}

// stop ends Kamailio (SIGTERM: its main process ends its workers), then
// rtpengine; whatever is left of Kamailio's process group, and rtpengine
// should it not exit within 5 s, is killed.
func (k *kamailioSystem) stop() error {
	var errs []error
	if k.p != nil {
		early := exitedErr(k.p)
		if !k.p.stop(syscall.SIGTERM, 5*time.Second) && early == nil {
			errs = append(errs, fmt.Errorf("kamailio did not exit within 5s of SIGTERM: killed%s", k.p.lastLines()))
		}
		errs = append(errs, early)
	}
	if k.rtp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, k.rtp.Stop(ctx))
		cancel()
		k.rtp = nil
	}
	if k.rtpLog != nil {
		errs = append(errs, k.rtpLog.Close())
		k.rtpLog = nil
	}
	return errors.Join(errs...)
}
