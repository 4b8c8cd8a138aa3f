//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// What the harness reads of a process from /proc (proc(5)), and of itself
// from getrusage(2).

// userHZ is the unit of the CPU times in /proc/PID/stat. It is the
// kernel's USER_HZ, which Linux fixes at 100 for userspace whatever CONFIG_HZ
// is, so a reading is good to 10 ms: over a 10 s media phase at 50 % CPU
// that is 0.2 %.
const userHZ = 100

// parseStat returns utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces or ')', so
// fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat: no ')' in %q", truncate(b, 80))
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("parse stat: %d fields after the command name; want > %d", len(f), stime)
	}
	u, err1 := strconv.ParseUint(string(f[utime]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[stime]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse stat: utime %q stime %q are not numbers", f[utime], f[stime])
	}
	return time.Duration(u+s) * time.Second / userHZ, nil
}

// parseRSS returns VmRSS in KiB from the text of /proc/PID/status.
func parseRSS(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("parse status: VmRSS line %q; want \"VmRSS: N kB\"", bytes.TrimSpace(line))
		}
		kib, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse status: VmRSS %q is not a number", f[0])
		}
		return kib, nil
	}
	return 0, fmt.Errorf("parse status: no VmRSS line (a kernel thread or a zombie?)")
}

// cpuTimes are the whole machine's CPU times from the first line of
// /proc/stat, in USER_HZ ticks summed over all CPUs.
type cpuTimes struct{ busy, idle, steal uint64 }

// parseCPUTimes reads the "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal ... Busy is user+nice+system+irq+softirq (guest
// time is already inside user); steal is time the hypervisor gave this
// machine's CPUs to someone else, which no process here sees but every
// latency does.
func parseCPUTimes(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return cpuTimes{}, fmt.Errorf("parse /proc/stat: first line %q; want \"cpu user nice system idle iowait irq softirq steal ...\"", truncate(line, 80))
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("parse /proc/stat: %q is not a number", f[i+1])
		}
		v[i] = n
	}
	return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}, nil
}

// machineCPU reads the machine's CPU times; zero when it cannot.
func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	t, _ := parseCPUTimes(b)
	return t
}

// busySeconds is the CPU time all CPUs were busy between two readings.
func (t cpuTimes) busySeconds(later cpuTimes) float64 {
	if later.busy < t.busy {
		return 0
	}
	return float64(later.busy-t.busy) / float64(userHZ)
}

// share is how the machine's CPUs were spent between two readings, in %
// of all of them.
func (t cpuTimes) share(later cpuTimes) (busy, idle, steal float64) {
	db, di, ds := later.busy-t.busy, later.idle-t.idle, later.steal-t.steal
	total := float64(db + di + ds)
	if total == 0 || later.busy < t.busy {
		return 0, 0, 0
	}
	return 100 * float64(db) / total, 100 * float64(di) / total, 100 * float64(ds) / total
}

// procCPU is the CPU time (user+system, all threads) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	return parseStat(b)
}

// procRSS is the resident set of process pid in KiB.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return parseRSS(b)
}

// selfCPU is the CPU time this process has used, to the microsecond.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
