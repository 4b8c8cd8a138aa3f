//go:build linux

package ladder

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// rtpengine is Debian's rtpengine daemon (package rtpengine-daemon) as the
// ladder runs it for Kamailio: userspace only, in the foreground, logging
// to stderr, its packaged config ignored. It logs each ng command it gets
// (the control subsystem at info) and little else (notice), so its log
// costs about what the sbc's per-call lines do.
type rtpengine struct {
	p      *proc
	ng     netip.AddrPort // ng control protocol, UDP
	offers atomic.Int64   // "Received command 'offer'" lines
}

// startRTPEngine starts rtpengine with media on ip, ports lo..hi, and its
// ng listener on a free port of ip; it returns once that is bound. Its
// output goes to logPath too, when set.
func startRTPEngine(ctx context.Context, ip netip.Addr, lo, hi int, dir, logPath string) (*rtpengine, error) {
	port, err := freeUDPPort(ip)
	if err != nil {
		return nil, err
	}
	r := &rtpengine{ng: netip.AddrPortFrom(ip, uint16(port))}
	cmd := exec.Command("rtpengine",
		"--config-file=none", // not /etc/rtpengine/rtpengine.conf
		"--table=-1",         // no kernel forwarding
		"--foreground", "--log-stderr",
		"--log-level=5", "--log-level-control=6",
		"--interface="+ip.String(),
		"--listen-ng="+r.ng.String(),
		"--port-min="+strconv.Itoa(lo), "--port-max="+strconv.Itoa(hi),
		"--num-threads=2",
		// Ports back at once on delete, as the sbc does (default: 30 s later).
		"--delete-delay=0",
		"--pidfile="+filepath.Join(dir, "rtpengine.pid"),
	)
	r.p, err = startProc("rtpengine", cmd, func(line string) {
		if strings.Contains(line, "Received command 'offer'") {
			r.offers.Add(1)
		}
	}, logPath)
	if err != nil {
		return nil, fmt.Errorf("%w (Debian: apt-get install rtpengine-daemon)", err)
	}
	if err := waitBound(ctx, r.ng, 10*time.Second, r.p.done); err != nil {
		r.stop()
		return nil, fmt.Errorf("start rtpengine: %w%s", err, r.p.lastLines())
	}
	return r, nil
}

// stop ends rtpengine: SIGTERM, then SIGKILL after 5 s.
func (r *rtpengine) stop() error {
	early := exitedErr(r.p)
	if !r.p.stop(syscall.SIGTERM, 5*time.Second) && early == nil {
		return fmt.Errorf("rtpengine did not exit within 5s of SIGTERM: killed%s", r.p.lastLines())
	}
	return early
}
