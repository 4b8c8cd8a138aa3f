//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// Timeouts: each ends a call the SBC would otherwise keep forever, and each
// must leave both peers told (BYE, CANCEL or a final response) and no port
// behind (checked by e.stop).

// A call whose media never flows (sipp sends no RTP here) is ended after
// media.timeout with BYE on both legs.
func testMediaTimeout(t *testing.T, e *e2eEnv) {
	e.endedBySBC(t, "media_timeout", e.cfg.MediaTimeout)
}

// An answered call is ended at calls.max_duration with BYE on both legs.
func testMaxDuration(t *testing.T, e *e2eEnv) {
	e.endedBySBC(t, "max_duration", e.cfg.MaxDuration)
}

// endedBySBC runs an answered call neither peer hangs up: both expect a BYE
// from the SBC, which must come for the reason endedBy after about after.
func (e *e2eEnv) endedBySBC(t *testing.T, endedBy string, after time.Duration) {
	t.Helper()
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_callee_bye.xml"})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := e.sbc.callsEnded(t, 1)[0]
	checkEnded(t, end, 200, endedBy)
	wantDuration(t, end, after)
	e.stop(t, 1)
}

// A callee that rings past calls.ring_timeout is cancelled (uas_cancel
// expects the CANCEL) and the caller gets 408.
func testRingTimeout(t *testing.T, e *e2eEnv) {
	uas := e.uas(t, sippOpts{scenario: "uas_cancel.xml"})
	start := time.Now()
	uac := e.uac(t, sippOpts{scenario: "uac_timeout.xml"})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	if took := time.Since(start); took < e.cfg.RingTimeout-200*time.Millisecond {
		t.Errorf("the caller got 408 after %v; want it after ring_timeout %v", took, e.cfg.RingTimeout)
	}
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 408, "ring_timeout")
	e.stop(t, 1)
}

// A callee that never answers the INVITE at all: after Timer B (64*T1) the
// caller gets 408. No CANCEL may be sent without a provisional response
// (RFC 3261 section 9.1); the INVITE is retransmitted meanwhile.
func testNoResponse(t *testing.T, e *e2eEnv) {
	callee := listenCallee(t, e) // receives and never answers
	start := time.Now()
	uac := e.uac(t, sippOpts{scenario: "uac_timeout.xml"})
	uac.expectSuccess(t)
	if took, timerB := time.Since(start), 64*e.cfg.T1; took < timerB-200*time.Millisecond {
		t.Errorf("the caller got 408 after %v; want it after Timer B %v", took, timerB)
	}
	checkEnded(t, e.sbc.callsEnded(t, 1)[0], 408, "no_response")
	e.stop(t, 1)
	invites := 0
	for _, m := range callee.messages() {
		switch {
		case strings.HasPrefix(m, "INVITE "):
			invites++
		case strings.HasPrefix(m, "CANCEL "):
			t.Errorf("the callee got a CANCEL without having sent a provisional response:\n%s", m)
		}
	}
	if invites < 2 {
		t.Errorf("the callee got %d INVITEs; want the INVITE retransmitted over UDP", invites)
	}
}

// A caller that never ACKs the 200: the SBC retransmits it for 64*T1, then
// hangs up both legs (RFC 3261 section 13.3.1.4).
func testNoAck(t *testing.T, e *e2eEnv) {
	uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
	uac := e.uac(t, sippOpts{scenario: "uac_no_ack.xml"})
	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	end := e.sbc.callsEnded(t, 1)[0]
	checkEnded(t, end, 200, "no_ack")
	wantDuration(t, end, 64*e.cfg.T1)
	if !strings.Contains(uac.messages(t), "200 OK") {
		t.Error("the caller's trace shows no 200")
	}
	e.stop(t, 1)
}

// wantDuration checks a call's logged duration against the timer that
// ended it: not before, and not much after.
func wantDuration(t *testing.T, end logLine, want time.Duration) {
	t.Helper()
	d, _ := end.num("duration_s")
	got := time.Duration(d * float64(time.Second))
	if got < want-100*time.Millisecond || got > want+2*time.Second {
		t.Errorf("call lasted %v; want about %v", got, want)
	}
}
