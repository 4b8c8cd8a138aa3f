package sbc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/media"
)

// A restarted daemon takes over the calls its predecessor had answered.
// Each answered call keeps a small JSON file in calls.state_dir: both
// dialogs (Call-ID, tags, URIs, remote target, route set, CSeqs), the trunks,
// when it was answered, and per m= line the relay's ports and the peers
// signalling agreed on. It is written when the call is answered and after
// each exchange that changes it (re-INVITE, a relayed INFO), and removed
// when the call ends. No fsync: the file must survive the process (kill -9,
// an upgrade), and the page cache does; a crash of the machine takes the
// kernel's forwarding with it anyway.
//
// At start, before the listeners open, Adopt reads the files back: each
// call gets its dialogs and its media ports again (the latched peers from
// the kernel's entries where the fast path still forwards, else from the
// next packets), and from then on is an ordinary call: BYE from either side
// ends both, re-INVITEs work, the reaper ends it on media silence or
// max_duration. A call that cannot be taken back (its trunk is gone from
// the config, its ports left the range or are held) is ended cleanly with
// BYE on both legs. Calls still ringing when the daemon died are not kept:
// their transactions died with it.

// callRecord is what persists of a call.
type callRecord struct {
	ID       string         `json:"id"`
	From     string         `json:"from_trunk"`
	To       string         `json:"to_trunk"`
	Answered time.Time      `json:"answered"`
	A        legRecord      `json:"a"`
	B        legRecord      `json:"b"`
	Offered  int            `json:"offered"`
	Streams  []streamRecord `json:"streams"`
}

type legRecord struct {
	Transport  string   `json:"transport"`
	CallID     string   `json:"call_id"`
	LocalTag   string   `json:"local_tag"`
	RemoteTag  string   `json:"remote_tag"`
	Local      string   `json:"local"`
	LocalName  string   `json:"local_name,omitempty"`
	Remote     string   `json:"remote"`
	RemoteName string   `json:"remote_name,omitempty"`
	Target     string   `json:"target"`
	Routes     []string `json:"routes,omitempty"`
	LocalSeq   uint32   `json:"local_seq"`
	RemoteSeq  uint32   `json:"remote_seq"`
}

// streamRecord is one m= line: the relay's RTP port facing each side (0
// for a rejected line) and the peers signalled on each side.
type streamRecord struct {
	Ports [2]int        `json:"ports"`
	Peers [2]media.Peer `json:"peers"`
}

func (l *leg) record() legRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return legRecord{
		Transport: l.transport, CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
		Local: l.local.String(), LocalName: l.localName, Remote: l.remote.String(), RemoteName: l.remoteNm,
		Target: l.target.String(), Routes: l.routes, LocalSeq: l.localSeq, RemoteSeq: l.remoteSeq,
	}
}

func (c *call) record() callRecord {
	r := callRecord{ID: c.id, From: c.from.Name, To: c.to.Name, A: c.a.record(), B: c.b.record()}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Answered, r.Offered = c.answered, c.offered
	for i, st := range c.streams {
		var sr streamRecord
		if st != nil {
			sr.Ports[0], _ = st.LocalPorts(media.SideA)
			sr.Ports[1], _ = st.LocalPorts(media.SideB)
		}
		if i < len(c.peers) {
			sr.Peers = c.peers[i]
		}
		r.Streams = append(r.Streams, sr)
	}
	return r
}

// statePath is where call id's record lives, "" when calls are not kept.
func (s *Server) statePath(id string) string {
	if d := s.cfg.Calls.StateDir; d != nil && *d != "" {
		return filepath.Join(*d, id+".json")
	}
	return ""
}

// persist writes the call's record, while it is up.
func (c *call) persist() {
	path := c.s.statePath(c.id)
	if path == "" {
		return
	}
	// Under persistMu, and only while up: a record written after finish
	// removed it would bring an ended call back at the next start.
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	up := c.state == stateEstablished
	c.mu.Unlock()
	if !up {
		return
	}
	b, err := json.Marshal(c.record())
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		c.log.Warn("keep call state: a restarted daemon could not take this call over", "error", err)
	}
}

// unpersist removes the record of an ended call.
func (c *call) unpersist() {
	if path := c.s.statePath(c.id); path != "" {
		c.persistMu.Lock()
		defer c.persistMu.Unlock()
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("remove call state", "error", err)
		}
	}
}

// Adopt takes over the calls a previous run left in calls.state_dir (see
// above), creating the directory if needed. Call it once, after the relay
// has inherited the kernel's entries and before Listen. It returns how many
// calls it took over and how many it had to end; an error means the state
// directory is unusable.
func (s *Server) Adopt() (adopted, ended int, err error) {
	d := s.cfg.Calls.StateDir
	if d == nil || *d == "" {
		return 0, 0, nil
	}
	if err := os.MkdirAll(*d, 0o700); err != nil {
		return 0, 0, fmt.Errorf("calls.state_dir %q: %w (set calls.state_dir = \"\" to keep no call state)", *d, err)
	}
	entries, err := os.ReadDir(*d)
	if err != nil {
		return 0, 0, fmt.Errorf("calls.state_dir %q: %w", *d, err)
	}
	var ending []*call
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(*d, name)
		b, err := os.ReadFile(path)
		var rec callRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err == nil && rec.ID+".json" != name {
			err = fmt.Errorf("record of call %q in the file of another", rec.ID)
		}
		if err != nil {
			// Half written when the daemon died (or not ours): nothing to
			// end it with.
			s.log.Warn("call state unreadable; dropped", "file", path, "error", err)
			os.Remove(path)
			continue
		}
		c, err := s.adopt(rec)
		if c == nil {
			s.log.Warn("call state unusable; dropped", "call_id", rec.ID, "error", err)
			os.Remove(path)
			continue
		}
		if err != nil {
			c.log.Warn("call could not be taken over; ending it", "error", err)
			ending = append(ending, c)
			continue
		}
		c.log.Info("call taken over from a previous run", "a_call_id", rec.A.CallID, "b_call_id", rec.B.CallID,
			"from_trunk", rec.From, "to_trunk", rec.To, "answered", rec.Answered.Format(time.RFC3339))
		adopted++
	}
	// Their BYEs go out once the listeners are up (the UDP one is their
	// source); the caller waits for nothing.
	for _, c := range ending {
		s.mu.Lock()
		s.callWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.callWG.Done()
			select {
			case <-s.listening:
			case <-s.stop:
			}
			c.hangup(endAdoptFailed)
		}()
	}
	return adopted, len(ending), nil
}

// endAdoptFailed: a restarted daemon could not take the call over.
const endAdoptFailed = "adopt_failed"

// adopt rebuilds a call from its record. A nil call: the record cannot
// even end the call (its trunks or dialogs are unusable). A call and an
// error: the dialogs are back but not the media; the caller ends it.
func (s *Server) adopt(rec callRecord) (*call, error) {
	from, to := s.trunks.get(rec.From), s.trunks.get(rec.To)
	if from == nil || to == nil {
		return nil, fmt.Errorf("trunk %q or %q is no longer configured", rec.From, rec.To)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{
		s: s, id: rec.ID, from: from, to: to, ctx: ctx, cancel: cancel,
		ackWait: map[ackKey]chan struct{}{}, infoBusy: map[*leg]bool{}, finished: make(chan struct{}),
		state: stateEstablished, answered: rec.Answered, offered: rec.Offered,
	}
	c.log = s.log.With("call_id", c.id)
	var err error
	if c.a, err = rec.A.leg(c, media.SideA); err == nil {
		c.b, err = rec.B.leg(c, media.SideB)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	c.sess = s.relay.NewSession(c.id)
	s.mu.Lock()
	s.calls[c] = struct{}{}
	s.mu.Unlock()
	s.addDialog(c.a)
	s.addDialog(c.b)
	for i, sr := range rec.Streams {
		c.peers = append(c.peers, sr.Peers)
		c.streams = append(c.streams, nil)
		if sr.Ports[0] == 0 {
			continue
		}
		st, err := c.sess.AdoptStream(sr.Ports, sr.Peers)
		if err != nil {
			return c, fmt.Errorf("media line %d: %w", i, err)
		}
		c.streams[i] = st
	}
	return c, nil
}

// leg rebuilds a dialog from its record. Our CSeq moves on by a margin: a
// request we sent after the record was last written must not be reused.
func (r legRecord) leg(c *call, side media.Side) (*leg, error) {
	l := &leg{call: c, side: side, transport: r.Transport, callID: r.CallID, localTag: r.LocalTag,
		remoteTag: r.RemoteTag, localName: r.LocalName, remoteNm: r.RemoteName, routes: r.Routes,
		localSeq: r.LocalSeq + adoptSeqMargin, remoteSeq: r.RemoteSeq}
	for _, u := range []struct {
		text string
		dst  *sip.Uri
	}{{r.Local, &l.local}, {r.Remote, &l.remote}, {r.Target, &l.target}} {
		if err := sip.ParseUri(u.text, u.dst); err != nil {
			return nil, fmt.Errorf("leg %s: URI %q: %w", side, u.text, err)
		}
	}
	if l.callID == "" || l.localTag == "" || l.remoteTag == "" {
		return nil, fmt.Errorf("leg %s: incomplete dialog", side)
	}
	return l, nil
}

// adoptSeqMargin: RFC 3261 §12.2.2 lets a UAS accept a CSeq higher than
// the last by more than one.
const adoptSeqMargin = 100
