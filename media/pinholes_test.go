package media

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// pinholeLog records a Pinholes' calls.
type pinholeLog struct {
	mu   sync.Mutex
	open map[uint16]bool
}

func (p *pinholeLog) Open(port uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[port] = true
	return nil
}

func (p *pinholeLog) Shut(port uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, port)
	return nil
}

func (p *pinholeLog) ports() []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint16
	for port := range p.open {
		out = append(out, port)
	}
	slices.Sort(out)
	return out
}

// TestPinholesFollowTheStreams: a stream's ports open in the filter once
// both peers are signalled (the answer, or a 183 with SDP), not at the
// offer, and shut when the session closes; one that cannot open is logged
// and shut with the rest.
func TestPinholesFollowTheStreams(t *testing.T) {
	eachTransport(t, func(t *testing.T) {
		r := newTestRelay(t, nil)
		ph := &pinholeLog{open: map[uint16]bool{}}
		r.SetPinholes(ph)
		s := r.NewSession("call-1")
		st, err := s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		a, _ := st.LocalPorts(SideA)
		b, _ := st.LocalPorts(SideB)
		want := []uint16{uint16(a), uint16(a + 1), uint16(b), uint16(b + 1)}
		slices.Sort(want)
		st.SetRemote(SideA, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:4000")}) // the offer
		if got := ph.ports(); len(got) != 0 {
			t.Errorf("pinholes open before the answer: %v", got)
		}
		st.SetRemote(SideB, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:4100")}) // the answer
		if got := ph.ports(); !slices.Equal(got, want) {
			t.Errorf("open pinholes %v, want the stream's RTP and RTCP ports %v", got, want)
		}
		s.Close()
		if got := ph.ports(); len(got) != 0 {
			t.Errorf("pinholes still open after the session closed: %v", got)
		}
		// An answer after the close opens nothing.
		st.SetRemote(SideB, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:4200")})
		if got := ph.ports(); len(got) != 0 {
			t.Errorf("pinholes opened after the session closed: %v", got)
		}

		// A pinhole that cannot open: the others open, and all shut.
		s = r.NewSession("call-2")
		fail := &failingPinholes{pinholeLog: ph}
		r.SetPinholes(fail)
		st, err = s.AddStream()
		if err != nil {
			t.Fatal(err)
		}
		st.SetRemote(SideA, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:4000")})
		st.SetRemote(SideB, Peer{RTP: netip.MustParseAddrPort("127.0.0.1:4100")})
		if got := ph.ports(); len(got) != 3 {
			t.Errorf("open pinholes %v; want the three that could open", got)
		}
		s.Close()
		if got := ph.ports(); len(got) != 0 {
			t.Errorf("pinholes left open: %v", got)
		}
	})
}

// failingPinholes fails the second leg's RTP pinhole.
type failingPinholes struct {
	*pinholeLog
	opened int
}

func (f *failingPinholes) Open(port uint16) error {
	if f.opened++; f.opened == 3 {
		return errors.New("map full")
	}
	return f.pinholeLog.Open(port)
}
