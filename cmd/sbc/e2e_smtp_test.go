//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sbc/sbc/sbctest/testpki"
)

// A real SMTP server (Debian's exim4) for the end-to-end tests of the
// notification e-mails.

// smtpServer is a throw-away exim4 on loopback: it accepts mail for any
// recipient from loopback and delivers it into a maildir in a temporary
// directory. Its methods are for the test's goroutine.
//
// Exim 4.96 waits 200 ms for more input after QUIT before it answers
// (strace: a poll of the socket), so a net/smtp SendMail to it takes at
// least that long; the message is delivered by then.
type smtpServer struct {
	Addr string // "127.0.0.1:PORT"
	// CertPEM is, with smtpSTARTTLS, the PEM of the CA that issued the
	// server's certificate (for 127.0.0.1, localhost and smtp.test): the
	// root a client must trust. Nil without TLS.
	CertPEM []byte

	dir  string // exim's own: spool, log, mail (a maildir)
	out  *capBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// mailMessage is one delivered message. From, To and Subject are its
// header fields (Subject with RFC 2047 words decoded); Header also has
// exim's Return-path (the envelope sender), Envelope-to and Received.
type mailMessage struct {
	From, To, Subject string
	Header            mail.Header
	Body              string // as stored: lines end in "\n", no transfer decoding
	TLS               bool   // received after STARTTLS
}

// smtpOption changes the server startSMTP starts.
type smtpOption func(*smtpConf)

type smtpConf struct{ tls bool }

// smtpSTARTTLS makes the server offer STARTTLS, with a certificate of a
// throw-away CA (smtpServer.CertPEM), and refuse MAIL FROM before it: a
// client that does not upgrade cannot send.
func smtpSTARTTLS(c *smtpConf) { c.tls = true }

// startSMTP starts exim4 as a foreground daemon on a free loopback port
// with a config of its own, and returns once the server sends its 220
// banner. Cleanup stops it and kills whatever is left of its process
// group; all its files are in t.TempDir().
//
// Exim accepts a -C config and delivers with it only when started by root:
// the daemon then runs as the exim user (Debian-exim), and so do the
// deliveries, which re-execute exim with -C and lose root ("exim user lost
// privilege for using -C option" in its log). Hence the transport runs as
// that user, its directories are that user's, and the temporary directory
// and its parent are opened to it (0711: traversal, no listing).
func startSMTP(t *testing.T, opts ...smtpOption) *smtpServer {
	t.Helper()
	var c smtpConf
	for _, o := range opts {
		o(&c)
	}
	exim := eximPath(t)
	if os.Geteuid() != 0 {
		t.Fatal("startSMTP: exim4 delivers with a config of the test's own only when started by root; run the end-to-end tests as root")
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	s := &smtpServer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t, "127.0.0.1"))),
		dir:  filepath.Join(root, "exim"),
		out:  &capBuffer{max: 64 << 10},
		done: make(chan struct{}),
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	conf := filepath.Join(root, "exim.conf")
	if err := os.WriteFile(conf, []byte(eximConfig(s.dir, port, c.tls)), 0o644); err != nil {
		t.Fatal(err)
	}
	// -be prints the exim user's ids, and fails on a bad config.
	out, err := exec.Command(exim, "-C", conf, "-be", "$exim_uid $exim_gid").CombinedOutput()
	var uid, gid int
	if _, serr := fmt.Sscanf(string(out), "%d %d", &uid, &gid); err != nil || serr != nil {
		t.Fatalf("exim4 -C %s -be: %v %v:\n%s", conf, err, serr, out)
	}
	for _, d := range []string{"", "spool", "log", "mail"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if ca := s.writeCert(t); c.tls {
		s.CertPEM = ca
	}
	if err := filepath.WalkDir(s.dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatalf("give %s to the exim user: %v", s.dir, err)
	}

	// -bdf: a daemon that stays in the foreground; -odi: deliver at once
	// (the daemon's default too: a delivery process is forked right after
	// the 250 to DATA). No -q: no queue runner, so a deferred delivery
	// stays deferred, in the log.
	s.cmd = exec.Command(exim, "-C", conf, "-bdf", "-odi")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// Its own process group: the daemon forks a process per connection
	// and per delivery, and the cleanup kills the group.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start exim4: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })
	t.Logf("exim4: %s (config %s)", strings.Join(s.cmd.Args, " "), conf)

	deadline := time.Now().Add(5 * time.Second)
	for {
		err := smtpBanner(s.Addr)
		if err == nil {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("exim4 exited (%v) before it listened:\n%s%s", s.cmd.ProcessState, s.out.String(), s.logs())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("exim4 on %s: %v", s.Addr, err)
		}
	}
}

// eximConfig is a whole exim runtime configuration: listen on
// 127.0.0.1:port, accept any recipient from 127.0.0.1, deliver every
// address into dir/mail (a maildir) as the exim user. No DNS: the host
// name is given, no host or ident lookups, no remote transport.
func eximConfig(dir, port string, withTLS bool) string {
	// Exim 4.96 offers STARTTLS by default, and Go's net/smtp takes it
	// whenever offered. Exim sets up TLS at start even when it offers it to
	// no one: without a certificate it makes a self-signed RSA one (0.3 s of
	// CPU), and it reads the system's CA bundle (client certificates are
	// not asked for here).
	advertise, mailACL := "", "  accept\n"
	if withTLS {
		advertise = "*"
		mailACL = "  deny !encrypted = *\n       message = STARTTLS required\n  accept\n"
	}
	tlsOpts := "tls_advertise_hosts = " + advertise + "\n" +
		"tls_certificate = " + filepath.Join(dir, "cert.pem") + "\n" +
		"tls_privatekey = " + filepath.Join(dir, "key.pem") + "\n" +
		"tls_verify_certificates =\n"
	return `# Written by startSMTP (cmd/sbc/e2e_smtp_test.go).
primary_hostname = smtp.test
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = ` + port + `
disable_ipv6 = true
spool_directory = ` + filepath.Join(dir, "spool") + `
log_file_path = ` + filepath.Join(dir, "log", "%slog") + `
pid_file_path = ` + filepath.Join(dir, "exim.pid") + `
host_lookup =
rfc1413_query_timeout = 0s
` + tlsOpts + `acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt

begin acl
acl_mail:
` + mailACL + `
acl_rcpt:
  accept hosts = 127.0.0.1
  deny message = relay not permitted

begin routers
everyone:
  driver = accept
  transport = maildir

begin transports
maildir:
  driver = appendfile
  directory = ` + filepath.Join(dir, "mail") + `
  maildir_format
  user = ${exim_uid}
  group = ${exim_gid}
  envelope_to_add
  return_path_add

begin retry
# A deferred delivery stays in the queue (there is no queue runner) rather
# than bouncing into the mailbox.
* * F,1h,1h
`
}

// writeCert issues the server's certificate (ECDSA) from a new CA, writes
// it and its key where exim reads them, and returns the CA's PEM.
func (s *smtpServer) writeCert(t *testing.T) []byte {
	t.Helper()
	ca := testpki.NewCA(t, "e2e smtp CA")
	leaf := ca.Issue(t, "smtp.test", "127.0.0.1", "localhost", "smtp.test")
	for src, dst := range map[string]string{leaf.CertFile: "cert.pem", leaf.KeyFile: "key.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.dir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// smtpBanner connects to addr and reads the server's greeting.
func smtpBanner(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("banner %q", strings.TrimSpace(line))
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return nil
}

// stop ends the daemon and all its processes: first its children
// (connection handlers, deliveries), which it then reaps, then itself
// (SIGTERM), then whatever is left of its process group (SIGKILL); and
// waits until none of them runs, so that none writes into the directory
// t.TempDir's cleanup removes.
func (s *smtpServer) stop(t *testing.T) {
	pgid := s.cmd.Process.Pid
	for _, pid := range pgroupPIDs(pgid) {
		if pid != pgid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for deadline := time.Now().Add(time.Second); len(pgroupPIDs(pgid)) > 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.done
	for deadline := time.Now().Add(2 * time.Second); len(pgroupPIDs(pgid)) > 0; {
		if time.Now().After(deadline) {
			t.Errorf("exim4: processes %v of group %d still run after SIGKILL", pgroupPIDs(pgid), pgid)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if t.Failed() {
		t.Logf("---- exim4 output:\n%s%s", lastBytes(s.out.String(), 10000), s.logs())
	}
}

// pgroupPIDs lists the processes of group pgid, zombies aside (exim
// double-forks some; PID 1 reaps them, in a container maybe late).
func pgroupPIDs(pgid int) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and ")".
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if i < 0 || len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// logs is exim's own logs (main, reject, panic), for a failure message.
func (s *smtpServer) logs() string {
	var b strings.Builder
	for _, name := range []string{"mainlog", "rejectlog", "paniclog"} {
		if l, err := os.ReadFile(filepath.Join(s.dir, "log", name)); err == nil {
			fmt.Fprintf(&b, "---- exim4 %s:\n%s", name, lastBytes(string(l), 10000))
		}
	}
	return b.String()
}

// messages returns every message delivered so far, oldest first.
func (s *smtpServer) messages(t *testing.T) []mailMessage {
	t.Helper()
	type file struct {
		path string
		mod  time.Time
	}
	var files []file
	// Exim writes into tmp/ and renames into new/: new/ holds only whole
	// messages. Nothing moves them to cur/, but a test may.
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(s.dir, "mail", sub))
		if errors.Is(err, os.ErrNotExist) {
			continue // exim makes the maildir at its first delivery
		}
		if err != nil {
			t.Fatalf("read maildir: %v", err)
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				t.Fatalf("read maildir: %v", err)
			}
			files = append(files, file{filepath.Join(s.dir, "mail", sub, e.Name()), info.ModTime()})
		}
	}
	slices.SortFunc(files, func(a, b file) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	msgs := make([]mailMessage, 0, len(files))
	for _, f := range files {
		m, err := readMailMessage(f.path)
		if err != nil {
			t.Fatalf("delivered message %s: %v", f.path, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func readMailMessage(path string) (mailMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return mailMessage{}, err
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		return mailMessage{}, fmt.Errorf("parse: %w", err)
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return mailMessage{}, fmt.Errorf("read body: %w", err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return mailMessage{}, fmt.Errorf("decode Subject: %w", err)
	}
	// Exim's own Received field comes first; its protocol after STARTTLS
	// is esmtps, esmtpsa or, with SMTPUTF8 (which net/smtp takes when
	// offered), utf8esmtps (RFC 3848, RFC 6531).
	var tls bool
	if r := m.Header["Received"]; len(r) > 0 {
		_, with, _ := strings.Cut(strings.Join(strings.Fields(r[0]), " "), " with ")
		proto, _, _ := strings.Cut(with, " ")
		tls = strings.Contains(proto, "esmtps")
	}
	return mailMessage{
		From: m.Header.Get("From"), To: m.Header.Get("To"), Subject: subject,
		Header: m.Header, Body: string(body), TLS: tls,
	}, nil
}

// await waits until at least n messages are delivered and returns them
// all; the test fails, with exim's logs, after timeout.
func (s *smtpServer) await(t *testing.T, n int, timeout time.Duration) []mailMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.messages(t)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages delivered by exim4 after %v, want %d:\n%s", len(msgs), timeout, n, s.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eximPath is Debian's exim4, which is in /usr/sbin (not in a user's PATH).
func eximPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("exim4"); err == nil {
		return p
	}
	const p = "/usr/sbin/exim4"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("exim4 is not installed: run make deps (Debian package exim4-daemon-light)")
	}
	return p
}

func TestSMTPHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with exim4: skipped in -short mode")
	}
	const (
		from    = "alerts@sbc.test"
		to      = "ops@example.com"
		subject = "Low balance: ACME"
	)
	msg := "From: SBC alerts <" + from + ">\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\n\r\nThe balance is 4.20 USD.\r\n"
	check := func(t *testing.T, m mailMessage, wantTLS bool) {
		t.Helper()
		type fields struct {
			From, To, Subject, Body string
			TLS                     bool
		}
		got := fields{m.From, m.To, m.Subject, m.Body, m.TLS}
		if want := (fields{"SBC alerts <" + from + ">", to, subject, "The balance is 4.20 USD.\n", wantTLS}); got != want {
			t.Errorf("delivered %+v, want %+v", got, want)
		}
		if rp := m.Header.Get("Return-path"); rp != "<"+from+">" {
			t.Errorf("Return-path %q, want the envelope sender <%s>", rp, from)
		}
	}
	extensions := func(t *testing.T, addr string) (starttls bool) {
		t.Helper()
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		starttls, _ = c.Extension("STARTTLS")
		return starttls
	}

	t.Run("plain", func(t *testing.T) {
		s := startSMTP(t)
		// SendMail takes STARTTLS whenever it is offered, and would fail
		// on an unverifiable certificate.
		if extensions(t, s.Addr) {
			t.Fatal("exim offers STARTTLS without smtpSTARTTLS")
		}
		if err := smtp.SendMail(s.Addr, nil, from, []string{to}, []byte(msg)); err != nil {
			t.Fatalf("SendMail: %v", err)
		}
		msgs := s.await(t, 1, 5*time.Second)
		if len(msgs) != 1 {
			t.Fatalf("%d messages delivered, want 1", len(msgs))
		}
		check(t, msgs[0], false)
	})

	t.Run("starttls", func(t *testing.T) {
		s := startSMTP(t, smtpSTARTTLS)
		if !extensions(t, s.Addr) {
			t.Fatal("exim does not offer STARTTLS with smtpSTARTTLS")
		}
		// A client that does not trust the CA gives up at STARTTLS.
		var unknown x509.UnknownAuthorityError
		if err := smtp.SendMail(s.Addr, nil, from, []string{to}, []byte(msg)); !errors.As(err, &unknown) {
			t.Errorf("SendMail without the CA: %v, want an x509.UnknownAuthorityError", err)
		}
		// One that does not upgrade is refused.
		c, err := smtp.Dial(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail(from); err == nil || !strings.Contains(err.Error(), "STARTTLS required") {
			t.Errorf("MAIL FROM without STARTTLS: %v, want refused", err)
		}
		c.Close()

		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(s.CertPEM) {
			t.Fatal("smtpServer.CertPEM holds no certificate")
		}
		host, _, _ := net.SplitHostPort(s.Addr)
		c, err = smtp.Dial(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: roots}); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
		if err := c.Mail(from); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(to); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, msg); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
		msgs := s.await(t, 1, 5*time.Second)
		if len(msgs) != 1 {
			t.Fatalf("%d messages delivered, want 1", len(msgs))
		}
		check(t, msgs[0], true)
	})
}
