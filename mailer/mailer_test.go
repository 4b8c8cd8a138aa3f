package mailer

import (
	"bufio"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestCompose(t *testing.T) {
	b := compose("sbc@example.net", message{to: "ops@example.com", subject: "Balance low: Café", body: "line 1\nline 2 — ok\n"})
	m, err := mail.ReadMessage(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(m.Header.Get("Subject"))
	if subject != "Balance low: Café" || m.Header.Get("To") != "<ops@example.com>" || m.Header.Get("From") != "<sbc@example.net>" ||
		!strings.HasSuffix(m.Header.Get("Message-ID"), "@example.net>") {
		t.Fatalf("headers %v (subject %q)", m.Header, subject)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	if string(body) != "line 1\r\nline 2 — ok\r\n" {
		t.Fatalf("body %q", body)
	}
}

func TestSendRefusesHeaderInjection(t *testing.T) {
	s := New(Options{Relay: "127.0.0.1:1", From: "sbc@example.net"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	for _, m := range []message{{to: "a@example.com\r\nBcc: x@example.com", subject: "s"}, {to: "a@example.com", subject: "s\nBcc: x@example.com"}} {
		if s.Send(m.to, m.subject, "b") {
			t.Errorf("sent %q / %q", m.to, m.subject)
		}
	}
	if _, _, dropped := s.Stats(); dropped != 2 {
		t.Fatalf("dropped %d", dropped)
	}
}

// TestRequiresSTARTTLS: a relay that does not offer STARTTLS gets no mail
// unless the sender is told it may go in plain text.
func TestRequiresSTARTTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // just enough SMTP: no STARTTLS offered
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 test\r\n")
				var data bool
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch {
					case data && line == ".\r\n":
						data = false
						got <- "delivered"
						io.WriteString(c, "250 ok\r\n")
					case data:
					case strings.HasPrefix(line, "EHLO"):
						io.WriteString(c, "250-test\r\n250 8BITMIME\r\n")
					case strings.HasPrefix(line, "DATA"):
						data = true
						io.WriteString(c, "354 go\r\n")
					case strings.HasPrefix(line, "QUIT"):
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	strict := New(Options{Relay: l.Addr().String(), From: "sbc@example.net", Attempts: 2, Backoff: 10 * time.Millisecond}, log)
	strict.Send("ops@example.com", "s", "b")
	plain := New(Options{Relay: l.Addr().String(), From: "sbc@example.net", PlainText: true}, log)
	plain.Send("ops@example.com", "s", "b")
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the plain-text sender delivered nothing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, failed, _ := strict.Stats(); failed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the STARTTLS-requiring sender did not give up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-got:
		t.Fatal("a mail went out without STARTTLS")
	default:
	}
	strict.Close()
	plain.Close()
}
