//go:build linux

package ladder

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The ladder's sipp scenarios, in testdata/sipp, and the files each sipp
// run writes into its step's directory.
const (
	uacScenario = "uac_ladder.xml"
	uasScenario = "uas_ladder.xml"
	uacStats    = "uac-stats.csv"
	uasStats    = "uas-stats.csv"
	uasMessages = "uas-messages.log"
	// sipp names its response-time file after the scenario and its pid,
	// in its working directory.
	uacRTTGlob = "uac_ladder_*_rtt.csv"
)

// sippRecvTimeout fails a call whose next message does not come within it.
const sippRecvTimeout = 10 * time.Second

// sippCall is what both sipp ends of a step share.
type sippCall struct {
	scenario  string
	local     netip.AddrPort // -i, -p: its SIP socket, also the source of what it sends
	mediaPort int            // -mp: bound, never used (no RTP)
	calls     int            // -m
	dir       string         // its statistics and traces
	stats     string         // statistics file name in dir
	timeout   time.Duration  // sipp's own -timeout: the run ends there
}

// sippBufferSize is the send and receive buffer sipp asks for.
const sippBufferSize = 4 << 20

func (s sippCall) args() []string {
	return []string{
		"-sf", s.scenario,
		"-i", s.local.Addr().String(), "-p", strconv.Itoa(int(s.local.Port())), "-bind_local",
		"-mi", s.local.Addr().String(), "-mp", strconv.Itoa(s.mediaPort),
		"-m", strconv.Itoa(s.calls),
		"-nostdin",
		"-timeout", fmt.Sprintf("%dms", s.timeout.Milliseconds()),
		"-recv_timeout", fmt.Sprintf("%dms", sippRecvTimeout.Milliseconds()),
		"-trace_stat", "-stf", filepath.Join(s.dir, s.stats), "-fd", "1",
		// Unexpected messages only: what explains a failed call.
		"-trace_err", "-error_file", filepath.Join(s.dir, strings.TrimSuffix(s.stats, "stats.csv")+"errors.log"),
		// A busy machine must not make sipp abort on its own watchdog.
		"-watchdog_minor_threshold", "2000", "-watchdog_major_threshold", "10000",
		// sipp's default socket buffers (64 KiB) drop a burst the moment its
		// single thread is not scheduled, and each drop is a retransmission
		// charged to the system under test (the kernel caps this at
		// net.core.rmem_max / wmem_max).
		"-buff_size", strconv.Itoa(sippBufferSize),
	}
}

// uasCommand is the callee: it answers every INVITE with SDP. trace keeps
// every message it gets (the probe call reads the offer from it).
func uasCommand(s sippCall, trace bool) *exec.Cmd {
	args := s.args()
	if trace {
		args = append(args, "-trace_msg", "-message_file", filepath.Join(s.dir, uasMessages))
	}
	cmd := exec.Command("sipp", args...)
	cmd.Dir = s.dir
	return cmd
}

// uacCommand is the caller: calls at rate calls/s to target, each up for
// callDuration once answered, with every setup time in its RTT file.
func uacCommand(s sippCall, target netip.AddrPort, rate int, callDuration time.Duration) *exec.Cmd {
	args := append(s.args(),
		"-s", "15551234567",
		"-r", strconv.Itoa(rate), "-rp", "1000",
		"-d", strconv.FormatInt(callDuration.Milliseconds(), 10),
		// sipp slows down past -l calls open (default 3 × rate × call
		// duration): allow calls that wait out a whole receive timeout, so
		// that an overloaded system shows in failures and latency, not in a
		// lower rate.
		"-l", strconv.Itoa(max(rate*int((callDuration+sippRecvTimeout)/time.Second+1), 100)),
		"-trace_rtt", "-rtt_freq", strconv.Itoa(rttFreq(s.calls)),
		target.String(),
	)
	cmd := exec.Command("sipp", args...)
	cmd.Dir = s.dir
	return cmd
}

// rttFreq is how many setup times sipp buffers before writing them: the
// largest divisor of calls up to 100. sipp drops a last partial batch, so
// a divisor keeps every sample of a step where every call is answered.
func rttFreq(calls int) int {
	for f := min(calls, 100); f > 1; f-- {
		if calls%f == 0 {
			return f
		}
	}
	return 1
}
