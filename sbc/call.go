package sbc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/media"
)

// Why a call ended; logged as ended_by.
const (
	endCaller      = "caller"
	endCallee      = "callee"
	endCancel      = "cancel"
	endRejected    = "rejected"
	endMediaTimout = "media_timeout" // no RTP/RTCP from either leg
	endRingTimeout = "ring_timeout"  // callee rang past calls.ring_timeout
	endNoResponse  = "no_response"   // callee never answered the INVITE (Timer B)
	endNoAck       = "no_ack"        // caller never ACKed our 200
	endMaxDuration = "max_duration"
	endShutdown    = "shutdown"
	endError       = "error"
)

type callState int

const (
	stateSetup callState = iota
	stateEstablished
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
	ctx      context.Context // cancelled when the call ends or the SBC shuts down
	cancel   context.CancelFunc
	started  time.Time

	mu       sync.Mutex
	state    callState
	answered time.Time
	streams  []*media.Stream // by m= line index; nil for rejected lines
	peers    [][2]media.Peer // signalled peer per m= line and side, for re-INVITE rollback
	reinvite bool            // an offer/answer exchange is in progress (RFC 3261 §14.1)
	ackWait  map[*leg]chan struct{}
	endedBy  string
	status   int
	endOnce  sync.Once
	finished chan struct{}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) newCall(from, to *Trunk) *call {
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{
		s:        s,
		id:       newID(),
		from:     from,
		to:       to,
		ctx:      ctx,
		cancel:   cancel,
		started:  time.Now(),
		ackWait:  map[*leg]chan struct{}{},
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
		return endMediaTimout
	}
	return ""
}

// finish ends the call once: dialogs forgotten, media released, logged.
func (c *call) finish(status int, endedBy string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.state = stateEnded
		c.status, c.endedBy = status, endedBy
		answered := c.answered
		c.mu.Unlock()
		c.cancel()
		c.s.removeDialog(c.a)
		c.s.removeDialog(c.b)
		st := c.sess.Stats()
		c.sess.Close()
		c.s.mu.Lock()
		delete(c.s.calls, c)
		c.s.mu.Unlock()
		dur := 0.0
		if !answered.IsZero() {
			dur = time.Since(answered).Seconds()
		}
		c.log.Info("call ended",
			"a_call_id", c.a.callID, "b_call_id", c.b.callID,
			"from_trunk", c.from.Name, "to_trunk", c.to.Name,
			"status", status, "ended_by", endedBy, "duration_s", dur,
			"a_to_b_rtp_packets", st.AtoB.RTPPackets, "b_to_a_rtp_packets", st.BtoA.RTPPackets,
			"a_to_b_rtcp_packets", st.AtoB.RTCPPackets, "b_to_a_rtcp_packets", st.BtoA.RTCPPackets,
			"dropped_packets", st.AtoB.Dropped+st.BtoA.Dropped,
		)
		close(c.finished)
	})
}

// hangup ends an established call with BYE on both legs, or aborts one still
// being set up.
func (c *call) hangup(reason string) {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	switch state {
	case stateSetup:
		c.abortSetup(reason)
	case stateEstablished:
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
}

// abortSetup makes a call in set-up give up: its set-up loop sees the
// cancelled context and cleans up.
func (c *call) abortSetup(reason string) {
	c.mu.Lock()
	if c.endedBy == "" {
		c.endedBy = reason
	}
	c.mu.Unlock()
	c.cancel()
	<-c.finished // the set-up loop ends within byeTimeout of the cancel
}

// bye sends BYE on a leg and waits briefly for the answer; a peer that does
// not answer must not hold the call's resources.
func (c *call) bye(l *leg) {
	req := l.newRequest(c.s, sip.BYE, 0)
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	res, err := c.s.do(ctx, req)
	if err != nil {
		c.log.Debug("BYE failed", "leg", l.side.String(), "error", err)
		return
	}
	if res.StatusCode >= 300 {
		c.log.Debug("BYE refused", "leg", l.side.String(), "status", res.StatusCode)
	}
}

// byeTimeout bounds how long we wait for a BYE's answer: RFC 3261 Timer F
// is 32 s, but the call is over either way.
const byeTimeout = 5 * time.Second

// expectAck registers that we sent a 2xx on l and wait for its ACK.
func (c *call) expectAck(l *leg) chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	c.ackWait[l] = ch
	c.mu.Unlock()
	return ch
}

// gotAck delivers an ACK from l to whoever waits for it.
func (c *call) gotAck(l *leg) {
	c.mu.Lock()
	ch := c.ackWait[l]
	delete(c.ackWait, l)
	c.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// respond2xx sends a 2xx to an INVITE and retransmits it until the ACK
// arrives (RFC 3261 §13.3.1.4: T1 doubling up to T2, for 64*T1). It reports
// whether the ACK came.
func (c *call) respond2xx(l *leg, tx sip.ServerTransaction, res *sip.Response, ack chan struct{}) bool {
	if err := tx.Respond(res); err != nil {
		c.log.Debug("send 2xx failed", "error", err)
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
			return true
		case <-retransmit.C:
			if !reliable {
				tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			return false
		case <-c.finished:
			return false
		}
	}
}
