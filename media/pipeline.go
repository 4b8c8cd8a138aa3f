package media

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"sbc/codec"
)

// LegMedia is what one leg negotiated for a stream: the payload formats
// its peer sends and receives, and its SRTP keys (nil for plain RTP).
type LegMedia struct {
	Formats []codec.Format
	SRTP    *SRTP
}

// path is the userspace pipeline of one direction: decrypt, convert or
// renumber, encrypt. Built by SetMedia, replaced whole; the contexts are
// used only under the direction's mutex.
type path struct {
	plan codec.Plan
	rx   *srtp.Context // decrypts what the in peer sends; nil: plain
	tx   *srtp.Context // encrypts for the out peer; nil: plain
	// identity: no step at all, packets leave as they came (and the
	// kernel may relay them).
	identity bool
}

// direction is the state of the packets from one peer: its pipeline, the
// rewrite of their SSRC, sequence numbers and timestamps for the other
// leg, and what was measured of them.
type direction struct {
	mu   sync.Mutex
	path *path // nil until both legs negotiated: nothing passes
	w    rewriter
	recv receiver
	// shift is the rewrite as RTCP needs it, published on each change for
	// the other direction's reader.
	shift atomic.Pointer[ssrcShift]
	// Headers reused for every packet: pion's SRTP calls parse into them.
	hdr     rtp.Header
	rtcpHdr rtcp.Header

	// Rollover recovery: a receiving context that has not yet decrypted a
	// packet (rxCtx, rxOK) may meet a peer whose sequence numbers wrapped
	// already (a call taken over after a restart, whose rollover count was
	// not kept): up to maxROCGuess counts are tried, for at most
	// maxROCPackets packets, on a copy (a failed GCM open clears its
	// buffer).
	rxCtx   *srtp.Context
	rxOK    bool
	guesses int
	orig    []byte
}

const (
	maxROCGuess   = 16 // 16 wraps of 20 ms packets: almost 6 hours
	maxROCPackets = 50
)

// decrypt is rx.DecryptRTP in place, with rollover recovery.
func (d *direction) decrypt(rx *srtp.Context, b []byte) ([]byte, error) {
	if d.rxCtx != rx {
		d.rxCtx, d.rxOK, d.guesses = rx, false, 0
	}
	retry := !d.rxOK && d.guesses < maxROCPackets && len(b) >= minRTP
	if retry {
		d.orig = append(d.orig[:0], b...)
	}
	out, err := rx.DecryptRTP(b[:0], b, &d.hdr)
	if err == nil {
		d.rxOK = true
		return out, nil
	}
	if auth, _ := srtpFailure(err); !retry || !auth {
		return nil, err
	}
	d.guesses++
	ssrc := binary.BigEndian.Uint32(d.orig[8:])
	for roc := uint32(1); roc <= maxROCGuess; roc++ {
		rx.SetROC(ssrc, roc)
		n := copy(b[:cap(b)], d.orig)
		if out, err2 := rx.DecryptRTP(b[:0], b[:n], &d.hdr); err2 == nil {
			d.rxOK = true
			return out, nil
		}
	}
	rx.SetROC(ssrc, 0)
	return nil, err
}

// rewriter gives the packets of one direction the relay's SSRC and keeps
// their sequence numbers and timestamps continuous for the other leg when
// the peer changes its SSRC (a re-INVITE to another media server, a
// restart): the other leg sees one stream for the whole call.
type rewriter struct {
	ssrc    uint32 // ours, fixed for the call
	started bool
	in      uint32 // the peer's SSRC being followed
	seq     uint16 // added to the peer's sequence numbers
	ts      uint32 // added to the peer's timestamps
	lastSeq uint16 // highest sequence number sent
	lastTS  uint32 // timestamp of the last audio packet sent
	lastAt  int64  // its arrival, in timestamp units
}

// apply returns the sequence number and timestamp to send for a packet of
// the peer's, whether the SSRC map changed, and false when the packet must
// not go out: with monotonic (the out leg is SRTP) a number at or below the
// last one sent, whose SRTP index (key, SSRC, ROC, sequence) was used
// already: its keystream, or GCM nonce, must never be used twice (RFC 3711
// §9.1). A jump beyond maxDropout on the same SSRC is taken as a restart of
// the peer's numbering and rebased, so the index never runs ahead far
// enough for the encrypting side's rollover guess to go back a cycle.
func (w *rewriter) apply(ssrc uint32, seq uint16, ts uint32, arrival int64, audio, monotonic bool) (uint16, uint32, bool, bool) {
	changed := false
	switch {
	case !w.started:
		w.started, w.in, changed = true, ssrc, true
		w.lastSeq, w.lastTS, w.lastAt = seq-1, ts, arrival
	case ssrc != w.in, seq+w.seq-w.lastSeq > maxDropout && seq+w.seq-w.lastSeq < 1<<15:
		// Continue from where the last numbering stopped: the next
		// sequence number, and the time elapsed since its last packet.
		elapsed := uint32(max(arrival-w.lastAt, 1))
		w.in, changed = ssrc, true
		w.seq = w.lastSeq + 1 - seq
		w.ts = w.lastTS + elapsed - ts
	}
	oseq, ots := seq+w.seq, ts+w.ts
	if int16(oseq-w.lastSeq) > 0 {
		w.lastSeq = oseq
	} else if monotonic {
		return 0, 0, changed, false // late or repeated: its index is spent
	}
	if audio {
		w.lastTS, w.lastAt = ots, arrival
	}
	return oseq, ots, changed, true
}

// skip takes a packet of the peer's that is not sent (an event the other
// leg cannot take) out of the numbering: when it is the next one, the
// packets after it move down, so the other leg sees no gap (a loss).
func (w *rewriter) skip(ssrc uint32, seq uint16) {
	if w.started && ssrc == w.in && seq+w.seq == w.lastSeq+1 {
		w.seq--
	}
}

func (d *direction) publish() {
	d.shift.Store(&ssrcShift{set: true, in: d.w.in, out: d.w.ssrc, seq: d.w.seq, ts: d.w.ts})
}

// arrival converts the relay's clock (ns) to 8 kHz timestamp units.
func arrival(now int64) int64 { return now / (1e9 / ClockRate) }

// transform runs one datagram from in's peer through its direction's
// pipeline, in place in b (whose capacity leaves room for an SRTP tag),
// and returns what to send; false when it is dropped, counted in c.
func (st *Stream) transform(in, out *leg, b []byte, rtcp bool, now int64) ([]byte, bool) {
	d := &in.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.path
	if p == nil {
		return nil, false // not negotiated yet
	}
	if rtcp {
		return st.transformRTCP(in, out, p, b)
	}
	c := &in.in
	if p.rx != nil {
		var err error
		if b, err = d.decrypt(p.rx, b); err != nil {
			c.srtpFailed(err)
			return nil, false
		}
	}
	h, ok := parseRTP(b)
	if !ok {
		return nil, false
	}
	a := p.plan.Action(h.pt)
	at := arrival(now)
	d.recv.packet(h.ssrc, h.seq, h.ts, at, !a.Event)
	if p.identity {
		// As the kernel would: everything passes as it came, measured.
		if a.Event {
			c.events.Add(1)
		}
		return b, true
	}
	switch a.Kind {
	case codec.Drop:
		return nil, false
	case codec.DropEvent:
		c.eventsDropped.Add(1)
		d.w.skip(h.ssrc, h.seq)
		return nil, false
	}
	if a.Event {
		c.events.Add(1)
	}
	if a.Conv != nil {
		a.Conv.Convert(h.payload(b))
	}
	seq, ts, changed, send := d.w.apply(h.ssrc, h.seq, h.ts, at, !a.Event, p.tx != nil)
	if changed {
		d.publish()
	}
	if !send {
		return nil, false
	}
	setRTP(b, a.Out, seq, ts, d.w.ssrc)
	if p.tx != nil {
		var err error
		if b, err = p.tx.EncryptRTP(b[:0], b, &d.hdr); err != nil {
			return nil, false
		}
	}
	return b, true
}

// transformRTCP decrypts, fixes and encrypts one RTCP packet; under in.dir.mu.
func (st *Stream) transformRTCP(in, out *leg, p *path, b []byte) ([]byte, bool) {
	c := &in.in
	if p.rx != nil {
		var err error
		if b, err = p.rx.DecryptRTCP(b[:0], b, &in.dir.rtcpHdr); err != nil {
			c.srtpFailed(err)
			return nil, false
		}
	}
	// Fixed whenever either direction is rewritten: a report about the
	// other direction's stream may need its SSRC back (unset shifts change
	// nothing).
	var m ssrcMap
	if s := in.dir.shift.Load(); s != nil {
		m.sender = *s
	}
	if s := out.dir.shift.Load(); s != nil {
		m.media = *s
	}
	fixRTCP(b, &m)
	if p.tx != nil {
		// SRTCP's index is per SSRC: the first packet's sender SSRC is
		// always the relay's, random per run, so a context made again
		// (a restart) never repeats an index under the peer's SSRC.
		binary.BigEndian.PutUint32(b[4:], in.dir.w.ssrc)
		var err error
		if b, err = p.tx.EncryptRTCP(b[:0], b, &in.dir.rtcpHdr); err != nil {
			return nil, false
		}
	}
	return b, true
}

// srtpFailed counts a packet SRTP refused.
func (c *counters) srtpFailed(err error) {
	switch auth, replay := srtpFailure(err); {
	case auth:
		c.srtpAuth.Add(1)
	case replay:
		c.srtpReplay.Add(1)
	default:
		c.srtpAuth.Add(1) // too short for its tag, unknown MKI: not authentic
	}
}

// newSSRC picks the relay's SSRC for one direction (RFC 3550 §8.1: random).
func newSSRC() uint32 { return rand.Uint32() }

func (d *direction) quality() Quality {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recv.quality()
}

// Media returns what side's leg negotiated (SetMedia), nil before; a copy.
func (st *Stream) Media(side Side) *LegMedia {
	st.mediaMu.Lock()
	defer st.mediaMu.Unlock()
	m := st.media[side]
	if m == nil {
		return nil
	}
	c := LegMedia{Formats: slices.Clone(m.Formats)}
	if m.SRTP != nil {
		k := *m.SRTP
		c.SRTP = &k
	}
	return &c
}

// SetMedia records what side's leg negotiated for the stream (call it on
// every answer, and on the offer's side once the offer is accepted). From
// the first call the relay terminates the stream's media: packets of a
// direction pass only once both legs are set, through that direction's
// pipeline. SRTP contexts are kept while a leg's keys stay the same (a
// re-INVITE), so replay windows and rollover counters carry on; the
// rewrite of SSRC, sequence numbers and timestamps always carries on.
func (st *Stream) SetMedia(side Side, m LegMedia) error {
	st.mediaMu.Lock()
	defer st.mediaMu.Unlock()
	l := &st.legs[side]
	// Each context is made again only when its own key changes: a new
	// context restarts the SRTCP index (and the replay window, and the
	// rollover count), which under the same key would reuse keystream.
	var rx, tx *srtp.Context
	if m.SRTP != nil {
		k := *m.SRTP
		m.SRTP = &k
		rx, tx = l.rx, l.tx
		old := l.keys
		if old == nil || old.Suite != k.Suite || string(old.Recv) != string(k.Recv) {
			var err error
			if rx, err = k.Suite.newContext(k.Recv, true); err != nil {
				return fmt.Errorf("side %s: peer key: %w", side, err)
			}
		}
		if old == nil || old.Suite != k.Suite || string(old.Send) != string(k.Send) {
			var err error
			if tx, err = k.Suite.newContext(k.Send, false); err != nil {
				return fmt.Errorf("side %s: our key: %w", side, err)
			}
		}
	}
	l.keys, l.rx, l.tx = m.SRTP, rx, tx
	l.secure.Store(m.SRTP != nil)
	m.Formats = slices.Clone(m.Formats)
	st.media[side] = &m
	st.terminated.Store(true)

	ok := true
	for from := range st.legs {
		in, out := &st.legs[from], &st.legs[1-from]
		mi, mo := st.media[from], st.media[1-from]
		var p *path
		if mi != nil && mo != nil {
			p = &path{plan: codec.NewPlan(mi.Formats, mo.Formats), rx: in.rx, tx: out.tx}
			p.identity = p.plan.Identity() && p.rx == nil && p.tx == nil
		}
		ok = ok && p != nil && p.identity
		in.dir.mu.Lock()
		in.dir.path = p
		if in.dir.w.ssrc == 0 {
			in.dir.w.ssrc = newSSRC()
		}
		in.dir.mu.Unlock()
	}
	st.kernelOK.Store(ok)
	st.sess.relay.nudgeOffload(st.sess)
	st.sess.log.Debug("media set", "side", side.String(), "srtp", m.SRTP.String(), "formats", len(m.Formats), "kernel_eligible", ok)
	return nil
}
