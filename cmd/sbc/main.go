// Command sbc is the session border controller daemon.
//
//	sbc [run] [-config sbc.toml]      run the daemon (the default)
//	sbc check-config [-config FILE]   validate a config and exit
//	sbc version                       print the version
//	sbc account|user|number|calls|backup|admin-token ...
//	                                  the control plane's store (admin.go)
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"sbc/control"
	"sbc/control/api"
	"sbc/control/messaging"
	"sbc/firewall"
	"sbc/mailer"
	"sbc/media"
	"sbc/sbc"
	"sbc/tlsconf"
	"sbc/webhook"
)

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1 // runtime failure (a socket could not be bound, ...)
	exitConfig = 2 // bad command line or config
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if adminCommands[cmd] {
		return runAdmin(cmd, args, os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("sbc "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "sbc.toml", "path of the TOML configuration file")
	switch cmd {
	case "run", "check-config":
		if err := fs.Parse(args); err != nil {
			return exitConfig
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "sbc %s: unexpected argument %q\n", cmd, fs.Arg(0))
			return exitConfig
		}
	case "version":
		fmt.Fprintln(stdout, "sbc", version())
		return exitOK
	default:
		fmt.Fprintf(stderr, "sbc: unknown command %q; want run, check-config, version, account, user, number, calls, backup or admin-token\n", cmd)
		return exitConfig
	}

	cfg, err := sbc.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "sbc: %s: %v\n", *path, err)
		return exitConfig
	}
	if cmd == "check-config" {
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return exitOK
	}
	return serve(cfg, stderr)
}

func serve(cfg *sbc.Config, stderr io.Writer) int {
	logw := newLogWriter(stderr)
	defer logw.Close()
	log := newLogger(cfg.Log, logw)
	// Libraries that log through the default logger (sipgo does, in places)
	// follow the configured level and format too.
	slog.SetDefault(log)
	sbc.SetLibraryLogger(log)
	unlock, err := lockDirs(cfg)
	if err != nil {
		log.Error("start", "error", err)
		return exitFail
	}
	defer unlock()
	relay, err := media.NewRelay(cfg.Media, log.With("component", "media"))
	if err != nil {
		log.Error("start media relay", "error", err)
		return exitFail
	}
	defer relay.Close()
	fw, err := startFirewall(cfg, log)
	if err != nil {
		log.Error("start the kernel fast path", "error", err)
		return exitFail
	}
	if fw != nil {
		// The relay first (its offloader stops), then the programs.
		defer func() {
			relay.Close()
			fw.Close()
		}()
		relay.SetPinholes(fw)
		if err := relay.SetOffload(fw); err != nil {
			log.Error("start the kernel fast path", "error", err)
			return exitFail
		}
		inherited, err := fw.Inherited()
		if err != nil {
			log.Error("start the kernel fast path", "error", err)
			return exitFail
		}
		relay.Inherit(inherited)
	}
	var guard *firewall.SIPGuard
	if fw == nil {
		if guard = startSIPGuard(cfg, log); guard != nil {
			defer guard.Close()
		}
	}
	// Webhooks go out until the control plane has closed (its last call
	// rows post their calls' ends).
	hooks := startWebhooks(cfg.Control.Webhooks, log.With("component", "webhook"))
	defer hooks.CloseAfter(5 * time.Second)
	ctl, err := control.Open(context.Background(), cfg.Control, log.With("component", "control"))
	if err != nil {
		log.Error("start the control plane", "error", err)
		return exitFail
	}
	ctl.SetWebhooks(hooks)
	if m, err := startMailer(cfg.Control.SMTP, log.With("component", "mail")); err != nil {
		ctl.Close()
		log.Error("start the mailer", "error", err)
		return exitConfig
	} else if m != nil {
		defer m.Close()
		ctl.SetMailer(m)
	}
	release, err := ctl.Store().ClaimNode(context.Background(), cfg.Control.Node, lockWait)
	if err != nil {
		ctl.Close()
		log.Error("start the control plane", "error", err, "key", "control.node")
		return exitFail
	}
	// Closed last: the calls' final log rows are written at Drain, and
	// the node's name is let go once they are in.
	defer func() {
		ctl.Close()
		release()
	}()
	if path, err := ctl.EnsureAdmin(context.Background()); err != nil {
		log.Error("make the operator credential", "error", err)
		return exitFail
	} else if path != "" {
		log.Info("operator credential made: SID:token written to a file readable by root only", "file", path)
	}
	var apiSrv *apiServer
	if l := *cfg.Control.API.Listen; l != "" {
		apiSrv, err = listenAPI(cfg.Control.API, cfg.Control.DataDir, api.New(ctl, log.With("component", "api")), log.With("component", "api"))
		if err != nil {
			log.Error("start the REST API", "error", err)
			return exitFail
		}
		defer apiSrv.Close()
	}
	srv, err := sbc.NewServer(cfg, relay, log)
	if err != nil {
		log.Error("start sip server", "error", err)
		return exitFail
	}
	srv.SetControl(ctl)
	ctl.SetHangup(srv.HangupCall)
	switch {
	case fw != nil:
		srv.SetBanner(fw)
	case guard != nil && *cfg.SIP.BanThreshold > 0:
		srv.SetBanner(guard)
	}
	adopted, ended, err := srv.Adopt()
	if err != nil {
		log.Error("take over the calls of a previous run", "error", err)
		return exitFail
	}
	// Calls a previous run logged as live and nobody took over: their
	// rows get an end ("lost"), after the rows of calls that had ended
	// before it stopped (Adopt queued them again) are in.
	flushCallLog(ctl, log)
	if n, err := ctl.CloseLost(context.Background(), srv.CallSIDs()); err != nil {
		log.Warn("end the call rows a previous run left live", "error", err)
	} else if n > 0 {
		log.Info("call rows a previous run left live ended as lost", "calls", n)
	}
	if shut := relay.ShutInherited(); adopted+ended+shut > 0 {
		log.Info("calls of a previous run", "taken_over", adopted, "ending", ended, "stale_ports_shut", shut)
	}
	if err := srv.Listen(); err != nil {
		log.Error("listen", "error", err)
		if adopted+ended > 0 {
			// Closing would take the calls' media ports and kernel
			// entries down: leave them to the next run, as a hand-over.
			log.Info("exiting with the calls of the previous run left for the next one", "calls", adopted+ended)
			exitKeepingCalls(logw, exitFail)
		}
		return exitFail
	}
	// Outbound SMS: the queue the API fills, sent as SIP MESSAGE; what a
	// previous run left queued goes first.
	pending, err := ctl.Store().PendingMessages(context.Background())
	if err != nil {
		log.Warn("messages a previous run left queued not read", "error", err)
	}
	smsQueue := messaging.NewQueue(ctl, srv, ctl.SMSRate, log)
	smsQueue.SetCheck(ctl.CheckDispatch)
	smsQueue.Start(pending)
	ctl.SetMessageQueue(smsQueue)
	log.Info("started", "version", version(), "media_ports", fmt.Sprintf("%d-%d", cfg.Media.PortMin, cfg.Media.PortMax))
	stopTrim := make(chan struct{})
	defer close(stopTrim)
	go returnMemory(stopTrim)

	certs := map[string]*tlsconf.Cert{"sip.tls.cert": srv.Certificate()}
	if apiSrv != nil {
		certs["control.api.cert"] = apiSrv.cert
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2, syscall.SIGHUP)
	sig := <-sigs
	for sig == syscall.SIGHUP {
		reloadCerts(certs, log)
		sig = <-sigs
	}
	if sig == syscall.SIGUSR2 {
		// Hand-over (an upgrade): leave every call, its state file and its
		// kernel entries to the next daemon, which takes them over.
		log.Info("handing over: exiting with the calls up for the next daemon to take over", "active_calls", srv.ActiveCalls())
		flushCallLog(ctl, log)
		exitKeepingCalls(logw, exitOK)
	}
	log.Info("shutting down", "signal", sig.String())
	go func() {
		// A second signal skips the drain.
		<-sigs
		log.Warn("second signal: exiting without draining")
		flushCallLog(ctl, log)
		exitKeepingCalls(logw, exitFail)
	}()
	ctl.SetMessageQueue(nil)
	smsQueue.Stop() // the messages in flight answered; queued ones wait in the store
	srv.Drain(cfg.Calls.DrainTimeout)
	active := srv.ActiveCalls()
	if err := srv.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		log.Warn("close", "error", err)
	}
	if err := relay.Close(); err != nil {
		log.Warn("close media relay", "error", err)
	}
	if fw != nil && srv.ActiveCalls() == 0 {
		// No call left for a next run: the programs detach with Close.
		if err := fw.Unpin(); err != nil {
			log.Warn("unpin the kernel fast path", "error", err)
		}
	}
	attrs := []any{"active_calls", active, "free_port_pairs", relay.FreePairs(), "total_port_pairs", relay.TotalPairs(),
		"unrouted_packets", relay.Unrouted(), "sip_bans", srv.Bans(), "sip_connections_refused", srv.ConnectionsRefused()}
	if fw != nil {
		if c, err := fw.Counters(); err == nil {
			attrs = append(attrs, "fastpath_closed_port_drops", c.Closed, "fastpath_rate_limited", c.RateLimited,
				"fastpath_denied", c.Denied, "fastpath_banned", c.Banned)
		}
	}
	if guard != nil {
		if n, err := guard.Dropped(); err == nil {
			attrs = append(attrs, "sip_guard_dropped", n)
		}
	}
	log.Info("stopped", attrs...)
	return exitOK
}

// startWebhooks starts the sender of customers' webhooks; unless the
// config admits private networks, a connection may only go to a public
// address (checked after name resolution).
func startWebhooks(c control.WebhookConfig, log *slog.Logger) *webhook.Sender {
	opts := webhook.Options{QueueSize: c.QueueSize, Attempts: c.Attempts, Backoff: c.Backoff, Timeout: c.Timeout, Workers: c.Workers}
	if !c.AllowPrivateNetworks {
		opts.Allowed = control.PublicAddr
	}
	return webhook.New(opts, log)
}

// startMailer starts the sender of notification e-mails, or nil when no
// relay is configured.
func startMailer(c control.SMTPConfig, log *slog.Logger) (*mailer.Sender, error) {
	if c.Relay == "" {
		return nil, nil
	}
	o := mailer.Options{Relay: c.Relay, From: c.From, PlainText: c.TLS == control.SMTPNoTLS, Username: c.Username, Timeout: c.Timeout}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("control.smtp.ca_file: %w", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("control.smtp.ca_file %s: no PEM certificate in it", c.CAFile)
		}
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("control.smtp.password_file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	return mailer.New(o, log), nil
}

// flushCallLog writes the call rows queued so far, for an exit that skips
// the deferred closes; it waits at most five seconds.
func flushCallLog(ctl *control.Plane, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ctl.FlushCalls(ctx); err != nil {
		log.Warn("call log rows left unwritten at exit", "error", err)
	}
}

// exitKeepingCalls exits at once, without the deferred closes: every call,
// its state file, its kernel entries and the media ports' reservation
// (media.reserve_ports) stay for the next daemon to take over.
func exitKeepingCalls(logw *logWriter, code int) {
	logw.Close()
	os.Exit(code)
}

func newLogger(c sbc.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// reloadCerts reads the TLS certificates again (SIGHUP): new handshakes
// present the new ones; connections and calls stay as they are. A file
// that does not load leaves its certificate in use.
func reloadCerts(certs map[string]*tlsconf.Cert, log *slog.Logger) {
	for key, c := range certs {
		if c == nil {
			continue
		}
		if err := c.Reload(); err != nil {
			log.Error("certificate not reloaded; the one in use stays", "key", key, "error", err)
			continue
		}
		log.Info("certificate reloaded", "key", key, "file", c.File(), "sha256_fingerprint", c.Fingerprint(),
			"not_after", c.Leaf().NotAfter.UTC().Format(time.RFC3339))
	}
}
