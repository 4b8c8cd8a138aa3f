package sbc

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestBadRequest(t *testing.T) {
	perr := errors.New(`bad "thing"`)
	tests := []struct {
		name, in string
		want     []string // lines the 400 must contain; nil = no response
	}{
		{"request", "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:1;branch=z9hG4bKx\r\nv: SIP/2.0/UDP p:2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: bad\r\nAuthorization: Digest secret\r\n\r\n",
			[]string{"SIP/2.0 400 Bad Request", "Via: SIP/2.0/UDP h:1;branch=z9hG4bKx", "v: SIP/2.0/UDP p:2", "From: <sip:a@b>;tag=1", "To: <sip:c@d>", "Call-ID: x", "CSeq: bad", `Warning: 399 192.0.2.1 "bad 'thing'"`, "Content-Length: 0"}},
		{"response is never answered", "SIP/2.0 200 OK\r\nVia: x\r\nCSeq: 1 INVITE\r\n\r\n", nil},
		{"no Via", "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", nil},
		{"no CSeq", "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", nil},
		{"garbage", "hello\r\n\r\n", nil},
		{"lowercase method", "options sip:a@b SIP/2.0\r\nVia: x\r\nCSeq: 1\r\n\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := badRequest([]byte(tt.in), perr, "192.0.2.1")
			if tt.want == nil {
				if got != nil {
					t.Fatalf("got a response for %q:\n%s", tt.in, got)
				}
				return
			}
			lines := strings.Split(string(got), "\r\n")
			for _, w := range tt.want {
				if !contains(lines, w) {
					t.Errorf("response lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(string(got), "secret") {
				t.Errorf("response echoes a header it must not:\n%s", got)
			}
		})
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestValidate(t *testing.T) {
	base := "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h:1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:a@h>\r\nContent-Length: 0\r\n\r\n"
	tests := []struct{ name, msg, want string }{
		{"valid", base, ""},
		{"no From tag", strings.Replace(base, ";tag=1", "", 1), "missing From tag"},
		{"no Contact", strings.Replace(base, "Contact: <sip:a@h>\r\n", "", 1), "missing Contact"},
		{"CSeq method", strings.Replace(base, "1 INVITE", "1 BYE", 1), "CSeq method does not match the request method"},
		{"no Call-ID", strings.Replace(base, "Call-ID: c\r\n", "", 1), "missing Call-ID"},
		{"no To", strings.Replace(base, "To: <sip:1@h>\r\n", "", 1), "missing To"},
	}
	for _, tt := range tests {
		m, err := sip.ParseMessage([]byte(tt.msg))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := validate(m.(*sip.Request)); got != tt.want {
			t.Errorf("%s: validate = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzBadRequest(f *testing.F) {
	f.Add([]byte("OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nCSeq: 1\r\n\r\n"))
	f.Add([]byte("INVITE sip:a@b SIP/2.0\r\nv: x\r\nCSeq: 1 INVITE\r\nf: <sip:a@b>\r\n\r\nbody"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := badRequest(data, errors.New("e\r\nInjected: yes"), "192.0.2.1")
		if res == nil {
			return
		}
		if !strings.HasPrefix(string(res), "SIP/2.0 400 Bad Request\r\n") || !strings.HasSuffix(string(res), "\r\n\r\n") {
			t.Fatalf("malformed 400: %q", res)
		}
		if strings.Contains(string(res), "\r\nInjected:") {
			t.Fatalf("the parse error injected a header: %q", res)
		}
	})
}

// sipgo's "ref went negative" warnings (a peer closed a connection under
// a transaction) are debug lines, not warnings.
func TestQuietHandlerDemotesRefWarnings(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		want  string
	}{{slog.LevelInfo, ""}, {slog.LevelDebug, "level=DEBUG"}} {
		var buf bytes.Buffer
		log := slog.New(quietHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})})
		log.Warn("TCP ref went negative", "ref", -1)
		if got := buf.String(); tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("at %v: %q; want %q", tt.level, got, tt.want)
		}
	}
}
