//go:build linux

package ladder

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
)

// A system is what the ladder measures: it takes the UAC's calls on its
// SIP address and sends them on to the UAS, anchoring their media or not.
type system interface {
	name() string
	// start runs the system's processes and returns once they take calls.
	start(ctx context.Context, e env) error
	sipAddr() netip.AddrPort
	// pgids are the process groups whose CPU time is the system's.
	pgids() []int
	// mediaIP is where the system anchors media: the address the UAS must
	// find in the offer. Invalid when it does not anchor media.
	mediaIP() netip.Addr
	// counted is a running count of what the system itself logs once per
	// call (sbc: "call ended"; rtpengine: ng offers), and what that is;
	// "" when it logs nothing per call.
	counted() (n int64, what string)
	// check is non-nil once one of its processes has ended by itself.
	check() error
	// stop ends every process of the system, gracefully if it can, and
	// says what went wrong. It may be called after a failed start, and
	// more than once.
	stop() error
}

// env is what a system learns of the run.
type env struct {
	ip        netip.Addr     // the system's SIP address (and the sbc's media)
	uac       netip.AddrPort // calls come from here
	uas       netip.AddrPort // calls go there
	rtpengine netip.Addr     // rtpengine's media and control address
	portMin   int            // media range of the sbc or rtpengine
	portMax   int
	dir       string // for configs and logs
	testdata  string
	sbcBin    string
	children  int  // Kamailio's UDP workers
	keep      bool // the run's files are kept: write the processes' logs
}

// logPath is where a process's output is written, or "" for nowhere: its
// log costs the harness CPU the systems share, for a file only -keep keeps.
func (e env) logPath(name string) string {
	if !e.keep {
		return ""
	}
	return filepath.Join(e.dir, name)
}

func newSystem(name string) (system, error) {
	switch name {
	case SystemSBC:
		return &sbcSystem{}, nil
	case SystemKamailio:
		return &kamailioSystem{media: true}, nil
	case SystemKamailioNoMedia:
		return &kamailioSystem{}, nil
	}
	return nil, fmt.Errorf("system %q: unknown", name)
}

// exitedErr says how a process of a system ended by itself, or nil.
func exitedErr(p *proc) error {
	if p == nil {
		return nil
	}
	if done, err := p.exited(); done {
		return fmt.Errorf("%s exited by itself (%v)%s", p.name, err, p.lastLines())
	}
	return nil
}
