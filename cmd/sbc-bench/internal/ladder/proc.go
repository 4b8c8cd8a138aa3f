//go:build linux

package ladder

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process in a process group of its own, so that it and
// everything it forks (Kamailio's workers) can be measured and killed as
// one. Should the harness die, the kernel signals the leader (PDEATHSIG);
// what the leader forked is the leader's to end (see kamailioWrapper).
// Its stdout and stderr are read line by line: to onLine, and the last
// lines are kept for error messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the leader exited and was reaped
	read chan struct{} // closed once its output reached EOF
	out  *os.File      // read end of the output pipe
	log  *os.File      // every output line, when set

	stopOnce sync.Once
	clean    bool // the leader exited within stop's grace

	mu      sync.Mutex
	waitErr error
	tail    []string
}

const tailLines = 12

// startProc starts cmd in its own process group, with PDEATHSIG SIGKILL
// unless cmd sets another. onLine, when set, gets every output line, from
// one goroutine; logPath, when set, every line too.
func startProc(name string, cmd *exec.Cmd, onLine func(string), logPath string) (*proc, error) {
	var log *os.File
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		log = f
	}
	r, w, err := os.Pipe()
	if err != nil {
		if log != nil {
			log.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		if log != nil {
			log.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	w.Close() // the children hold the write end; EOF once they all exit
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), read: make(chan struct{}), out: r, log: log}
	go p.readLines(onLine)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) readLines(onLine func(string)) {
	defer close(p.read)
	if p.log != nil {
		defer p.log.Close()
	}
	sc := bufio.NewScanner(p.out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if onLine != nil {
			onLine(line)
		}
		if p.log != nil {
			fmt.Fprintln(p.log, line)
		}
		p.mu.Lock()
		if len(line) > 300 {
			line = line[:300]
		}
		p.tail = append(p.tail, line)
		if len(p.tail) > 2*tailLines {
			p.tail = append(p.tail[:0], p.tail[len(p.tail)-tailLines:]...)
		}
		p.mu.Unlock()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited tells whether the leader has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

// lastLines is the end of the process's output, for an error message.
func (p *proc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tail
	if len(t) > tailLines {
		t = t[len(t)-tailLines:]
	}
	if len(t) == 0 {
		return ""
	}
	return "; its last output:\n  " + strings.Join(t, "\n  ")
}

// stop sends sig to the process group, waits up to grace for the leader to
// exit, then kills whatever is left of the group and waits for the output
// to close. It reports whether the leader exited within grace. Only the
// first call acts: the group's id may be reused once it is empty.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	p.stopOnce.Do(func() { p.clean = p.end(sig, grace) })
	return p.clean
}

func (p *proc) end(sig syscall.Signal, grace time.Duration) bool {
	clean := true
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.pid(), sig)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
			clean = false
		}
		t.Stop()
	}
	// The leader's workers may outlive it: the group goes, whatever is in it.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
	select {
	case <-p.read:
	case <-time.After(2 * time.Second):
		// Something outside the group holds the pipe: stop reading anyway.
		p.out.Close()
		<-p.read
	}
	p.out.Close()
	return clean
}

// groupCPU is the CPU time (user+system, all threads) that the processes
// now in the given process groups have used. A process that exited is not
// counted: the ladder measures long-running daemons.
func groupCPU(pgids []int) (time.Duration, error) {
	want := make(map[int]bool, len(pgids))
	for _, g := range pgids {
		want[g] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("read cpu: %w", err)
	}
	var total time.Duration
	found := false
	for _, e := range ents {
		name := e.Name()
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		st, err := parseStat(b)
		if err != nil {
			return 0, fmt.Errorf("read cpu of pid %s: %w", name, err)
		}
		if want[st.pgrp] {
			total += st.cpu
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("read cpu: no process left in process groups %v", pgids)
	}
	return total, nil
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for userspace, so readings are good to 10 ms.
const userHZ = 100

// procStat is what the ladder reads of /proc/PID/stat (proc(5)).
type procStat struct {
	state byte
	pgrp  int
	cpu   time.Duration // utime + stime
}

// parseStat reads /proc/PID/stat. The command name (field 2) is in
// parentheses and may hold spaces or ')', so fields are counted from the
// last ')'.
func parseStat(b []byte) (procStat, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("parse stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), pgrp field 5, utime 14, stime 15.
	const state, pgrp, utime, stime = 3 - 3, 5 - 3, 14 - 3, 15 - 3
	if len(f) <= stime {
		return procStat{}, fmt.Errorf("parse stat: %d fields after the command name; want > %d", len(f), stime)
	}
	var g, u, st int
	if _, err := fmt.Sscan(f[pgrp]+" "+f[utime]+" "+f[stime], &g, &u, &st); err != nil {
		return procStat{}, fmt.Errorf("parse stat: pgrp %q utime %q stime %q: %w", f[pgrp], f[utime], f[stime], err)
	}
	return procStat{state: f[state][0], pgrp: g, cpu: time.Duration(u+st) * time.Second / userHZ}, nil
}
