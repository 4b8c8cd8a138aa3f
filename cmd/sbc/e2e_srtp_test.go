//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sbc/codec"
	"sbc/sbc"
	"sbc/sbc/sbctest"
	"sbc/sbc/sbctest/rtpengine"
)

// TestE2ESRTPBridge is a call whose one leg is SRTP and the other plain
// RTP, A-law on one side and µ-law on the other, with DTMF numbered
// differently on each: sipp signals both legs, the test sends and receives
// the media, and rtpengine is the SRTP peer, so that what the SBC encrypts
// and decrypts is checked by software it does not share code with. Each
// side must get what the other sent, decrypted and converted sample for
// sample as G.711 says.
func TestE2ESRTPBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp and rtpengine: skipped in -short mode")
	}
	for _, tool := range []string{"sipp", "rtpengine"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("end-to-end SRTP test: %s is not in PATH (make deps installs it)", tool)
		}
	}
	bin := buildSBC(t)
	for _, tc := range []struct {
		name      string
		srtpOnA   bool // else on B
		suiteName string
	}{
		{"A plain PCMU, B SRTP PCMA", false, "AES_CM_128_HMAC_SHA1_80"},
		{"A SRTP PCMU, B plain PCMA", true, "AES_CM_128_HMAC_SHA1_80"},
		{"A SRTP GCM PCMU, B plain PCMA", true, "AEAD_AES_128_GCM"},
	} {
		t.Run(tc.name, func(t *testing.T) { testSRTPBridge(t, bin, tc.srtpOnA, tc.suiteName) })
	}
}

// The media of each side: A speaks µ-law with telephone-event 101, B
// A-law with telephone-event 96.
const (
	aSDPFormats = "0 101"
	bSDPFormats = "8 96"
	aEventPT    = 101
	bEventPT    = 96
)

func testSRTPBridge(t *testing.T, bin string, srtpOnA bool, suite string) {
	secure := sbc.MediaPolicy{SRTP: sbc.SRTPMandatory, Suites: []string{suite}}
	plain := sbc.MediaPolicy{SRTP: sbc.SRTPOff}
	aPolicy, bPolicy := plain, secure
	if srtpOnA {
		aPolicy, bPolicy = secure, plain
	}
	aPolicy.Codecs = []string{"PCMU", "telephone-event"}
	bPolicy.Codecs = []string{"PCMA", "telephone-event"}
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Caller.Media, c.Callee.Media = aPolicy, bPolicy
	}, false)

	// The test's own media sockets, one per side.
	aSock, bSock := listenMedia(t, callerIP), listenMedia(t, calleeIP)
	srtpIP, srtpSock := calleeIP, bSock
	if srtpOnA {
		srtpIP, srtpSock = callerIP, aSock
	}
	// rtpengine between the test's socket and the SBC on the SRTP side:
	// plain RTP to the test, SRTP (only the suite under test) to the SBC.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := 30000 + 2*int(time.Now().UnixNano()%1000)
	rtpe, err := rtpengine.Start(ctx, rtpengine.Config{IP: netip.MustParseAddr(srtpIP), PortMin: base, PortMax: base + 19, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start rtpengine: %v", err)
	}
	defer rtpe.Stop(context.Background())
	formats := bSDPFormats
	if srtpOnA {
		formats = aSDPFormats
	}
	dlg := rtpengine.Dialog{CallID: "srtp-e2e", FromTag: "plain", ToTag: "sbc"}
	toSBC, err := rtpe.Do(ctx, rtpengine.Dict{
		"command": "offer", "call-id": dlg.CallID, "from-tag": dlg.FromTag,
		"sdp": testSDP(srtpIP, port(srtpSock), "RTP/AVP", formats, ""), "ICE": "remove",
		"replace": []string{"origin", "session-connection"}, "transport-protocol": "RTP/SAVP",
		"SDES": sdesOnly(suite), "DTLS": "off",
	})
	if err != nil {
		t.Fatalf("rtpengine offer: %v", err)
	}
	srtpSDP, _ := toSBC["sdp"].(string)
	if n := strings.Count(srtpSDP, "a=crypto:"); n != 1 || !strings.Contains(srtpSDP, "a=crypto:1 "+suite+" ") {
		t.Fatalf("rtpengine's SDP should hold one a=crypto:1 %s, has %d:\n%s", suite, n, srtpSDP)
	}

	aSDP := testSDP(callerIP, port(aSock), "RTP/AVP", aSDPFormats, "")
	bSDP := testSDP(calleeIP, port(bSock), "RTP/AVP", bSDPFormats, "")
	if srtpOnA {
		aSDP = srtpSDP
	} else {
		bSDP = srtpSDP
	}
	uas := e.uas(t, sippOpts{scenario: sdpScenario(t, "uas_sdp.xml", bSDP)})
	uac := e.uac(t, sippOpts{scenario: sdpScenario(t, "uac_sdp.xml", aSDP)})

	// What the SBC sent each side, from sipp's traces: the offer to B (in
	// the INVITE uas got) and the answer to A (in the 200 uac got).
	waitTrace(t, uas, "ACK sip:", 10*time.Second)
	waitTrace(t, uac, "ACK sip:", 10*time.Second)
	toB := sbcSDP(t, uas.messages(t), "INVITE sip:")
	toA := sbcSDP(t, uac.messages(t), "SIP/2.0 200 OK")
	sbcSide := toB
	if srtpOnA {
		sbcSide = toA
	}
	// rtpengine learns the SBC's key from what the SBC sent that side.
	fromRTPE, err := rtpe.Do(ctx, rtpengine.Dict{
		"command": "answer", "call-id": dlg.CallID, "from-tag": dlg.FromTag, "to-tag": dlg.ToTag,
		"sdp": sbcSide, "ICE": "remove", "replace": []string{"origin", "session-connection"},
	})
	if err != nil {
		t.Fatalf("rtpengine answer: %v", err)
	}
	plainSide, _ := fromRTPE["sdp"].(string)

	// Where each test socket sends: the SBC's port for the plain side,
	// rtpengine's plain port for the SRTP side.
	aDst, bDst := sdpMedia(t, toA), sdpMedia(t, toB)
	if srtpOnA {
		aDst = sdpMedia(t, plainSide)
	} else {
		bDst = sdpMedia(t, plainSide)
	}

	// A to B: µ-law samples, every code word once over two packets, and
	// a DTMF event; B must get them as A-law, its event number. And back.
	bridgeOneWay(t, "A to B", aSock, aDst, bSock, 0, 8, codec.UlawToAlaw, aEventPT, bEventPT, 0xa1a1a1a1)
	bridgeOneWay(t, "B to A", bSock, bDst, aSock, 8, 0, codec.AlawToUlaw, bEventPT, aEventPT, 0xb2b2b2b2)

	uac.expectSuccess(t)
	uas.expectSuccessWithin(t, 5*time.Second)
	ended := e.sbc.callsEnded(t, 1)[0]
	for _, k := range []string{"srtp_auth_failures", "srtp_replays", "dtmf_events_dropped"} {
		if n, ok := ended.num(k); !ok || n != 0 {
			t.Errorf("call ended with %s = %v (present %v), want 0: %v", k, n, ok, ended)
		}
	}
	if n, _ := ended.num("dtmf_events"); n != 2 {
		t.Errorf("call ended with dtmf_events = %v, want 2", n)
	}
	if l := rtpe.Logs(); l.Errors > 0 {
		t.Errorf("rtpengine logged %d errors, first: %s", l.Errors, l.FirstError)
	}
	e.stop(t, 1)
}

// sdesOnly are rtpengine's flags to offer suite alone (its "only-" flag is
// newer than Debian's rtpengine).
func sdesOnly(suite string) []string {
	var flags []string
	for _, s := range []string{"AEAD_AES_256_GCM", "AEAD_AES_128_GCM", "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32",
		"AES_192_CM_HMAC_SHA1_80", "AES_192_CM_HMAC_SHA1_32", "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
		"F8_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_32", "NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32"} {
		if s != suite {
			flags = append(flags, "no-"+s)
		}
	}
	return flags
}

// bridgeOneWay sends all 256 code words of law inPT (two packets) and a
// DTMF event from one test socket to dst, and checks they reach the other
// socket as outPT, converted by conv, the event under outEvent.
func bridgeOneWay(t *testing.T, dir string, from *net.UDPConn, dst netip.AddrPort, to *net.UDPConn,
	inPT, outPT uint8, conv func(byte) byte, inEvent, outEvent uint8, ssrc uint32) {
	t.Helper()
	for i := range 2 {
		sendRTP(t, from, dst, samples(inPT, uint16(i+1), ssrc, byte(128*i)))
		checkG711(t, dir, recvRTP(t, to), outPT, conv, byte(128*i))
	}
	sendRTP(t, from, dst, dtmf(inEvent, 3, ssrc))
	checkEvent(t, dir, recvRTP(t, to), outEvent)
}

func listenMedia(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: freeUDPPort(t, ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// testSDP is an audio offer or answer at ip:port with the given formats
// (telephone-event mapped to whichever of 96 or 101 is among them) and
// extra lines.
func testSDP(ip string, port int, proto, formats, extra string) string {
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d %s %s\r\n", ip, ip, port, proto, formats)
	for _, pt := range strings.Fields(formats) {
		switch pt {
		case "0":
			s += "a=rtpmap:0 PCMU/8000\r\n"
		case "8":
			s += "a=rtpmap:8 PCMA/8000\r\n"
		case "96", "101":
			s += "a=rtpmap:" + pt + " telephone-event/8000\r\na=fmtp:" + pt + " 0-15\r\n"
		}
	}
	return s + "a=ptime:20\r\na=sendrecv\r\n" + extra
}

// sdpScenario writes a copy of scenario with body as its SDP.
func sdpScenario(t *testing.T, scenario, body string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sippDir(t), scenario))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.ReplaceAll(strings.TrimRight(body, "\r\n"), "\r\n", "\n")
	out := filepath.Join(t.TempDir(), scenario)
	if err := os.WriteFile(out, bytes.Replace(data, []byte("\nSDP_BODY\n"), []byte("\n"+lines+"\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// sbcSDP returns the SDP of the first message in a sipp trace that starts
// with first (a received request or response).
func sbcSDP(t *testing.T, trace, first string) string {
	t.Helper()
	i := strings.Index(trace, "\n"+first)
	if i < 0 {
		t.Fatalf("no %q in the trace:\n%s", first, trace)
	}
	msg := trace[i+1:]
	if j := strings.Index(msg, "\n\n\n"); j > 0 { // sipp separates traced messages by blank lines
		msg = msg[:j]
	}
	j := strings.Index(msg, "v=0")
	if j < 0 {
		t.Fatalf("no SDP in:\n%s", msg)
	}
	return strings.ReplaceAll(strings.ReplaceAll(msg[j:], "\r\n", "\n"), "\n", "\r\n")
}

var (
	sdpConn = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`)
	sdpPort = regexp.MustCompile(`(?m)^m=audio (\d+) `)
)

// sdpMedia is the RTP address of an SDP's first audio line.
func sdpMedia(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	c, m := sdpConn.FindStringSubmatch(s), sdpPort.FindStringSubmatch(s)
	if c == nil || m == nil {
		t.Fatalf("no c= or m=audio in:\n%s", s)
	}
	p, _ := strconv.Atoi(m[1])
	return netip.AddrPortFrom(netip.MustParseAddr(c[1]), uint16(p))
}

// samples is an RTP packet of 160 G.711 code words from first on.
func samples(pt uint8, seq uint16, ssrc uint32, first byte) []byte {
	b := make([]byte, 12+160)
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := range 160 {
		b[12+i] = first + byte(i)
	}
	return b
}

// dtmf is an RFC 4733 event packet: digit 7, end bit, 800 units.
func dtmf(pt uint8, seq uint16, ssrc uint32) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 0x80, pt|0x80
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	copy(b[12:], []byte{7, 0x8a, 0x03, 0x20})
	return b
}

func sendRTP(t *testing.T, c *net.UDPConn, dst netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
		t.Fatal(err)
	}
}

// recvRTP waits for the next RTP packet (RTCP that rtpengine or the SBC
// may send meanwhile is skipped).
func recvRTP(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no RTP at %v: %v", c.LocalAddr(), err)
		}
		if n >= 12 && (buf[1] < 192 || buf[1] > 223) {
			return bytes.Clone(buf[:n])
		}
	}
}

func checkG711(t *testing.T, dir string, got []byte, pt uint8, conv func(byte) byte, first byte) {
	t.Helper()
	if len(got) != 172 || got[1]&0x7f != pt {
		t.Fatalf("%s: got %d bytes, payload type %d; want 172 bytes, payload type %d", dir, len(got), got[1]&0x7f, pt)
	}
	for i, c := range got[12:] {
		if want := conv(first + byte(i)); c != want {
			t.Fatalf("%s: sample %d is %#02x, want %#02x (code %#02x converted)", dir, i, c, want, first+byte(i))
		}
	}
}

func checkEvent(t *testing.T, dir string, got []byte, pt uint8) {
	t.Helper()
	if len(got) != 16 || got[1]&0x7f != pt || !bytes.Equal(got[12:], []byte{7, 0x8a, 0x03, 0x20}) {
		t.Fatalf("%s: event %x, want payload type %d and payload 078a0320", dir, got, pt)
	}
}

// TestE2EOfferRefused: offers the caller's media policy cannot take, or
// with a broken a=crypto line, get 488 with the reason in a Warning; no
// B-leg is tried and no call state is made.
func TestE2EOfferRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("end-to-end tests: sipp is not in PATH (make deps installs it)")
	}
	e := newE2EEnv(t, buildSBC(t), func(c *sbctest.DaemonConfig) {
		c.Caller.Media = sbc.MediaPolicy{SRTP: sbc.SRTPOptional, Codecs: []string{"PCMA", "PCMU"}}
	}, false)
	callee := listenCallee(t, e)
	const key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
	for _, tc := range []struct {
		name, sdp, reason string
	}{
		{"only G.729", testSDP(callerIP, 4000, "RTP/AVP", "18", "a=rtpmap:18 G729/8000\r\n"), "no allowed codec: offered G729/8000"},
		{"broken a=crypto", testSDP(callerIP, 4000, "RTP/SAVP", "8", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%%%\r\n"), "a=crypto inline key is not base64"},
		{"key of the wrong length", testSDP(callerIP, 4000, "RTP/SAVP", "8", "a=crypto:1 AEAD_AES_128_GCM inline:"+key+"\r\n"), "has a key of 30 bytes, want 28"},
		{"unknown suite", testSDP(callerIP, 4000, "RTP/SAVP", "8", "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"+key+"\r\n"), "AES_256_CM_HMAC_SHA1_80 (unknown suite)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac := e.uac(t, sippOpts{scenario: sdpScenario(t, "uac_refused.xml", tc.sdp)})
			uac.expectSuccess(t)
			msgs := uac.messages(t)
			if !strings.Contains(msgs, tc.reason) {
				t.Errorf("488 without the reason %q:\n%s", tc.reason, msgs)
			}
			if strings.Contains(msgs, "Warning") && strings.Contains(strings.SplitAfter(msgs, "Warning")[1], key) {
				t.Error("the Warning shows the offered key")
			}
		})
	}
	e.stop(t, 0)
	callee.expectNothing(t)
}
