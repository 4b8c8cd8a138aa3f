//go:build linux

package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestLoadThroughSBC is the harness's whole run against the real daemon at
// a modest load: every packet arrives, the daemon's own counters agree with
// the harness's, and every media port is back in the pool at exit.
func TestLoadThroughSBC(t *testing.T) {
	if testing.Short() {
		t.Skip("load test through the sbc daemon: skipped in -short mode")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	calls, d := 200, 5*time.Second
	if raceEnabled { // the daemon and the harness both run under the race detector
		calls, d = 50, 3*time.Second
	}
	sbc := newSBCTarget("", raceEnabled, 30000, nil)
	// Not 127.0.0.1: relay experiments on this machine steer ports there
	// with BPF sk_lookup, which would take the daemon's packets.
	sbc.ip = netip.MustParseAddr("127.0.0.2")
	defer sbc.cleanup()
	if err := sbc.build(t.Context()); err != nil {
		t.Fatal(err)
	}

	res, err := runOnce(t.Context(), testConfig(calls, d), sbc)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	newTable(&out).row(res)
	notes(&out, []*result{res})
	t.Logf("\n%s", out.String())

	checkCounts(t, res, calls, d)
	if res.LossPct >= passLossPct {
		t.Errorf("loss %.3f %% (%d packets); want < %v %%", res.LossPct, res.Lost, passLossPct)
	}
	c := res.Counters
	if c == nil {
		t.Fatal("no counters from the daemon's log")
	}
	if c.CallsEnded != calls || c.EndedBy["caller"] != calls {
		t.Errorf("daemon logged %d calls ended (%v); want %d, all ended_by caller", c.CallsEnded, c.EndedBy, calls)
	}
	// The daemon counts what it sent; the harness what arrived of it.
	if c.Forwarded < res.Received || c.Forwarded > res.Sent || c.Dropped != 0 {
		t.Errorf("daemon forwarded %d, dropped %d; harness sent %d, received %d", c.Forwarded, c.Dropped, res.Sent, res.Received)
	}
	if !c.PortsChecked || c.LeakedPairs != 0 || c.FreePairs != c.TotalPairs || c.TotalPairs < 2*calls {
		t.Errorf("ports at exit: %d of %d pairs free (checked %v); want all of at least %d", c.FreePairs, c.TotalPairs, c.PortsChecked, 2*calls)
	}
	if c.ExitCode != 0 || c.Errors != 0 {
		t.Errorf("daemon exit %d, %d errors logged (first: %s)", c.ExitCode, c.Errors, c.FirstError)
	}
	if r := res.Relay; r == nil || r.RSSBeforeKiB <= 0 || r.RSSCallsKiB <= 0 || r.CPUPerPacketUs <= 0 {
		t.Errorf("relay usage %+v; want RSS and CPU read from /proc", r)
	}
}

// TestLoadSRTP: with -srtp the caller's leg is SRTP and the callee's
// plain, through the daemon and through rtpengine: every packet arrives,
// each A end decrypts what the relay sends it, neither side refuses one.
func TestLoadSRTP(t *testing.T) {
	if testing.Short() {
		t.Skip("SRTP load test through the sbc daemon and rtpengine: skipped in -short mode")
	}
	needRTPengine(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sbc := newSBCTarget("", raceEnabled, 30000, nil)
	sbc.ip = netip.MustParseAddr("127.0.0.2")
	defer sbc.cleanup()
	if err := sbc.build(t.Context()); err != nil {
		t.Fatal(err)
	}
	const calls, d = 20, 2 * time.Second
	for _, tg := range []target{sbc, testRTPengine()} {
		cfg := testConfig(calls, d)
		cfg.srtp = "AES_CM_128_HMAC_SHA1_80"
		res, err := runOnce(t.Context(), cfg, tg)
		if err != nil {
			t.Fatalf("%s: %v", tg.name(), err)
		}
		var out strings.Builder
		newTable(&out).row(res)
		notes(&out, []*result{res})
		t.Logf("\n%s", out.String())
		checkCounts(t, res, calls, d)
		if res.Lost != 0 || res.SRTPFailures != 0 {
			t.Errorf("%s: lost %d, %d packets did not decrypt; want none", tg.name(), res.Lost, res.SRTPFailures)
		}
		if c := res.Counters; tg == target(sbc) && (c == nil || c.SRTPAuthFailures != 0 || c.CallsEnded != calls) {
			t.Errorf("sbc counters %+v: want %d calls ended, no SRTP refused", c, calls)
		}
	}
}
