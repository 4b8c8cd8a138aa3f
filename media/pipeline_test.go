package media

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"sbc/codec"
)

var (
	pcmuTE = []codec.Format{{PT: 0, Encoding: codec.PCMU}, {PT: 101, Encoding: codec.TelephoneEvent}}
	pcmaTE = []codec.Format{{PT: 8, Encoding: codec.PCMA}, {PT: 96, Encoding: codec.TelephoneEvent}}
	pcma   = []codec.Format{{PT: 8, Encoding: codec.PCMA}}
)

// keys returns fresh SDES keys for a leg: the peer's and ours.
func keys(t testing.TB, s Suite) *SRTP {
	t.Helper()
	recv, err := s.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	send, err := s.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &SRTP{Suite: s, Recv: recv, Send: send}
}

// srtpPeer is a peer's view of a leg's keys: it encrypts with the key the
// relay receives with and decrypts with the one the relay sends with.
type srtpPeer struct {
	t       testing.TB
	enc     *srtp.Context
	dec     *srtp.Context
	decSave *srtp.Context
}

func newSRTPPeer(t testing.TB, k *SRTP) *srtpPeer {
	t.Helper()
	if k == nil {
		return nil
	}
	p := suites[k.Suite].profile
	enc, err := srtp.CreateContext(k.Recv[:16], k.Recv[16:], p)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(k.Send[:16], k.Send[16:], p)
	if err != nil {
		t.Fatal(err)
	}
	return &srtpPeer{t: t, enc: enc, dec: dec}
}

func (p *srtpPeer) seal(b []byte) []byte {
	if p == nil {
		return b
	}
	out, err := p.enc.EncryptRTP(nil, b, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *srtpPeer) open(b []byte) []byte {
	if p == nil {
		return b
	}
	out, err := p.dec.DecryptRTP(nil, b, nil)
	if err != nil {
		p.t.Fatalf("peer cannot decrypt what the relay sent: %v", err)
	}
	return out
}

func (p *srtpPeer) sealRTCP(b []byte) []byte {
	if p == nil {
		return b
	}
	out, err := p.enc.EncryptRTCP(nil, b, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *srtpPeer) openRTCP(b []byte) []byte {
	if p == nil {
		return b
	}
	out, err := p.dec.DecryptRTCP(nil, b, nil)
	if err != nil {
		p.t.Fatalf("peer cannot decrypt the relay's SRTCP: %v", err)
	}
	return out
}

// audio is an RTP packet of 160 samples, each a different code word.
func audio(pt uint8, seq uint16, ssrc uint32) []byte {
	b := rtpPacket(seq, 160)
	b[1] = pt
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := range 160 {
		b[12+i] = byte(int(seq) + i)
	}
	return b
}

func event(pt uint8, seq uint16, ssrc uint32) []byte {
	b := rtpPacket(seq, 4)
	b[1] = pt
	binary.BigEndian.PutUint32(b[8:], ssrc)
	copy(b[12:], []byte{5, 0x0a, 0x01, 0x40}) // digit 5, 320 units
	return b
}

type bridgeCase struct {
	name         string
	aSRTP, bSRTP Suite // 0: plain
	aFmts, bFmts []codec.Format
}

func bridgeCases() []bridgeCase {
	var cs []bridgeCase
	for _, s := range Suites() {
		cs = append(cs,
			bridgeCase{"SRTP " + s.String() + " to RTP", s, 0, pcmuTE, pcmaTE},
			bridgeCase{"RTP to SRTP " + s.String(), 0, s, pcmaTE, pcmuTE},
			bridgeCase{"SRTP to SRTP " + s.String(), s, AES_CM_128_HMAC_SHA1_80, pcmuTE, pcmuTE},
		)
	}
	return append(cs, bridgeCase{"RTP to RTP transcoded", 0, 0, pcmuTE, pcmaTE})
}

// TestBridge sends audio and DTMF both ways through a terminated stream in
// every SRTP combination: each peer decrypts with its own keys and finds
// its own codec, payload types, one SSRC and consecutive sequence numbers.
func TestBridge(t *testing.T) {
	for _, tc := range bridgeCases() {
		t.Run(tc.name, func(t *testing.T) {
			eachTransport(t, func(t *testing.T) {
				r := newTestRelay(t, nil)
				_, st := newSessionStream(t, r)
				a, b := newPeer(t), newPeer(t)
				var ka, kb *SRTP
				if tc.aSRTP != 0 {
					ka = keys(t, tc.aSRTP)
				}
				if tc.bSRTP != 0 {
					kb = keys(t, tc.bSRTP)
				}
				pa, pb := newSRTPPeer(t, ka), newSRTPPeer(t, kb)
				if err := st.SetMedia(SideA, LegMedia{Formats: tc.aFmts, SRTP: ka}); err != nil {
					t.Fatal(err)
				}
				if err := st.SetMedia(SideB, LegMedia{Formats: tc.bFmts, SRTP: kb}); err != nil {
					t.Fatal(err)
				}
				st.SetRemote(SideA, Peer{RTP: a.addr()})
				st.SetRemote(SideB, Peer{RTP: b.addr()})
				aPort, _ := st.LocalPorts(SideA)
				bPort, _ := st.LocalPorts(SideB)

				relayed := func(from *peer, fromKeys *srtpPeer, to *peer, toKeys *srtpPeer, port int, in []byte) []byte {
					t.Helper()
					from.sendTo(port, fromKeys.seal(in))
					got, _ := to.recv()
					return toKeys.open(got)
				}
				var outSSRC uint32
				for seq := uint16(1); seq <= 4; seq++ {
					in := audio(tc.aFmts[0].PT, seq, 0xaaaa0001)
					got := relayed(a, pa, b, pb, aPort, in)
					checkRelayed(t, got, in, tc.aFmts[0], tc.bFmts[0])
					if seq == 1 {
						outSSRC = binary.BigEndian.Uint32(got[8:])
					} else if s := binary.BigEndian.Uint32(got[8:]); s != outSSRC {
						t.Errorf("packet %d: SSRC %#x, want %#x as before", seq, s, outSSRC)
					}
					if s := binary.BigEndian.Uint16(got[2:]); s != seq {
						t.Errorf("sequence number %d, want %d", s, seq)
					}
				}
				// DTMF: the event keeps its payload, under B's number.
				in := event(tc.aFmts[1].PT, 5, 0xaaaa0001)
				got := relayed(a, pa, b, pb, aPort, in)
				if got[1]&0x7f != tc.bFmts[1].PT || !bytes.Equal(got[12:], in[12:]) {
					t.Errorf("event relayed as PT %d payload %x, want PT %d payload %x", got[1]&0x7f, got[12:], tc.bFmts[1].PT, in[12:])
				}
				// And back.
				back := audio(tc.bFmts[0].PT, 100, 0xbbbb0001)
				checkRelayed(t, relayed(b, pb, a, pa, bPort, back), back, tc.bFmts[0], tc.aFmts[0])

				waitFor(t, "counted", func() bool { s := st.Stats(); return s.AtoB.RTPPackets == 5 && s.BtoA.RTPPackets == 1 })
				s := st.Stats()
				if s.AtoB.RTPPackets != 5 || s.AtoB.Events != 1 || s.BtoA.RTPPackets != 1 || s.AtoB.Dropped != 0 {
					t.Errorf("stats %+v", s)
				}
				if q := s.AtoB.Quality; !q.Measured || q.Expected != 5 || q.Lost != 0 || q.MOS < 4.3 {
					t.Errorf("A to B quality %+v: want 5 expected, none lost, MOS over 4.3", q)
				}
			})
		})
	}
}

// checkRelayed: same header fields but the payload type and SSRC, samples
// converted as G.711 says.
func checkRelayed(t *testing.T, got, in []byte, from, to codec.Format) {
	t.Helper()
	if len(got) != len(in) {
		t.Fatalf("relayed %d bytes, sent %d", len(got), len(in))
	}
	if got[1]&0x7f != to.PT {
		t.Errorf("payload type %d, want %d", got[1]&0x7f, to.PT)
	}
	want := bytes.Clone(in[12:])
	if c := codec.Conversion(from.Encoding, to.Encoding); c != nil {
		c.Convert(want)
	}
	if !bytes.Equal(got[12:], want) {
		t.Errorf("payload %x, want %x", got[12:20], want[:8])
	}
}

// TestBridgeRefuses: a forged, replayed, or unnegotiated packet is dropped
// and counted; a telephone event the other leg cannot take is dropped and
// counted as such.
func TestBridgeRefuses(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	ka := keys(t, AES_CM_128_HMAC_SHA1_80)
	pa := newSRTPPeer(t, ka)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
	st.SetMedia(SideB, LegMedia{Formats: pcma})
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)

	good := pa.seal(audio(0, 1, 7))
	a.sendTo(aPort, good)
	b.recv()
	a.sendTo(aPort, good) // replay
	forged := bytes.Clone(pa.seal(audio(0, 2, 7)))
	forged[20] ^= 1
	a.sendTo(aPort, forged)
	a.sendTo(aPort, pa.seal(event(101, 3, 7)))
	a.sendTo(aPort, pa.seal(audio(18, 4, 7))) // G.729: not negotiated
	a.sendTo(aPort, audio(0, 5, 7))           // plain RTP on an SRTP leg
	b.expectNothing()
	waitFor(t, "all counted", func() bool { return st.Stats().AtoB.Dropped == 5 })
	s := st.Stats().AtoB
	if s.SRTPReplays != 1 || s.SRTPAuthFailures != 2 || s.EventsDropped != 1 || s.RTPPackets != 1 {
		t.Errorf("stats %+v: want 1 replay, 2 auth failures (forged, plain), 1 event dropped, 1 relayed", s)
	}
}

// TestBridgeSSRCChange: the peer changes SSRC and restarts its sequence
// numbers and timestamps; the other leg sees one stream continue.
func TestBridgeSSRCChange(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE})
	st.SetMedia(SideB, LegMedia{Formats: pcmaTE})
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	var last rtp.Header
	for i, p := range [][]byte{audio(0, 1000, 1), audio(0, 1001, 1), audio(0, 7, 2), audio(0, 8, 2)} {
		a.sendTo(aPort, p)
		got, _ := b.recv()
		var h rtp.Header
		if _, err := h.Unmarshal(got); err != nil {
			t.Fatal(err)
		}
		if i > 0 && (h.SSRC != last.SSRC || h.SequenceNumber != last.SequenceNumber+1 || h.Timestamp <= last.Timestamp) {
			t.Errorf("packet %d: ssrc %#x seq %d ts %d after ssrc %#x seq %d ts %d", i, h.SSRC, h.SequenceNumber, h.Timestamp, last.SSRC, last.SequenceNumber, last.Timestamp)
		}
		last = h
	}
}

// TestBridgeRTCP: an SR from A reaches B naming the SSRC B sees A's media
// come with; B's report about that stream reaches A naming A's own SSRC,
// with A's sequence numbers. SRTCP is decrypted and encrypted on the way.
func TestBridgeRTCP(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	ka := keys(t, AES_CM_128_HMAC_SHA1_80)
	pa := newSRTPPeer(t, ka)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
	st.SetMedia(SideB, LegMedia{Formats: pcmaTE})
	st.SetRemote(SideA, Peer{RTP: a.addr(), Mux: true})
	st.SetRemote(SideB, Peer{RTP: b.addr(), Mux: true})
	aPort, _ := st.LocalPorts(SideA)
	bPort, _ := st.LocalPorts(SideB)

	const aSSRC = 0xa0a0a0a0
	a.sendTo(aPort, pa.seal(audio(0, 500, aSSRC)))
	got, _ := b.recv()
	relaySSRC := binary.BigEndian.Uint32(got[8:])
	if relaySSRC == aSSRC {
		t.Fatalf("relay kept the peer's SSRC")
	}

	sr := make([]byte, 52) // SR with one report block
	sr[0], sr[1] = 0x81, rtcpSR
	binary.BigEndian.PutUint16(sr[2:], uint16(len(sr)/4-1))
	binary.BigEndian.PutUint32(sr[4:], aSSRC)
	binary.BigEndian.PutUint32(sr[16:], 500*160)
	a.sendTo(aPort, pa.sealRTCP(sr))
	got, _ = b.recv()
	if s := binary.BigEndian.Uint32(got[4:]); s != relaySSRC {
		t.Errorf("SR sender SSRC %#x, want the relay's %#x", s, relaySSRC)
	}

	rr := make([]byte, 32)
	rr[0], rr[1] = 0x81, rtcpRR
	binary.BigEndian.PutUint16(rr[2:], uint16(len(rr)/4-1))
	binary.BigEndian.PutUint32(rr[4:], 0xb0b0b0b0)
	binary.BigEndian.PutUint32(rr[8:], relaySSRC)
	binary.BigEndian.PutUint32(rr[16:], 500)
	b.sendTo(bPort, rr)
	got, _ = a.recv()
	plain := pa.openRTCP(got)
	if s := binary.BigEndian.Uint32(plain[8:]); s != aSSRC {
		t.Errorf("report block about %#x, want A's own SSRC %#x", s, aSSRC)
	}
	if s := binary.BigEndian.Uint32(plain[16:]); s != 500 {
		t.Errorf("extended highest sequence %d, want 500", s)
	}
}

// TestTransformDoesNotAllocate: decrypt, transcode, renumber and encrypt
// make no heap allocation per packet. Under -race pion's AES-CM takes its
// XOR buffer from a sync.Pool, which the race detector empties at random:
// make test runs this test without -race too.
func TestTransformDoesNotAllocate(t *testing.T) {
	for _, s := range Suites() {
		if raceEnabled && s != AEAD_AES_128_GCM {
			t.Logf("%s: allocations not checked under -race (sync.Pool); make test checks them without", s)
			continue
		}
		st, a, _ := forwardingStream(t)
		ka, kb := keys(t, s), keys(t, s)
		st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
		st.SetMedia(SideB, LegMedia{Formats: pcmaTE, SRTP: kb})
		pa := newSRTPPeer(t, ka)
		const runs = 300
		pkts := make([][]byte, runs+1)
		for i := range pkts {
			pkts[i] = pa.seal(audio(0, uint16(i+1), 9))
		}
		i := 0
		buf := make([]byte, readBuffer)
		n := testing.AllocsPerRun(runs, func() {
			b := buf[:copy(buf, pkts[i])]
			i++
			st.receive(SideA, rtpSock, b, a.addr())
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", s, n)
		}
		if got := st.Stats().AtoB; got.RTPPackets != runs+1 {
			t.Errorf("%s: %d relayed of %d: %+v", s, got.RTPPackets, runs+1, got)
		}
	}
}

// BenchmarkTransform measures one 172-byte G.711 packet (12-byte header,
// 160 samples) through the userspace path with each step.
func BenchmarkTransform(b *testing.B) {
	cases := []struct {
		name         string
		aSRTP, bSRTP Suite
		bFmts        []codec.Format
	}{
		{"plain", 0, 0, pcmuTE},
		{"PCMU-PCMA", 0, 0, pcmaTE},
		{"SRTP-SRTP/AES_CM_128_HMAC_SHA1_80", AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_80, pcmuTE},
		{"SRTP-SRTP/AEAD_AES_128_GCM", AEAD_AES_128_GCM, AEAD_AES_128_GCM, pcmuTE},
		{"SRTP-RTP/AES_CM_128_HMAC_SHA1_80", AES_CM_128_HMAC_SHA1_80, 0, pcmuTE},
		{"SRTP-SRTP+PCMU-PCMA/AES_CM_128_HMAC_SHA1_80", AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_80, pcmaTE},
		{"SRTP-SRTP+PCMU-PCMA/AEAD_AES_128_GCM", AEAD_AES_128_GCM, AEAD_AES_128_GCM, pcmaTE},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			st, _, _ := forwardingStream(b)
			var ka, kb *SRTP
			if tc.aSRTP != 0 {
				ka = keys(b, tc.aSRTP)
			}
			if tc.bSRTP != 0 {
				kb = keys(b, tc.bSRTP)
			}
			st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
			st.SetMedia(SideB, LegMedia{Formats: tc.bFmts, SRTP: kb})
			in, out := &st.legs[SideA], &st.legs[SideB]
			pa := newSRTPPeer(b, ka)
			// Packets sealed ahead, so the benchmark times the relay only.
			const ring = 1 << 15
			pkts := make([][]byte, ring)
			for i := range pkts {
				pkts[i] = pa.seal(audio(0, uint16(i+1), 9))
			}
			buf := make([]byte, readBuffer)
			b.ReportAllocs()
			b.SetBytes(172)
			i := 0
			for b.Loop() {
				if i > 0 && i%ring == 0 { // the replay window refuses a second round
					b.StopTimer()
					for j := range pkts {
						pkts[j] = pa.seal(audio(0, uint16(j+1+i), 9))
					}
					b.StartTimer()
				}
				p := pkts[i%ring]
				i++
				if _, ok := st.transform(in, out, buf[:copy(buf, p)], false, 1); !ok {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// BenchmarkPionSRTP is pion/srtp alone on the same packet: decrypt with one
// context, encrypt with another, as the relay does. Transform's own cost is
// the difference, measured in the same run.
func BenchmarkPionSRTP(b *testing.B) {
	for _, s := range []Suite{AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM} {
		b.Run(s.String(), func(b *testing.B) {
			k := keys(b, s)
			pa := newSRTPPeer(b, k)
			rx, err := s.newContext(k.Recv, true)
			if err != nil {
				b.Fatal(err)
			}
			tx, err := s.newContext(k.Send, false)
			if err != nil {
				b.Fatal(err)
			}
			const ring = 1 << 15
			pkts := make([][]byte, ring)
			for i := range pkts {
				pkts[i] = pa.seal(audio(0, uint16(i+1), 9))
			}
			buf := make([]byte, readBuffer)
			var hdr rtp.Header
			b.ReportAllocs()
			b.SetBytes(172)
			i := 0
			for b.Loop() {
				if i > 0 && i%ring == 0 {
					b.StopTimer()
					for j := range pkts {
						pkts[j] = pa.seal(audio(0, uint16(j+1+i), 9))
					}
					b.StartTimer()
				}
				p := buf[:copy(buf, pkts[i%ring])]
				i++
				plain, err := rx.DecryptRTP(p[:0], p, &hdr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.EncryptRTP(plain[:0], plain, &hdr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBridgeReinvite: a re-INVITE gives B new keys and A-law instead of
// µ-law mid-call; B's stream carries on with the same SSRC and the next
// sequence number, under the new key.
func TestBridgeReinvite(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	kb := keys(t, AES_CM_128_HMAC_SHA1_80)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE})
	st.SetMedia(SideB, LegMedia{Formats: pcmuTE, SRTP: kb})
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	var last rtp.Header
	for i := range 4 {
		if i == 2 { // the re-INVITE's answer
			kb = keys(t, AEAD_AES_128_GCM)
			if err := st.SetMedia(SideB, LegMedia{Formats: pcmaTE, SRTP: kb}); err != nil {
				t.Fatal(err)
			}
		}
		in := audio(0, uint16(10+i), 3)
		a.sendTo(aPort, in)
		got, _ := b.recv()
		plain := newSRTPPeer(t, kb).open(got)
		var h rtp.Header
		if _, err := h.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		wantPT := uint8(0)
		if i >= 2 {
			wantPT = 8
			checkRelayed(t, plain, in, pcmuTE[0], pcma[0])
		}
		if h.PayloadType != wantPT || (i > 0 && (h.SSRC != last.SSRC || h.SequenceNumber != last.SequenceNumber+1)) {
			t.Errorf("packet %d: PT %d ssrc %#x seq %d after ssrc %#x seq %d", i, h.PayloadType, h.SSRC, h.SequenceNumber, last.SSRC, last.SequenceNumber)
		}
		last = h
	}
}

// TestBridgeLatchesAuthenticated: on an SRTP leg a source is latched only
// once its packet authenticates; a forged one from elsewhere, first, takes
// nothing over.
func TestBridgeLatchesAuthenticated(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b, forger := newPeer(t), newPeer(t), newPeer(t)
	ka := keys(t, AES_CM_128_HMAC_SHA1_80)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
	st.SetMedia(SideB, LegMedia{Formats: pcmuTE})
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	forged := newSRTPPeer(t, keys(t, AES_CM_128_HMAC_SHA1_80)).seal(audio(0, 1, 5))
	forger.sendTo(aPort, forged)
	b.expectNothing()
	a.sendTo(aPort, newSRTPPeer(t, ka).seal(audio(0, 2, 5)))
	b.recv()
	if got := st.legs[SideA].remote.Load().latched[rtpSock]; got != a.addr() {
		t.Fatalf("latched %v, want the authentic peer %v", got, a.addr())
	}
}

// TestRewriterMonotonic: towards an SRTP leg no output sequence number is
// sent twice (a late packet after an SSRC change, a duplicate), and a
// large forward jump is rebased.
func TestRewriterMonotonic(t *testing.T) {
	var w rewriter
	send := func(ssrc uint32, seq uint16) (uint16, bool) {
		o, _, _, ok := w.apply(ssrc, seq, uint32(seq)*160, int64(seq)*160, true, true)
		return o, ok
	}
	o1, _ := send(1, 1000)
	o2, _ := send(1, 1001)
	o3, _ := send(2, 8)
	if o2 != o1+1 || o3 != o2+1 {
		t.Fatalf("out %d %d %d, want consecutive", o1, o2, o3)
	}
	if _, ok := send(2, 7); ok {
		t.Error("a late packet after the SSRC change was sent again under a spent index")
	}
	if _, ok := send(2, 8); ok {
		t.Error("a duplicate was sent again")
	}
	if o, ok := send(2, 8+20000); !ok || o != o3+1 {
		t.Errorf("a jump of 20000: out %d (sent %v), want %d", o, ok, o3+1)
	}
}

// TestBridgeRolloverRecovery: a fresh receiving context (a call taken over
// after a restart) meets a peer whose sequence numbers wrapped twice: the
// relay finds the rollover count and decrypts; a forgery still fails.
func TestBridgeRolloverRecovery(t *testing.T) {
	r := newTestRelay(t, nil)
	_, st := newSessionStream(t, r)
	a, b := newPeer(t), newPeer(t)
	ka := keys(t, AEAD_AES_128_GCM)
	st.SetMedia(SideA, LegMedia{Formats: pcmuTE, SRTP: ka})
	st.SetMedia(SideB, LegMedia{Formats: pcmuTE})
	st.SetRemote(SideA, Peer{RTP: a.addr()})
	st.SetRemote(SideB, Peer{RTP: b.addr()})
	aPort, _ := st.LocalPorts(SideA)
	pa := newSRTPPeer(t, ka)
	pa.enc.SetROC(77, 2)
	a.sendTo(aPort, pa.seal(audio(0, 500, 77)))
	got, _ := b.recv()
	checkRelayed(t, got, audio(0, 500, 77), pcmuTE[0], pcmuTE[0])
	if n := st.Stats().AtoB.SRTPAuthFailures; n != 0 {
		t.Errorf("%d authentication failures", n)
	}
}
