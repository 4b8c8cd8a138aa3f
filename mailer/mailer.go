// Package mailer sends the SBC's notification e-mails (an account's low
// balance) through the operator's SMTP relay with net/smtp: in the
// background, from a bounded queue, retried with backoff, never holding up
// the caller.
package mailer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"sync"
	"time"
)

// Options of a Sender; zero fields take the defaults.
type Options struct {
	Relay string // host:port of the SMTP relay
	From  string // the envelope and header sender, a bare address
	// PlainText sends without STARTTLS: only for a relay on loopback.
	// Otherwise the relay must offer STARTTLS (TLS 1.2+, its certificate
	// checked) or nothing is sent.
	PlainText bool
	// Username and Password, when set, log in (AUTH PLAIN, over TLS).
	Username, Password string
	RootCAs            *x509.CertPool // nil: the system's
	Timeout            time.Duration  // one attempt; default 30s
	QueueSize          int            // mails waiting at most; default 1000
	Attempts           int            // default 3
	Backoff            time.Duration  // before the first retry, doubling; default 10s
}

// Sender sends mails one at a time from its queue. Send is safe for
// concurrent use and never blocks; Close stops it.
type Sender struct {
	o    Options
	log  *slog.Logger
	q    chan message
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu                    sync.Mutex
	sent, failed, dropped uint64
	closed                bool
}

type message struct{ to, subject, body string }

// New starts a Sender.
func New(o Options, log *slog.Logger) *Sender {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Second
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Sender{o: o, log: log, q: make(chan message, o.QueueSize), ctx: ctx, stop: stop}
	s.wg.Add(1)
	go s.run()
	return s
}

// ErrHeader: an address or subject with a line break (header injection).
var ErrHeader = errors.New("mailer: line break in an address or the subject")

// Send queues a mail to one address; false: dropped (queue full, closed,
// or a line break where none may be).
func (s *Sender) Send(to, subject, body string) bool {
	if strings.ContainsAny(to+subject, "\r\n") {
		s.count(&s.dropped)
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.dropped++
		return false
	}
	select {
	case s.q <- message{to, subject, body}:
		return true
	default:
		s.dropped++
		s.log.Warn("mail dropped: the queue is full (the relay down?)", "queue_size", s.o.QueueSize)
		return false
	}
}

// Stats counts mails sent, given up and dropped.
func (s *Sender) Stats() (sent, failed, dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.failed, s.dropped
}

func (s *Sender) count(n *uint64) {
	s.mu.Lock()
	*n++
	s.mu.Unlock()
}

// Close stops sending: a mail in its attempt is abandoned, the queued ones
// are dropped (counted, logged).
func (s *Sender) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	if n := len(s.q); n > 0 {
		s.mu.Lock()
		s.dropped += uint64(n)
		s.mu.Unlock()
		s.log.Warn("mails not sent at stop", "mails", n)
	}
}

func (s *Sender) run() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.q:
			s.deliver(m)
		}
	}
}

// deliver tries m until it is sent, given up or the sender closes.
func (s *Sender) deliver(m message) {
	wait := s.o.Backoff
	for try := 1; ; try++ {
		err := s.send(m)
		if err == nil {
			s.count(&s.sent)
			return
		}
		if try == s.o.Attempts {
			s.count(&s.failed)
			s.log.Warn("mail not sent", "relay", s.o.Relay, "attempts", try, "error", err)
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Minute)
	}
}

// send is one SMTP session (RFC 5321) with the relay.
func (s *Sender) send(m message) error {
	host, _, err := net.SplitHostPort(s.o.Relay)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: s.o.Timeout}
	conn, err := d.DialContext(s.ctx, "tcp", s.o.Relay)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer context.AfterFunc(s.ctx, func() { conn.Close() })() // Close ends a session in progress
	conn.SetDeadline(time.Now().Add(s.o.Timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(heloName(s.o.From)); err != nil {
		return err
	}
	if !s.o.PlainText {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("relay %s does not offer STARTTLS (a relay on loopback may go without it: control.smtp.tls = \"none\")", s.o.Relay)
		}
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: s.o.RootCAs}); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.o.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.o.Username, s.o.Password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(s.o.From); err != nil {
		return err
	}
	if err := c.Rcpt(m.to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(compose(s.o.From, m)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// compose is the message (RFC 5322): UTF-8 subject encoded (RFC 2047),
// the body quoted-printable.
func compose(from string, m message) []byte {
	var b strings.Builder
	id := make([]byte, 12)
	rand.Read(id)
	domain := from[strings.LastIndexByte(from, '@')+1:]
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n",
		(&mail.Address{Address: from}).String(), (&mail.Address{Address: m.to}).String(), mime.QEncoding.Encode("utf-8", m.subject),
		time.Now().Format(time.RFC1123Z), hex.EncodeToString(id), domain)
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(m.body)) // its line breaks become CRLF
	qp.Close()
	return []byte(b.String())
}

// heloName is the name the SBC greets the relay with: its sender's domain.
func heloName(from string) string {
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		return from[i+1:]
	}
	return "localhost"
}
