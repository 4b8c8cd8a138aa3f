package sbc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control/store"
	"sbc/media"
)

// A restarted daemon takes over the calls its predecessor had answered.
// Each answered call keeps a small JSON file in calls.state_dir: both
// dialogs (Call-ID, tags, URIs, remote target, route set, CSeqs), the trunks,
// when it was answered, and per m= line the relay's ports and the peers
// signalling agreed on. It is written when the call is answered and after
// each exchange that changes it (re-INVITE, a relayed INFO). When the call
// ends it is replaced by the call's final log row, and removed once the
// control plane has written that row (and the call's charge): a daemon
// killed in between writes the row at its next start, charged once. No
// fsync: the file must survive the process (kill -9,
// an upgrade), and the page cache does; a crash of the machine takes the
// kernel's forwarding with it anyway.
//
// At start, before the listeners open, Adopt reads the files back: each
// call gets its dialogs and its media ports again (the latched peers from
// the kernel's entries where the fast path still forwards, else from the
// next packets), and from then on is an ordinary call: BYE from either side
// ends both, re-INVITEs work, the reaper ends it on media silence or
// max_duration. A call that cannot be taken back (its trunk is gone from
// the config, its device's user from the control plane, its ports left the
// range or are held) is ended cleanly with BYE on both legs. Calls still
// ringing when the daemon died are not kept: their transactions died with
// it.

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
	// Log is the call's log row (account, numbers, direction, times),
	// so the taken-over call's final row is whole.
	Log *store.Call `json:"log,omitempty"`
	// Ended is the final row of a call that has ended, kept until the
	// control plane has written it: the record of an ended call has
	// nothing else.
	Ended *store.Call `json:"ended,omitempty"`
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
	// Device: the leg's peer is a registered user's device. Absent from
	// the records of older runs: such a call is ended as a gone trunk's.
	Device *deviceRecord `json:"device,omitempty"`
	SIPS   bool          `json:"sips,omitempty"`
}

// deviceRecord is what makes a device's peer again (newDeviceTrunk),
// with the leg's transport. Its flow is also the leg's dest: behind a NAT
// the device is reached there, not at its Contact, and its requests are
// known by coming from there (deviceLeg).
type deviceRecord struct {
	User    string `json:"user"`
	Flow    string `json:"flow"`
	Contact string `json:"contact"`
}

func (l *leg) record() legRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := legRecord{
		Transport: l.transport, CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
		Local: l.local.String(), LocalName: l.localName, Remote: l.remote.String(), RemoteName: l.remoteNm,
		Target: l.target.String(), Routes: l.routes, LocalSeq: l.localSeq, RemoteSeq: l.remoteSeq, SIPS: l.sips,
	}
	if d := l.trunk().device; d != nil {
		r.Device = &deviceRecord{User: d.user, Flow: l.dest, Contact: d.contact.String()}
	}
	return r
}

func (c *call) record() callRecord {
	row := c.row
	r := callRecord{ID: c.id, From: c.from.Name, To: c.to.Name, A: c.a.record(), B: c.b.record(), Log: &row}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Answered, r.Offered = c.answered, c.offered
	for i, st := range c.streams {
		var sr streamRecord
		if st != nil {
			sr.Ports[0], _ = st.LocalPorts(media.SideA)
			sr.Ports[1], _ = st.LocalPorts(media.SideB)
			sr.Media[0], sr.Media[1] = newMediaRecord(st.Media(media.SideA)), newMediaRecord(st.Media(media.SideB))
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
		err = writeAtomic(path, b)
	}
	if err != nil {
		c.log.Warn("keep call state: a restarted daemon could not take this call over", "error", err)
	}
}

// writeAtomic replaces path with b through a temporary file and a rename:
// a daemon killed while writing leaves the previous record whole (and a
// stray temporary file, which Adopt removes). Neither name is followed if
// it is a symbolic link.
func writeAtomic(path string, b []byte) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// tmpSuffix names a record being written.
const tmpSuffix = ".tmp"

// maxRecordSize bounds a call record read back; one is about 2 KB.
const maxRecordSize = 64 << 10

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
	if err := checkStateDir(*d); err != nil {
		return 0, 0, err
	}
	entries, err := os.ReadDir(*d)
	if err != nil {
		return 0, 0, fmt.Errorf("calls.state_dir %q: %w", *d, err)
	}
	var ending []*call
	relogged := 0
	defer func() {
		if relogged > 0 {
			s.log.Info("final log rows of calls that ended before the previous run stopped written again", "calls", relogged)
		}
	}()
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(*d, name)
		if strings.HasSuffix(name, ".json"+tmpSuffix) { // a write the daemon did not finish
			os.Remove(path)
			continue
		}
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		rec, err := readRecord(path)
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
		if rec.Ended != nil {
			if s.relog(rec, path) {
				relogged++
			}
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

// checkStateDir refuses a state directory others may write to: what its
// records say, the daemon does (BYEs to their targets, media ports).
func checkStateDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("calls.state_dir %q: %w", d, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("calls.state_dir %q: not a directory", d)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("calls.state_dir %q: owned by uid %d, not by the daemon's (%d)", d, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("calls.state_dir %q: mode %04o lets others write call state; want no group or other write (chmod 700)", d, fi.Mode().Perm())
	}
	return nil
}

// readRecord reads one call's record: a regular file (not a link) of at
// most maxRecordSize bytes, which describes at most maxStreams m= lines.
func readRecord(path string) (callRecord, error) {
	var rec callRecord
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return rec, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rec, err
	}
	if !fi.Mode().IsRegular() {
		return rec, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return rec, err
	}
	if len(b) > maxRecordSize {
		return rec, fmt.Errorf("longer than %d bytes", maxRecordSize)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	if len(rec.Streams) > maxStreams {
		return rec, fmt.Errorf("%d media streams; at most %d", len(rec.Streams), maxStreams)
	}
	return rec, nil
}

// endAdoptFailed: a restarted daemon could not take the call over.
const endAdoptFailed = "adopt_failed"

// adopt rebuilds a call from its record. A nil call: the record cannot
// even end the call (its trunks or dialogs are unusable). A call and an
// error: the dialogs are back but not the media; the caller ends it.
func (s *Server) adopt(rec callRecord) (*call, error) {
	// A trunk gone from the config, or a device's user from the control
	// plane: the call is rebuilt with a stand-in that no request matches,
	// only to be ended.
	var gone []string
	from, err := s.peerOf(rec.From, rec.A)
	if err != nil {
		return nil, err
	}
	to, err := s.peerOf(rec.To, rec.B)
	if err != nil {
		return nil, err
	}
	if from == nil {
		from, gone = &Trunk{Name: rec.From}, append(gone, rec.From)
	}
	if to == nil {
		to, gone = &Trunk{Name: rec.To}, append(gone, rec.To)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{
		s: s, id: rec.ID, from: from, to: to, ctx: ctx, cancel: cancel,
		ackWait: map[ackKey]chan struct{}{}, infoBusy: map[*leg]bool{}, finished: make(chan struct{}),
		state: stateEstablished, answered: rec.Answered, offered: rec.Offered,
	}
	c.log = s.log.With("call_id", c.id)
	if rec.Log != nil && rec.Log.SID == rec.ID {
		c.row = *rec.Log
		if s.ctl != nil && c.row.AccountSID != "" {
			row := c.row
			row.Answered = rec.Answered
			c.dec = s.ctl.Resume(row)
		}
	}
	if c.a, err = rec.A.leg(c, media.SideA); err == nil {
		c.b, err = rec.B.leg(c, media.SideB)
	}
	if err != nil {
		c.dec.Release()
		cancel()
		return nil, err
	}
	for _, l := range []*leg{c.a, c.b} {
		if t := l.trunk(); l.dest == "" && l.transport == "tls" && t.device == nil {
			// The trunk's TLS connection died with the daemon: its
			// requests go to its address, over a connection the SBC opens
			// and checks (dialTrunk), as for a call it placed.
			if a, ok := trunkAddr(t.Address); ok {
				l.dest = a
			}
		}
	}
	c.sess = s.relay.NewSession(c.id)
	s.mu.Lock()
	s.calls[c] = struct{}{}
	s.mu.Unlock()
	s.addDialog(c.a)
	s.addDialog(c.b)
	if len(gone) > 0 {
		return c, fmt.Errorf("peer %s no longer configured", strings.Join(gone, " and "))
	}
	for i, sr := range rec.Streams {
		c.peers = append(c.peers, sr.Peers)
		c.streams = append(c.streams, nil)
		if sr.Ports[0] == 0 {
			continue
		}
		// A terminated line gets its legs' media back before any packet is
		// relayed: never passed through as it came (SRTP to a plain peer).
		var legs [2]*media.LegMedia
		for side, mr := range sr.Media {
			if mr == nil {
				continue
			}
			m, err := mr.legMedia()
			if err != nil {
				return c, fmt.Errorf("media line %d side %s: %w", i, media.Side(side), err)
			}
			legs[side] = &m
		}
		st, err := c.sess.AdoptStream(sr.Ports, sr.Peers, legs)
		if err != nil {
			return c, fmt.Errorf("media line %d: %w", i, err)
		}
		c.streams[i] = st
	}
	return c, nil
}

// peerOf is the peer of a recorded leg: the configured trunk called name
// or, for a device's leg, the device made anew if the control plane still
// has its user; nil when gone. Not from the registrar: Adopt runs before
// Listen restores its bindings, and the call has its own flow anyway.
func (s *Server) peerOf(name string, r legRecord) (*Trunk, error) {
	d := r.Device
	if d == nil {
		return s.trunks.get(name), nil
	}
	var contact sip.Uri
	if err := sip.ParseUri(d.Contact, &contact); err != nil {
		return nil, fmt.Errorf("device %s: contact %q: %w", d.User, d.Contact, err)
	}
	if s.ctl == nil {
		return nil, nil
	}
	u, ok := s.ctl.Device(d.User)
	if !ok {
		return nil, nil
	}
	return s.newDeviceTrunk(u.User, r.Transport, d.Flow, contact), nil
}

// leg rebuilds a dialog from its record. Our CSeq moves on by a margin: a
// request we sent after the record was last written must not be reused.
func (r legRecord) leg(c *call, side media.Side) (*leg, error) {
	l := &leg{call: c, side: side, transport: r.Transport, callID: r.CallID, localTag: r.LocalTag,
		remoteTag: r.RemoteTag, localName: r.LocalName, remoteNm: r.RemoteName, routes: r.Routes,
		localSeq: r.LocalSeq + adoptSeqMargin, remoteSeq: r.RemoteSeq, sips: r.SIPS}
	l.peer = c.from
	if side == media.SideB {
		l.peer = c.to
	}
	if r.Device != nil {
		l.dest = r.Device.Flow
	}
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
