package sbc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/store"
	"sbc/media"
)

// Why a call ended; logged as ended_by.
const (
	endCaller       = "caller"
	endCallee       = "callee"
	endCancel       = "cancel"
	endRejected     = "rejected"
	endMediaTimeout = "media_timeout" // no RTP/RTCP from either leg
	endRingTimeout  = "ring_timeout"  // callee rang past calls.ring_timeout
	endNoResponse   = "no_response"   // callee never answered the INVITE (Timer B)
	endNoAck        = "no_ack"        // caller never ACKed our 200
	endMaxDuration  = "max_duration"
	endShutdown     = "shutdown"
	endError        = "error"
)

type callState int

const (
	stateSetup       callState = iota
	stateEstablished           // answered
	stateEnding                // BYEs under way; only finish may follow
	stateEnded
)

// call ties the two legs of a B2BUA call and their media together.
type call struct {
	s        *Server
	id       string
	log      *slog.Logger
	from, to *Trunk
	a, b     *leg
	sess     *media.Session
	// dec is the control plane's admission (it holds a concurrency slot
	// until finish); row the call's log row, without status.
	dec     control.Decision
	row     store.Call
	ringing bool            // a 180/183 was reported
	ctx     context.Context // cancelled when the call ends or the SBC shuts down
	cancel  context.CancelFunc

	mu       sync.Mutex
	state    callState
	answered time.Time
	streams  []*media.Stream // by m= line index; nil for rejected lines
	peers    [][2]media.Peer // signalled peer per m= line and side, for re-INVITE rollback
	reinvite bool            // an offer/answer exchange is in progress (RFC 3261 §14.1)
	offered  int             // m= lines of the last offer: its answer must match
	pending  []*lineOffer    // per m= line of the last offer: the SBC's own offer of an audio line
	offerer  media.Side      // who made the last offer
	infoBusy map[*leg]bool   // an INFO from this leg is being relayed
	ackWait  map[ackKey]chan struct{}
	endedBy  string
	endOnce  sync.Once
	finished chan struct{}
	// persistMu orders writing the call's state file with removing it.
	persistMu sync.Mutex
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) newCall(from, to *Trunk, dec control.Decision, req *sip.Request) *call {
	ctx, cancel := context.WithCancel(context.Background())
	id := store.NewSID(store.PrefixCall)
	dialled := dec.To // as admission read it: E.164 where it is a number
	if dialled == "" {
		dialled = req.Recipient.User
	}
	c := &call{
		s:    s,
		id:   id,
		from: from,
		to:   to,
		dec:  dec,
		row: store.Call{SID: id, AccountSID: dec.Account, From: callerUser(dec, req), To: dialled,
			Direction: dec.Direction, FromTrunk: from.Name, ToTrunk: to.Name, Created: time.Now().UTC()},
		ctx:      ctx,
		cancel:   cancel,
		ackWait:  map[ackKey]chan struct{}{},
		infoBusy: map[*leg]bool{},
		finished: make(chan struct{}),
	}
	c.log = s.log.With("call_id", c.id)
	c.sess = s.relay.NewSession(c.id)
	s.mu.Lock()
	s.calls[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (c *call) other(l *leg) *leg {
	c.mu.Lock() // c.b changes once, when one of several devices answers
	defer c.mu.Unlock()
	if l == c.a {
		return c.b
	}
	return c.a
}

// expired reports why the reaper should end the call, or "".
func (c *call) expired(now time.Time, mediaTimeout, maxDuration time.Duration) string {
	c.mu.Lock()
	state, answered := c.state, c.answered
	c.mu.Unlock()
	if state != stateEstablished {
		return ""
	}
	if maxDuration > 0 && now.Sub(answered) >= maxDuration {
		return endMaxDuration
	}
	last := c.sess.LastActivity()
	if answered.After(last) {
		last = answered
	}
	if now.Sub(last) >= mediaTimeout {
		return endMediaTimeout
	}
	return ""
}

// finish ends the call once: dialogs forgotten, media released, logged.
func (c *call) finish(status int, endedBy string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.state = stateEnded
		c.endedBy = endedBy
		answered := c.answered
		c.mu.Unlock()
		c.cancel()
		c.s.removeDialog(c.a)
		c.s.removeDialog(c.b)
		c.dec.Release()
		st := c.sess.Stats()
		c.sess.Close()
		c.s.mu.Lock()
		delete(c.s.calls, c)
		c.s.mu.Unlock()
		now := time.Now()
		dur := 0.0
		if !answered.IsZero() {
			dur = now.Sub(answered).Seconds()
		}
		c.reportEnd(status, endedBy, now, st)
		c.log.Info("call ended",
			"a_call_id", c.a.callID, "b_call_id", c.b.callID,
			"from_trunk", c.from.Name, "to_trunk", c.to.Name,
			"status", status, "ended_by", endedBy, "duration_s", dur,
			"a_to_b_rtp_packets", st.AtoB.RTPPackets, "b_to_a_rtp_packets", st.BtoA.RTPPackets,
			"a_to_b_rtcp_packets", st.AtoB.RTCPPackets, "b_to_a_rtcp_packets", st.BtoA.RTCPPackets,
			"dropped_packets", st.AtoB.Dropped+st.BtoA.Dropped,
			"a_to_b_kernel_packets", st.AtoB.Kernel, "b_to_a_kernel_packets", st.BtoA.Kernel,
			"srtp_auth_failures", st.AtoB.SRTPAuthFailures+st.BtoA.SRTPAuthFailures,
			"srtp_replays", st.AtoB.SRTPReplays+st.BtoA.SRTPReplays,
			"dtmf_events", st.AtoB.Events+st.BtoA.Events,
			"dtmf_events_dropped", st.AtoB.EventsDropped+st.BtoA.EventsDropped,
			"a_to_b_quality", st.AtoB.Quality, "b_to_a_quality", st.BtoA.Quality,
		)
		close(c.finished)
	})
}

// hangup ends an established call with BYE on both legs, or aborts one still
// being set up. It returns once the call has ended.
func (c *call) hangup(reason string) {
	c.mu.Lock()
	state := c.state
	if state == stateSetup {
		// The set-up loop sees the cancelled context and cleans up;
		// establish refuses to answer once endedBy is set.
		if c.endedBy == "" {
			c.endedBy = reason
		}
		c.mu.Unlock()
		c.cancel()
		<-c.finished
		return
	}
	c.mu.Unlock()
	if !c.beginEnd() {
		<-c.finished // someone else is ending it
		return
	}
	var wg sync.WaitGroup
	for _, l := range []*leg{c.a, c.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.bye(l)
		}()
	}
	wg.Wait()
	c.finish(200, reason)
}

// beginEnd moves an established call to ending; only one caller wins, so a
// call is hung up once however many reasons arrive together.
func (c *call) beginEnd() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateEstablished {
		return false
	}
	c.state = stateEnding
	return true
}

// establish moves a call in set-up to established, unless a hangup was
// asked for meanwhile: then it returns that reason.
func (c *call) establish() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endedBy != "" {
		return c.endedBy
	}
	c.state = stateEstablished
	c.answered = time.Now()
	return ""
}

// abortReason is why the set-up was aborted through the context.
func (c *call) abortReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endedBy == "" {
		return endShutdown
	}
	return c.endedBy
}

// bye sends BYE on a leg and waits briefly for the answer; a peer that does
// not answer must not hold the call's resources.
func (c *call) bye(l *leg) {
	req := l.newRequest(c.s, sip.BYE, 0)
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	res, err := c.s.do(ctx, req)
	if err != nil {
		// The far leg may still think the call is up.
		c.log.Warn("BYE got no answer", "leg", l.side.String(), "error", err)
		return
	}
	if res.StatusCode >= 300 {
		c.log.Info("BYE refused", "leg", l.side.String(), "status", res.StatusCode)
	}
}

// byeTimeout bounds how long we wait for a BYE's answer: RFC 3261 Timer F
// is 32 s, but the call is over either way.
const byeTimeout = 5 * time.Second

// ackKey identifies the ACK for one 2xx: the leg and the INVITE's CSeq.
type ackKey struct {
	l   *leg
	seq uint32
}

// expectAck registers that we send a 2xx on l for the INVITE with CSeq seq.
func (c *call) expectAck(l *leg, seq uint32) ackKey {
	k := ackKey{l, seq}
	c.mu.Lock()
	c.ackWait[k] = make(chan struct{})
	c.mu.Unlock()
	return k
}

// gotAck delivers an ACK from l to whoever waits for it.
func (c *call) gotAck(l *leg, seq uint32) {
	k := ackKey{l, seq}
	c.mu.Lock()
	ch := c.ackWait[k]
	delete(c.ackWait, k)
	c.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// respond2xx sends a 2xx to an INVITE and retransmits it until the ACK
// arrives (RFC 3261 §13.3.1.4: T1 doubling up to T2, for 64*T1). It reports
// whether the ACK came; an error means the 2xx could not be sent at all
// (the transaction was cancelled or failed).
func (c *call) respond2xx(l *leg, tx sip.ServerTransaction, res *sip.Response, k ackKey) (bool, error) {
	c.mu.Lock()
	ack := c.ackWait[k]
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.ackWait, k)
		c.mu.Unlock()
	}()
	if err := tx.Respond(res); err != nil {
		return false, err
	}
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	reliable := l.transport != "udp"
	for {
		select {
		case <-ack:
			return true, nil
		case <-tx.Acks():
			// A peer that reused the INVITE's branch for the ACK: sipgo
			// hands it to the INVITE transaction.
			return true, nil
		case <-retransmit.C:
			if !reliable {
				tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			return false, nil
		case <-c.finished:
			return false, nil
		}
	}
}

// callerUser is the caller's user part the B leg and the call log carry:
// a device's call presents the number admission chose for it.
func callerUser(dec control.Decision, req *sip.Request) string {
	if dec.CallerID != "" {
		return dec.CallerID
	}
	return req.From().Address.User
}

// callerName is the caller's display name on the B leg: none for a
// device's call (it would say what the presented number does not).
func callerName(dec control.Decision, req *sip.Request) string {
	if dec.CallerID != "" {
		return ""
	}
	return req.From().DisplayName
}
