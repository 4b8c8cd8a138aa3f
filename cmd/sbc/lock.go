package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"sbc/sbc"
)

// lockWait is how long a daemon waits for the directories a previous one
// still holds: a hand-over (SIGUSR2) lets the next daemon start while the
// old one exits.
const lockWait = 5 * time.Second

// lockDirs takes an exclusive lock (flock) on calls.state_dir,
// control.data_dir and media.pin_path, which belong to one daemon: a
// second one would take the first one's calls over, end them in the call
// log as lost and shut their media ports. The locks go with the
// process, so a killed daemon never leaves one behind. A pin path that
// cannot be made (no bpf filesystem there) is not locked: the fast path
// runs unpinned then.
func lockDirs(cfg *sbc.Config) (unlock func(), err error) {
	var held []*os.File
	unlock = func() {
		for _, f := range held {
			f.Close()
		}
	}
	for _, d := range []struct {
		key  string
		path *string
		must bool
	}{{"calls.state_dir", cfg.Calls.StateDir, true}, {"control.data_dir", &cfg.Control.DataDir, true}, {"media.pin_path", cfg.Media.PinPath, false}} {
		if d.path == nil || *d.path == "" {
			continue
		}
		if err := os.MkdirAll(*d.path, 0o700); err != nil {
			if !d.must {
				continue
			}
			unlock()
			return nil, fmt.Errorf("%s %q: %w", d.key, *d.path, err)
		}
		f, err := lockDir(*d.path, lockWait)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("%s %q: %w", d.key, *d.path, err)
		}
		held = append(held, f)
	}
	return unlock, nil
}

// errDirInUse: another process holds the directory's lock.
var errDirInUse = errors.New("in use by another sbc process (one directory per daemon)")

// lockDir opens dir and locks it exclusively, waiting up to wait for
// another holder to let go.
func lockDir(dir string, wait time.Duration) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errDirInUse
		}
		time.Sleep(50 * time.Millisecond)
	}
}
