package sbc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/codec"
	"sbc/media"
)

// answer brings the call startCall began up: the callee answers, the caller
// ACKs. It returns the INVITE the callee got and the caller's 200.
func answer(t *testing.T, s *Server, a, b *peer, sbcAddr string) (*sip.Request, *sip.Response) {
	t.Helper()
	inv := b.expectRequest(sip.INVITE)
	b.reply(s.Addrs()[0].String(), inv, 200, "btag")
	b.expectRequest(sip.ACK)
	ok := a.expectResponse(200)
	a.send(sbcAddr, fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKack%s\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		ok.Contact().Address.String(), a.addr, newID(), ok.From().Value(), ok.To().Value(), ok.CallID().Value()))
	return inv, ok
}

// records returns the call records in dir.
func records(t *testing.T, dir string) []callRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []callRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r callRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, r)
	}
	return out
}

// TestCallStateFollowsTheCall: a record is written when the call is
// answered and removed when it ends.
func TestCallStateFollowsTheCall(t *testing.T) {
	dir := t.TempDir()
	s, b := startCallee(t, fmt.Sprintf("[calls]\nstate_dir = %q\n", dir))
	if _, _, err := s.Adopt(); err != nil {
		t.Fatal(err)
	}
	a := newPeer(t, "127.0.0.1")
	sbcAddr := s.Addrs()[0].String()
	a.send(sbcAddr, inviteFrom(a, sbcAddr))
	inv, ok := answer(t, s, a, b, sbcAddr)
	recs := records(t, dir)
	if len(recs) != 1 {
		t.Fatalf("%d call records while the call is up, want 1", len(recs))
	}
	r := recs[0]
	if r.A.CallID != ok.CallID().Value() || r.B.CallID != inv.CallID().Value() || r.B.RemoteTag != "btag" ||
		r.From != "t" || r.To != "b" || len(r.Streams) != 1 || r.Streams[0].Ports[0] == 0 || r.Streams[0].Peers[1].RTP.Port() != 4100 {
		t.Errorf("record %+v does not match the call", r)
	}
	// The caller hangs up.
	from, to := ok.From().Value(), ok.To().Value()
	a.send(sbcAddr, fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye%s\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		sbcAddr, a.addr, newID(), from, to, ok.CallID().Value()))
	a.expectResponse(200)
	bye := b.expectRequest(sip.BYE)
	b.reply(s.Addrs()[0].String(), bye, 200, "")
	waitIdle(t, s)
	if n := len(records(t, dir)); n != 0 {
		t.Errorf("%d call records after the call ended, want 0", n)
	}
}

// handOver is s's daemon "dying": the records in dir are copied to a new
// directory, which it returns, before its test cleanup ends the calls, and
// its media ports are let go.
func handOver(t *testing.T, s *Server, dir string) string {
	t.Helper()
	dir2 := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir2, filepath.Base(f)), data, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.relay.Close()
	return dir2
}

// TestCallTakenOver: a second server started on the first one's call
// records takes the call over: the callee's BYE is answered and the caller
// gets one, in its dialog with a higher CSeq.
func TestCallTakenOver(t *testing.T) {
	dir := t.TempDir()
	s1, b := startCallee(t, fmt.Sprintf("[calls]\nstate_dir = %q\n", dir))
	if _, _, err := s1.Adopt(); err != nil {
		t.Fatal(err)
	}
	a := newPeer(t, "127.0.0.1")
	sbc1 := s1.Addrs()[0].String()
	a.send(sbc1, inviteFrom(a, sbc1))
	inv, _ := answer(t, s1, a, b, sbc1)

	dir2 := handOver(t, s1, dir)
	os.WriteFile(filepath.Join(dir2, "junk.json"), []byte("{half"), 0o600)

	s2, _ := startCalleeAt(t, b, fmt.Sprintf("[calls]\nstate_dir = %q\n", dir2))
	adopted, ended, err := s2.Adopt()
	if err != nil || adopted != 1 || ended != 0 {
		t.Fatalf("Adopt = %d taken over, %d ended, %v; want 1, 0", adopted, ended, err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "junk.json")); !os.IsNotExist(err) {
		t.Error("an unreadable record was kept")
	}
	if s2.ActiveCalls() != 1 || s2.relay.FreePairs() != s2.relay.TotalPairs()-2 {
		t.Fatalf("after Adopt: %d calls, %d of %d pairs free; want 1 call holding 2 pairs", s2.ActiveCalls(), s2.relay.FreePairs(), s2.relay.TotalPairs())
	}

	// The callee hangs up, to the new daemon.
	sbc2 := s2.Addrs()[0].String()
	b.send(sbc2, fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye%s\nFrom: %s;tag=btag\nTo: %s\nCall-ID: %s\nCSeq: 5 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
		sbc2, b.addr, newID(), inv.To().Address.String(), inv.From().Value(), inv.CallID().Value()))
	b.expectResponse(200)
	bye := a.expectRequest(sip.BYE)
	if bye.CSeq().SeqNo <= 1 || !strings.HasPrefix(bye.CallID().Value(), "a-") {
		t.Errorf("caller's BYE: CSeq %d, Call-ID %s; want its own dialog, CSeq above the INVITE's", bye.CSeq().SeqNo, bye.CallID().Value())
	}
	a.reply(sbc2, bye, 200, "")
	waitIdle(t, s2)
	if n := len(records(t, dir2)); n != 0 {
		t.Errorf("%d call records after the taken-over call ended, want 0", n)
	}
}

// TestCallNotTakenOverIsEnded: a record whose media cannot come back (its
// ports outside the new range) or whose trunk left the config ends the call
// with BYE on both legs.
func TestCallNotTakenOverIsEnded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		from  string
		ports [2]int
	}{
		{"ports outside the range", "t", [2]int{30000, 30002}},
		{"trunk gone", "gone", [2]int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := newPeer(t, "127.0.0.2")
			a := newPeer(t, "127.0.0.1")
			rec := testRecord(a, b)
			rec.From, rec.Streams[0].Ports = tc.from, tc.ports
			data, _ := json.Marshal(rec)
			os.WriteFile(filepath.Join(dir, "c0ffee.json"), data, 0o600)
			s, _ := startCalleeAt(t, b, fmt.Sprintf("[calls]\nstate_dir = %q\n", dir))
			adopted, ended, err := s.Adopt()
			if err != nil || adopted != 0 || ended != 1 {
				t.Fatalf("Adopt = %d, %d, %v; want 0 taken over, 1 ended", adopted, ended, err)
			}
			for _, p := range []*peer{a, b} {
				bye := p.expectRequest(sip.BYE)
				p.reply(s.Addrs()[0].String(), bye, 200, "")
			}
			waitIdle(t, s)
			if n := len(records(t, dir)); n != 0 {
				t.Errorf("%d call records left, want 0", n)
			}
		})
	}
}

// testRecord is a call's record between trunks t (a) and b (b).
func testRecord(a, b *peer) callRecord {
	return callRecord{ID: "c0ffee", From: "t", To: "b", Answered: time.Now(), Offered: 1,
		A: legRecord{Transport: "udp", CallID: "a-1", LocalTag: "s1", RemoteTag: "a1", Local: "sip:200@127.0.0.1",
			Remote: "sip:a@127.0.0.1", Target: "sip:a@" + a.addr, LocalSeq: 1, RemoteSeq: 1},
		B: legRecord{Transport: "udp", CallID: "b-1", LocalTag: "s2", RemoteTag: "b1", Local: "sip:a@127.0.0.1",
			Remote: "sip:200@127.0.0.2", Target: "sip:200@" + b.addr, LocalSeq: 1, RemoteSeq: 0},
		Streams: []streamRecord{{}},
	}
}

// TestStateDirTrust: records are trusted only from a directory nobody else
// may write to, and only as regular files of sane size: links, oversized
// records, records with too many streams and half-written ones are dropped
// without a call being made of them.
func TestStateDirTrust(t *testing.T) {
	dir := t.TempDir()
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.2")
	rec := testRecord(a, b)
	data, _ := json.Marshal(rec)
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	os.WriteFile(target, data, 0o600)
	os.Symlink(target, filepath.Join(dir, "c0ffee.json"))
	big := rec
	big.ID = "big"
	big.A.Routes = []string{strings.Repeat("x", maxRecordSize)}
	many := rec
	many.ID = "many"
	many.Streams = make([]streamRecord, maxStreams+1)
	for _, r := range []callRecord{big, many} {
		data, _ := json.Marshal(r)
		os.WriteFile(filepath.Join(dir, r.ID+".json"), data, 0o600)
	}
	os.WriteFile(filepath.Join(dir, "half.json"+tmpSuffix), data[:10], 0o600)

	os.Chmod(dir, 0o777)
	s, _ := startCalleeAt(t, b, fmt.Sprintf("[calls]\nstate_dir = %q\n", dir))
	if _, _, err := s.Adopt(); err == nil || !strings.Contains(err.Error(), "lets others write") {
		t.Fatalf("Adopt from a directory of mode 0777: %v; want a refusal", err)
	}
	os.Chmod(dir, 0o700)
	adopted, ended, err := s.Adopt()
	if err != nil || adopted != 0 || ended != 0 {
		t.Fatalf("Adopt = %d, %d, %v; want nothing taken over or ended", adopted, ended, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the state directory: %v; want nothing", left)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the link's target was touched: %v", err)
	}
	for _, p := range []*peer{a, b} {
		if m := p.recv(300 * time.Millisecond); m != nil {
			t.Errorf("peer %s got %v; want nothing", p.addr, m)
		}
	}
}

// TestMediaRecord: what a leg negotiated survives the state file.
func TestMediaRecord(t *testing.T) {
	in := &media.LegMedia{
		Formats: []codec.Format{{PT: 8, Encoding: codec.PCMA}, {PT: 96, Encoding: codec.TelephoneEvent}},
		SRTP:    &media.SRTP{Suite: media.AEAD_AES_128_GCM, Recv: bytes.Repeat([]byte{1}, 28), Send: bytes.Repeat([]byte{2}, 28)},
	}
	b, err := json.Marshal(newMediaRecord(in))
	if err != nil {
		t.Fatal(err)
	}
	var r mediaRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	out, err := r.legMedia()
	if err != nil || !reflect.DeepEqual(&out, in) {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}
	for _, bad := range []mediaRecord{
		{Formats: []formatRecord{{PT: 8, Encoding: "G729"}}},
		{Formats: []formatRecord{{PT: 200, Encoding: "PCMA"}}},
		{Suite: "F8_128_HMAC_SHA1_80"},
	} {
		if _, err := bad.legMedia(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
