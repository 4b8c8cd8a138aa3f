//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sbc/sbc/sbctest/freeport"
)

// smsBench runs one sms measurement: the daemon built (or given) and
// started with a fresh store, the carrier sipp, the messages posted, the
// wait for the carrier to have them all, the store read. It returns what
// it measured so far along with an error that ended it early.
func smsBench(ctx context.Context, o *smsOptions, progress io.Writer) (*smsReport, error) {
	scenario := o.scenario
	if scenario == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, fmt.Errorf("find the carrier's scenario (or pass -scenario): %w", err)
		}
		scenario = filepath.Join(root, "testdata", "sipp", "uas_message.xml")
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return nil, fmt.Errorf("sipp is not in PATH (make deps installs it): %w", err)
	}
	work, err := os.MkdirTemp("", "sbc-bench-sms-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(progress, "sbc-bench sms: run directory %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	builder := &sbcTarget{bin: o.sbcBin}
	if err := builder.build(ctx); err != nil {
		return nil, err
	}
	defer builder.cleanup()
	acct, err := newSMSAccount(ctx, filepath.Join(work, "control"), o.smsPerSecond)
	if err != nil {
		return nil, err
	}

	// The daemon on 127.0.0.1, which the scenario checks in the MESSAGE's
	// Via; the carrier on an address of its own, away from the other
	// modes' (127.0.0.1-3, .10, .20, .41-.44).
	daemonIP, carrierIP := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.51")
	carrierPort, err := freeport.UDP(carrierIP)
	if err != nil {
		return nil, err
	}
	mediaPort, err := freeport.Media(carrierIP, carrierPort)
	if err != nil {
		return nil, err
	}
	sipPort, err := freeport.UDPOutside(daemonIP, 48000, 48063)
	if err != nil {
		return nil, err
	}
	carrierAddr, sipAddr := netip.AddrPortFrom(carrierIP, uint16(carrierPort)), netip.AddrPortFrom(daemonIP, uint16(sipPort))
	// The carrier first: it is bound long before the first MESSAGE (which
	// would be retransmitted anyway).
	carrier, err := startCarrier(scenario, carrierAddr, mediaPort, o.messages, o.timeout+time.Minute, work)
	if err != nil {
		return nil, err
	}
	defer carrier.kill()
	cfgPath := filepath.Join(work, "sbc.toml")
	if err := os.WriteFile(cfgPath, []byte(smsDaemonConfig(sipAddr, carrierAddr, filepath.Join(work, "control"))), 0o644); err != nil {
		return nil, fmt.Errorf("write sbc config: %w", err)
	}
	d, err := startSMSDaemon(ctx, builder.bin, cfgPath, sipAddr, filepath.Join(work, "sbc.log"))
	if err != nil {
		return nil, err
	}
	defer d.kill()
	client, err := apiClient(d.certFile(), o.clients)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()

	rep := &smsReport{Machine: thisMachine(), Messages: o.messages, Clients: o.clients, SMSPerSecond: o.smsPerSecond,
		Statuses: map[string]int{}, CarrierExit: -1}
	fmt.Fprintf(progress, "sbc-bench sms: posting %d messages from %d clients to https://%s\n", o.messages, o.clients, d.api())
	cpu0, self0, mach0 := procCPUOr0(d.pid()), selfCPU(), machineCPU()
	load := &smsLoad{base: "https://" + d.api(), acct: acct, client: client, messages: o.messages}
	start := time.Now()
	stopTicker := every(progress, time.Second, func(now time.Time) string {
		return fmt.Sprintf("sbc-bench sms: %5.1fs  posted %d/%d  sent %d", now.Sub(start).Seconds(), load.next.Load(), o.messages, d.sent.Load())
	})
	posted := load.run(ctx, o.clients)
	rep.PostSeconds = posted.elapsed.Seconds()
	rep.Accepted, rep.Refused, rep.FirstRefusal = posted.accepted, posted.tried-posted.accepted, posted.firstRefusal
	rep.Unposted = o.messages - posted.tried
	rep.AcceptPerSec = float64(posted.accepted) / posted.elapsed.Seconds()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rep.LatencyP50Ms, rep.LatencyP99Ms = ms(posted.latency.quantile(0.50)), ms(posted.latency.quantile(0.99))
	rep.LatencyMaxMs, rep.LatencyMeanMs = ms(time.Duration(posted.latency.max)), ms(posted.latency.mean())

	// Every accepted message leaves the queue with a log line; the
	// carrier exits once it has answered them all.
	waitErr := waitSMS(ctx, d, carrier, int64(posted.accepted), o.timeout)
	stopTicker()
	cpu1, self1, mach1 := procCPUOr0(d.pid()), selfCPU(), machineCPU()
	rep.DaemonCPUSeconds = (cpu1 - cpu0).Seconds()
	rep.DaemonCPUPer1000 = rep.DaemonCPUSeconds / float64(max(posted.accepted, 1)) * 1000
	rep.HarnessCPUSeconds = (self1 - self0).Seconds()
	rep.MachineBusyPct, _, _ = mach0.share(mach1)

	stopErr := d.stop(20 * time.Second)
	rep.DaemonErrors, rep.DaemonWarnings, rep.DaemonFirstError = d.errors.Load(), d.warnings.Load(), d.firstErr()
	carrier.kill()
	rep.CarrierExit, rep.CarrierCPUSeconds = carrier.exitCode, carrier.cpu.Seconds()
	if !carrier.exitAt.IsZero() && rep.CarrierExit == 0 {
		rep.CarrierSeconds = carrier.exitAt.Sub(start).Seconds()
	}
	// Read even when the run was interrupted: what the daemon did so far.
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	statuses, lastSent, err := smsRows(readCtx, acct.storePath, acct.sid)
	if err != nil {
		return rep, err
	}
	rep.Statuses = statuses
	rep.AllSent = statuses["sent"] == o.messages && len(statuses) == 1
	if !lastSent.IsZero() {
		rep.DeliverySeconds = lastSent.Sub(start).Seconds()
		rep.DeliveryPerSec = float64(statuses["sent"]) / rep.DeliverySeconds
	}
	if waitErr != nil {
		return rep, waitErr
	}
	return rep, stopErr
}

// waitSMS waits until the daemon has logged the fate of accepted messages
// and the carrier has exited (given a few seconds more, should a message
// have failed and the carrier still wait for it), or until timeout.
func waitSMS(ctx context.Context, d *smsDaemon, carrier *smsCarrier, accepted int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var allOut time.Time
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		if allOut.IsZero() && d.finished.Load() >= accepted {
			allOut = time.Now()
		}
		switch {
		case !allOut.IsZero() && carrier.exited():
			return nil
		case !allOut.IsZero() && time.Since(allOut) > 5*time.Second:
			return fmt.Errorf("every message left the queue, but the carrier sipp is still waiting 5 s later (%d of %d taken)", d.sent.Load(), accepted)
		case time.Now().After(deadline):
			return fmt.Errorf("after %v, %d of %d messages have left the queue", timeout, d.finished.Load(), accepted)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-d.exited:
			return fmt.Errorf("sbc exited during the run (%v)%s", d.waitErr, d.tail.String())
		case <-poll.C:
		}
	}
}

// smsLoad posts the run's messages to the API, each to a recipient of
// its own: the queue sends one message at a time to any one recipient.
type smsLoad struct {
	base     string
	acct     smsAccount
	client   *http.Client
	messages int
	next     atomic.Int64 // the next message to post
}

// smsPosted is what the clients saw.
type smsPosted struct {
	tried        int // requests that got an answer or failed
	accepted     int
	firstRefusal string
	latency      *histogram // every request, accepted or not
	elapsed      time.Duration
}

// run posts all the messages from clients goroutines, each as fast as
// its answers come.
func (l *smsLoad) run(ctx context.Context, clients int) smsPosted {
	each := make([]smsPosted, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() { each[c] = l.client1(ctx) })
	}
	wg.Wait()
	all := smsPosted{latency: newHistogram(), elapsed: time.Since(start)}
	for _, p := range each {
		all.tried += p.tried
		all.accepted += p.accepted
		all.latency.merge(p.latency)
		if all.firstRefusal == "" {
			all.firstRefusal = p.firstRefusal
		}
	}
	return all
}

func (l *smsLoad) client1(ctx context.Context) smsPosted {
	p := smsPosted{latency: newHistogram()}
	path := l.base + "/2010-04-01/Accounts/" + l.acct.sid + "/Messages.json"
	for ctx.Err() == nil {
		i := int(l.next.Add(1)) - 1
		if i >= l.messages {
			break
		}
		form := url.Values{"From": {l.acct.number}, "To": {smsRecipient(i)}, "Body": {fmt.Sprintf("sbc-bench sms %d", i)}}
		t := time.Now()
		err := l.post(ctx, path, form)
		if ctx.Err() != nil {
			break // cut short: neither accepted nor refused
		}
		p.tried++
		p.latency.record(int64(time.Since(t)))
		switch {
		case err == nil:
			p.accepted++
		case p.firstRefusal == "":
			p.firstRefusal = err.Error()
		}
	}
	return p
}

// smsRecipient is message i's recipient: +1415 6000000 and up.
func smsRecipient(i int) string { return fmt.Sprintf("+1415%07d", 6_000_000+i) }

// post sends one message; nil when the API queued it (201, "queued").
func (l *smsLoad) post(ctx context.Context, path string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(l.acct.sid, l.acct.token)
	res, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10)) // all of it: the connection is kept
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	var m struct {
		SID    string `json:"sid"`
		Status string `json:"status"`
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &m) != nil || m.SID == "" || m.Status != "queued" {
		return fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(body))
	}
	return nil
}

// apiClient is an HTTPS client for the daemon's API with up to conns
// keep-alive connections (HTTP/1.1: one request at a time on each),
// trusting only the daemon's self-signed certificate in certFile.
func apiClient(certFile string, conns int) (*http.Client, error) {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("api certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("api certificate %s: no PEM certificate", certFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// procCPUOr0 is procCPU, 0 when it cannot be read (the process is gone:
// the run fails on that anyway).
func procCPUOr0(pid int) time.Duration {
	d, _ := procCPU(pid)
	return d
}

// every writes line(now) to w every period until the returned stop is
// called.
func every(w io.Writer, period time.Duration, line func(time.Time) string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintln(w, line(now))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// repoRoot is the directory of the sbc module's go.mod, at or above the
// working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			for line := range strings.Lines(string(b)) {
				if strings.TrimSpace(line) == "module sbc" {
					return d, nil
				}
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module sbc in %s or above; run from inside the sbc repository", dir)
		}
	}
}
