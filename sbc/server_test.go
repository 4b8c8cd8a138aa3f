package sbc

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"sbc/media"
)

// startServer runs a Server on loopback with ephemeral SIP ports. The trunk
// "t" owns 127.0.0.1 (where test clients send from) and routes to itself.
func startServer(t testing.TB, extra string) *Server {
	t.Helper()
	return startServerWith(t, extra, nil)
}

// startServerWith is startServer with change applied to the config and
// before run on the server before it listens.
func startServerWith(t testing.TB, extra string, change func(*Config), before ...func(*Server)) *Server {
	t.Helper()
	cfg, err := ParseConfig(fmt.Sprintf(`
[log]
level = "debug"
[sip]
public_ip = "127.0.0.1"
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tcp"
address = "127.0.0.1:0"
[media]
bind_ip = "127.0.0.1"
port_min = 41000
port_max = 41099
[[trunk]]
name = "t"
address = "127.0.0.1:9"
sources = ["127.0.0.1"]
[[route]]
from = "t"
prefix = "1"
to = "t"
%s`, extra))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(extra, "state_dir") {
		none := "" // not the machine's /var/lib/sbc/calls
		cfg.Calls.StateDir = &none
	}
	if !strings.Contains(extra, "data_dir") {
		cfg.Control.DataDir = t.TempDir() // a self-signed TLS certificate lands there, not in /var/lib/sbc
	}
	if change != nil {
		change(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	relay, err := media.NewRelay(cfg.Media, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(cfg, relay, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(s)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Drain(0)
		s.Close()
		relay.Close()
	})
	return s
}

// exchange sends one datagram from src and returns the first non-100
// response's status line and Warning header, or "" after the timeout.
func exchange(t *testing.T, src, dst string, msg string) (status, warning string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", src+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ua, _ := net.ResolveUDPAddr("udp4", dst)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	msg = strings.ReplaceAll(msg, "{via}", "Via: SIP/2.0/UDP "+conn.LocalAddr().String()+";branch=z9hG4bK"+newID())
	if _, err := conn.WriteTo([]byte(msg), ua); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return "", ""
		}
		lines := strings.Split(string(buf[:n]), "\r\n")
		if strings.HasPrefix(lines[0], "SIP/2.0 100 ") {
			continue
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "Warning:") {
				warning = l
			}
		}
		return lines[0], warning
	}
}

func TestRequestScreening(t *testing.T) {
	s := startServer(t, "")
	dst := s.Addrs()[0].String()
	const hdrs = "From: <sip:a@x>;tag=1\nTo: <sip:100@y>\nCall-ID: c1\nMax-Forwards: 70\n"
	sdpBody := "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
	tests := []struct {
		name, src, msg, status, warning string
	}{
		{"garbage is dropped", "127.0.0.1", "hello world\n\n", "", ""},
		{"unparseable CSeq", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: x OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "ParseUint"},
		{"bad Via", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\nVia: garbage\n" + hdrs + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "Via"},
		{"truncated body", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 OPTIONS\nContent-Length: 99\n\n", "SIP/2.0 400 Bad Request", "body incomplete"},
		{"bad From", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\nFrom: <<<\nTo: <sip:1@y>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "bracket"},
		{"missing Call-ID", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:1@y>\nCSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "missing Call-ID"},
		{"CSeq method mismatch", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "CSeq method"},
		{"INVITE without Contact", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContent-Length: 0\n\n", "SIP/2.0 400 Bad Request", "missing Contact"},
		{"late offer refused", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Length: 0\n\n", "SIP/2.0 488 Not Acceptable Here", "late offer"},
		{"malformed SDP", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Type: application/sdp\nContent-Length: 5\n\nv=x\n", "SIP/2.0 488 Not Acceptable Here", "malformed SDP"},
		{"not SDP", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Type: text/plain\nContent-Length: 4\n\nabc\n", "SIP/2.0 415 Unsupported Media Type", ""},
		{"required extension", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nRequire: 100rel\nContact: <sip:a@127.0.0.1>\nContent-Type: application/sdp\nContent-Length: " + fmt.Sprint(len(sdpBody)+6) + "\n\n" + sdpBody, "SIP/2.0 420 Bad Extension", ""},
		{"Max-Forwards 0", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:1@y>\nCall-ID: c2\nMax-Forwards: 0\nCSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Length: 0\n\n", "SIP/2.0 483 Too Many Hops", ""},
		{"no route", "127.0.0.1", "INVITE sip:200@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Type: application/sdp\nContent-Length: " + fmt.Sprint(len(sdpBody)+6) + "\n\n" + sdpBody, "SIP/2.0 404 Not Found", ""},
		{"BYE for unknown dialog", "127.0.0.1", "BYE sip:100@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:1@y>;tag=nope\nCall-ID: c3\nCSeq: 2 BYE\nContent-Length: 0\n\n", "SIP/2.0 481 Call/Transaction Does Not Exist", ""},
		{"re-INVITE for unknown dialog", "127.0.0.1", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\nFrom: <sip:a@x>;tag=1\nTo: <sip:1@y>;tag=nope\nCall-ID: c4\nCSeq: 2 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Length: 0\n\n", "SIP/2.0 481 Call/Transaction Does Not Exist", ""},
		{"OPTIONS", "127.0.0.1", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 200 OK", ""},
		{"unknown method", "127.0.0.1", "FOO sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 FOO\nContent-Length: 0\n\n", "SIP/2.0 501 Not Implemented", ""},
		{"unknown source", "127.0.0.99", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 403 Forbidden", ""},
		{"unknown source INVITE", "127.0.0.99", "INVITE sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: 1 INVITE\nContact: <sip:a@127.0.0.99>\nContent-Type: application/sdp\nContent-Length: " + fmt.Sprint(len(sdpBody)+6) + "\n\n" + sdpBody, "SIP/2.0 403 Forbidden", ""},
		{"unknown source, malformed: silence", "127.0.0.99", "OPTIONS sip:100@127.0.0.1 SIP/2.0\n{via}\n" + hdrs + "CSeq: x OPTIONS\nContent-Length: 0\n\n", "", ""},
	}
	free := s.relay.FreePairs()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, warning := exchange(t, tt.src, dst, tt.msg)
			if status != tt.status {
				t.Fatalf("status = %q; want %q", status, tt.status)
			}
			if !strings.Contains(warning, tt.warning) {
				t.Errorf("warning = %q; want it to contain %q", warning, tt.warning)
			}
			if n := s.ActiveCalls(); n != 0 {
				t.Errorf("%d calls active after a refused request; want no state", n)
			}
			if f := s.relay.FreePairs(); f != free {
				t.Errorf("%d port pairs free; want %d (no media state)", f, free)
			}
		})
	}
}
