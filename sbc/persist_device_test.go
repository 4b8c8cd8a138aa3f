package sbc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/digest"
)

// natContact is a device's Contact behind a NAT: a private address
// (TEST-NET-1, so nothing sent there leaves the machine).
const natContact = "sip:alice@192.0.2.20:5060"

// deviceCallConf keeps call state in dir and sends the numbers starting
// "+" to trunk "b", the callee b.
func deviceCallConf(dir string, b *peer) string {
	return fmt.Sprintf("[calls]\nstate_dir = %q\n[[trunk]]\nname = \"b\"\naddress = %q\nsources = [\"127.0.0.2\"]\n[[route]]\nprefix = \"+\"\nto = \"b\"\n", dir, b.addr)
}

// deviceCall has device d, alice behind a NAT, call +14155550100 through
// s to the callee b, with credentials after the 407. It returns the
// INVITE the callee got and the device's 200.
func deviceCall(t *testing.T, s *Server, d, b *peer) (*sip.Request, *sip.Response) {
	t.Helper()
	sbcAddr, ruri, id := s.addrOf("udp"), "sip:+14155550100@"+s.addrOf("udp"), newID()
	body := testSDP("127.0.0.1", 4000)
	invite := func(cseq int, auth string) string {
		return fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\nFrom: <sip:alice@%s>;tag=d%s\nTo: <%s>\nCall-ID: d-%s\nCSeq: %d INVITE\nContact: <%s>\n%sMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
			ruri, d.addr, newID(), sbcAddr, id, ruri, id, cseq, natContact, auth, len(body), body)
	}
	d.send(sbcAddr, invite(1, ""))
	p, err := digest.Parse(d.expectResponse(407).GetHeader("Proxy-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	ha1, _ := digest.HA1(p["algorithm"], "alice", p["realm"], "Str0ng-Passw0rd!")
	p["uri"], p["nc"], p["cnonce"], p["qop"] = ruri, "00000001", "c0ffee", "auth"
	resp, _ := digest.Response(ha1, "INVITE", p)
	d.send(sbcAddr, invite(2, fmt.Sprintf("Proxy-Authorization: Digest username=\"alice\", realm=%q, nonce=%q, uri=%q, response=%q, algorithm=%s, qop=auth, nc=00000001, cnonce=\"c0ffee\"\n",
		p["realm"], p["nonce"], ruri, resp, p["algorithm"])))
	inv := b.expectRequest(sip.INVITE)
	b.reply(sbcAddr, inv, 200, "btag")
	b.expectRequest(sip.ACK)
	ok := d.expectResponse(200)
	d.send(sbcAddr, fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKack%s;rport\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		ok.Contact().Address.String(), d.addr, newID(), ok.From().Value(), ok.To().Value(), ok.CallID().Value()))
	return inv, ok
}

// devicePlane is a control plane holding user alice and, for her calls
// to present, her account's number, calling her.
func devicePlane(t testing.TB) *control.Plane {
	t.Helper()
	cfg := control.Config{DataDir: t.TempDir()}
	cfg.SetDefaults()
	ctx := context.Background()
	p, err := control.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	name, num, target := "Acme", "+14155550400", "user:alice"
	a, _, err := p.CreateAccount(ctx, "cli", control.AccountSpec{Name: &name})
	if err == nil {
		_, err = p.CreateUser(ctx, "cli", a.SID, "alice", "Str0ng-Passw0rd!", "")
	}
	if err == nil {
		_, err = p.CreateNumber(ctx, "cli", a.SID, control.NumberSpec{PhoneNumber: &num, VoiceTarget: &target})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeviceCallTakenOver: a call from a registered device behind a NAT
// survives a restart. The new daemon takes it over before its listeners
// and the registrations are back, sends the callee's BYE to the flow the
// device called from (not its private Contact), and takes the device's
// own BYE from that flow.
func TestDeviceCallTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		byDevice bool
	}{
		{"callee hangs up", false},
		{"device hangs up", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := newPeer(t, "127.0.0.2")
			p := devicePlane(t)
			s1 := startServerWith(t, deviceCallConf(dir, b), nil, func(s *Server) { s.SetControl(p) })
			d := newPeer(t, "127.0.0.51")
			c := register(d, s1.addrOf("udp"), "alice", "", 1, 120, nil)
			if res := register(d, s1.addrOf("udp"), "alice", "Str0ng-Passw0rd!", 2, 120, c); res.StatusCode != 200 {
				t.Fatalf("register: %d", res.StatusCode)
			}
			inv, ok := deviceCall(t, s1, d, b)

			dir2 := handOver(t, s1, dir)
			var adopted, ended int
			s2 := startServerWith(t, deviceCallConf(dir2, b), nil, func(s *Server) {
				s.SetControl(p)
				var err error
				if adopted, ended, err = s.Adopt(); err != nil { // before Listen, as the daemon does
					t.Fatal(err)
				}
			})
			if adopted != 1 || ended != 0 {
				t.Fatalf("Adopt = %d taken over, %d ended; want 1, 0", adopted, ended)
			}

			sbc2 := s2.addrOf("udp")
			if tc.byDevice {
				d.send(sbc2, fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye%s;rport\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: 3 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
					sbc2, d.addr, newID(), ok.From().Value(), ok.To().Value(), ok.CallID().Value()))
				d.expectResponse(200)
				bye := b.expectRequest(sip.BYE)
				b.reply(sbc2, bye, 200, "")
			} else {
				b.send(sbc2, fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye%s\nFrom: %s;tag=btag\nTo: %s\nCall-ID: %s\nCSeq: 5 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
					sbc2, b.addr, newID(), inv.To().Address.String(), inv.From().Value(), inv.CallID().Value()))
				b.expectResponse(200)
				bye := d.expectRequest(sip.BYE) // at its flow
				if bye.CallID().Value() != ok.CallID().Value() || bye.Recipient.String() != natContact {
					t.Errorf("device's BYE: Call-ID %s, Request-URI %s; want its dialog's, to %s", bye.CallID().Value(), bye.Recipient.String(), natContact)
				}
				d.reply(sbc2, bye, 200, "")
			}
			waitIdle(t, s2)
			// The record goes once the plane has written the final row.
			if err := p.FlushCalls(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(records(t, dir2)); n != 0 {
				t.Errorf("%d call records after the taken-over call ended and its row was written, want 0", n)
			}
		})
	}
}

// TestDeviceCallNotTakenOverIsEnded: a device's call whose user is gone,
// with no control plane to ask, or kept by a run that did not record
// devices, is ended with BYE on both legs; the device's at its flow when
// the record has it.
func TestDeviceCallNotTakenOverIsEnded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		user   string // "": a record of an older run, without the device
		target string // "": the device's Contact behind its NAT
		ctl    bool
	}{
		{name: "user gone", user: "bob", ctl: true},
		{name: "no control plane", user: "alice"},
		{name: "older record", target: "flow", ctl: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := newPeer(t, "127.0.0.2")
			// The device's 200 to its BYE passes the read filter (which
			// takes responses from trunks and registered flows only) from
			// trunk t's address.
			d := newPeer(t, "127.0.0.1")
			rec := testRecord(d, b)
			rec.From = "user:alice"
			if tc.user != "" {
				rec.From = "user:" + tc.user
				rec.A.Device = &deviceRecord{User: tc.user, Flow: d.addr, Contact: natContact}
			}
			if tc.target == "" {
				rec.A.Target = natContact
			}
			data, _ := json.Marshal(rec)
			os.WriteFile(filepath.Join(dir, rec.ID+".json"), data, 0o600)
			var p *control.Plane
			if tc.ctl {
				p = devicePlane(t)
			}
			var adopted, ended int
			s := startServerWith(t, deviceCallConf(dir, b), nil, func(s *Server) {
				if p != nil {
					s.SetControl(p)
				}
				var err error
				if adopted, ended, err = s.Adopt(); err != nil {
					t.Fatal(err)
				}
			})
			if adopted != 0 || ended != 1 {
				t.Fatalf("Adopt = %d taken over, %d ended; want 0, 1", adopted, ended)
			}
			for _, p := range []*peer{d, b} {
				bye := p.expectRequest(sip.BYE)
				p.reply(s.addrOf("udp"), bye, 200, "")
			}
			waitIdle(t, s)
			if n := len(records(t, dir)); n != 0 {
				t.Errorf("%d call records left, want 0", n)
			}
		})
	}
}

// TestAdoptWritesEndedRows: the record of a call that ended before its
// final row was written (the daemon killed in between) is not a call to
// take over: its row is written, and the record goes once it is in.
func TestAdoptWritesEndedRows(t *testing.T) {
	dir := t.TempDir()
	p := devicePlane(t)
	sid := "CA" + strings.Repeat("ab", 16)
	now := time.Now().UTC().Truncate(time.Microsecond)
	row := store.Call{SID: sid, From: "+14155550100", To: "+14155550199", Status: store.CallCompleted, SIPCode: 200,
		Created: now.Add(-time.Minute), Answered: now.Add(-time.Minute), Ended: now, Duration: 60}
	b, _ := json.Marshal(callRecord{ID: sid, Ended: &row})
	if err := os.WriteFile(filepath.Join(dir, sid+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var adopted, ended int
	startServerWith(t, deviceCallConf(dir, newPeer(t, "127.0.0.2")), nil, func(s *Server) {
		s.SetControl(p)
		var err error
		if adopted, ended, err = s.Adopt(); err != nil {
			t.Fatal(err)
		}
	})
	if adopted != 0 || ended != 0 {
		t.Fatalf("Adopt = %d taken over, %d ended; want none: the call had ended", adopted, ended)
	}
	if err := p.FlushCalls(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := p.Store().Call(context.Background(), "", sid)
	if err != nil || got.Status != store.CallCompleted || got.Duration != 60 {
		t.Fatalf("row %+v %v; want the record's final row", got, err)
	}
	if n := len(records(t, dir)); n != 0 {
		t.Errorf("%d records after the row was written; want 0", n)
	}
}
