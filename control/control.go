// Package control is the SBC's embedded control plane: accounts, their
// users and numbers, classes of restriction, admission of calls, call logs,
// retention and the REST API. The SBC asks it before routing a call
// (AdmitCall, from memory) and tells it what became of the call (LogCall,
// written in batches); the store (control/store) is SQLite or PostgreSQL.
package control

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sbc/control/billing"
	"sbc/control/store"
)

// reloadInterval is how often a node checks the store for changes made
// elsewhere (another node, the CLI).
const reloadInterval = time.Second

// Plane is the control plane of one SBC node. Its methods are safe for
// concurrent use.
type Plane struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	classes map[string]*classifier
	snap    atomic.Pointer[snapshot]
	lim     limiters
	calls   *callLog
	reload  sync.Mutex // one reload at a time

	hangupMu sync.RWMutex
	hangup   func(sid, endedBy string) bool
	msgs     messages
	tokens   *tokenSealer
	hooks    hooks
	led      *ledger
	msgw     *msgWriter // nil: each message write commits alone

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens the store, applies its migrations, loads what admission needs
// and starts the background work: the call-log writer, the reload of
// changes made by other nodes, the retention purge.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Plane, error) {
	if !store.IsPostgres(cfg.StorePath()) {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("control: data_dir: %w", err)
		}
	}
	st, err := store.Open(ctx, cfg.StorePath())
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	p := New(cfg, st, log)
	if err := p.Reload(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := p.checkTokenKey(); err != nil {
		log.Error("accounts' auth tokens do not open with this node's key: their webhooks will not be signed or sent", "error", err)
	}
	p.calls = newCallLog(st, log, p.callsWritten)
	p.msgw = newMsgWriter(st)
	p.wg.Add(2)
	go p.watch()
	go p.purgeLoop()
	return p, nil
}

// New is a Plane over an open store with nothing loaded and no background
// work: for tests and the CLI, which call Reload when they need admission.
func New(cfg Config, st *store.Store, log *slog.Logger) *Plane {
	p := &Plane{cfg: cfg, st: st, log: log, now: time.Now, classes: map[string]*classifier{},
		lim: limiters{m: map[string]*limiter{}}, stop: make(chan struct{}),
		tokens: &tokenSealer{path: cfg.TokenKeyFile}}
	rates, err := billing.NewTable(cfg.Billing)
	if err != nil { // validated before: only a caller that skipped Validate
		log.Error("control.billing invalid: billing off", "error", err)
		rates, _ = billing.NewTable(billing.Config{})
	}
	p.led = newLedger(rates)
	for _, cl := range cfg.Classes {
		p.classes[cl.Name] = newClassifier(cl, cfg.HomeCountryCode, cfg.Premium)
	}
	p.snap.Store(&snapshot{gen: -1}) // nothing loaded: a change reloads all
	return p
}

// Store is the plane's store.
func (p *Plane) Store() *store.Store { return p.st }

// Config is the plane's configuration.
func (p *Plane) Config() *Config { return &p.cfg }

// Close stops the background work, writes the call rows still queued and
// closes the store.
func (p *Plane) Close() error {
	close(p.stop)
	p.wg.Wait()
	if p.calls != nil {
		p.calls.close()
	}
	if p.msgw != nil {
		p.msgw.close()
	}
	return p.st.Close()
}

// Reload reads accounts, numbers and users into a new snapshot when the
// store's generation has moved since the last one.
func (p *Plane) Reload(ctx context.Context) error {
	p.reload.Lock()
	defer p.reload.Unlock()
	return p.reloadLocked(ctx)
}

func (p *Plane) reloadLocked(ctx context.Context) error {
	gen, err := p.st.Generation(ctx)
	if err != nil {
		return fmt.Errorf("control: reload: %w", err)
	}
	if gen == p.snap.Load().gen {
		return nil
	}
	s := &snapshot{gen: gen, accounts: map[string]*store.Account{}, numbers: map[string]*store.Number{}, users: map[string]*store.User{}}
	accounts, err := p.st.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("control: reload accounts: %w", err)
	}
	for i := range accounts {
		s.accounts[accounts[i].SID] = &accounts[i]
	}
	numbers, err := p.st.Numbers(ctx)
	if err != nil {
		return fmt.Errorf("control: reload numbers: %w", err)
	}
	for i := range numbers {
		s.numbers[numbers[i].PhoneNumber] = &numbers[i]
	}
	users, err := p.st.Users(ctx, "")
	if err != nil {
		return fmt.Errorf("control: reload users: %w", err)
	}
	for i := range users {
		s.users[users[i].Username] = &users[i]
	}
	p.snap.Store(s)
	return nil
}

// watch reloads what other writers changed.
func (p *Plane) watch() {
	defer p.wg.Done()
	t := time.NewTicker(reloadInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.Reload(ctx)
		if err == nil && p.led.rates.Enabled() {
			if err = p.refreshBalances(ctx); err == nil {
				p.watchBalances(p.now())
			}
		}
		cancel()
		if err != nil && !failing {
			p.log.Warn("control plane reload failing; admission uses the last data loaded", "error", err)
		} else if err == nil && failing {
			p.log.Info("control plane reload working again")
		}
		failing = err != nil
	}
}

// LogFinal queues a call's final row, as LogCall, and calls written
// once it is committed (never, if the row is dropped).
func (p *Plane) LogFinal(c store.Call, written func()) {
	p.calls.onWritten(c.SID, written)
	p.LogCall(c)
}

// LogCall queues a call's log row. It never blocks on the store. With
// billing on, a final row carries the call's price, charged when it is
// written.
func (p *Plane) LogCall(c store.Call) {
	if c.Node == "" {
		c.Node = p.cfg.Node
	}
	if r := p.led.rates; r.Enabled() && c.AccountSID != "" {
		if c.Final() && c.Duration > 0 {
			c.Price, _ = r.CallPrice(c.To, c.Duration)
		}
		p.led.track(&c)
	}
	p.calls.put(c)
}

// FlushCalls waits until the queued call rows are written: at the end of
// a run, when no new calls come.
func (p *Plane) FlushCalls(ctx context.Context) error { return p.calls.flush(ctx) }

// FlushCall waits until the row queued for call sid, if any, is written.
func (p *Plane) FlushCall(ctx context.Context, sid string) error { return p.calls.flushCall(ctx, sid) }

// CallLogStats counts call rows written and dropped.
func (p *Plane) CallLogStats() (written, dropped int64) {
	return p.calls.written.Load(), p.calls.dropped.Load()
}

// Why the plane ends a live call: the ended_by of its row.
const (
	EndedByAPI     = "api"     // the REST API's Status=completed
	EndedByBalance = "balance" // its account's balance ran out
)

// SetHangup gives the plane a way to end a live call (the SBC's), saying
// why.
func (p *Plane) SetHangup(f func(sid, endedBy string) bool) {
	p.hangupMu.Lock()
	p.hangup = f
	p.hangupMu.Unlock()
}

// Hangup ends a live call on this node; false if it has none such.
func (p *Plane) Hangup(sid string) bool {
	p.hangupMu.RLock()
	f := p.hangup
	p.hangupMu.RUnlock()
	return f != nil && f(sid, EndedByAPI)
}

// Cutoffs are the retention cutoffs at now.
func (c *Config) Cutoffs(now time.Time) store.Cutoffs {
	r := c.Retention
	return store.Cutoffs{Calls: r.Calls.Before(now), Messages: r.Messages.Before(now),
		MessageBody: r.MessageBodies.Before(now), Audit: r.Audit.Before(now)}
}

// Purge runs one retention purge at the plane's clock.
func (p *Plane) Purge(ctx context.Context) (store.Purged, error) {
	return p.st.Purge(ctx, p.cfg.Cutoffs(p.now()), 5000)
}

func (p *Plane) purgeLoop() {
	defer p.wg.Done()
	first := time.NewTimer(time.Minute) // not in the rush of a start
	defer first.Stop()
	t := time.NewTicker(p.cfg.Retention.Interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-first.C:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		n, err := p.Purge(ctx)
		// Bindings expired and left by a node that stopped (its own are
		// removed as they expire).
		if _, rerr := p.st.PurgeRegistrations(ctx, p.now()); rerr != nil {
			p.log.Warn("purge expired registrations", "error", rerr)
		}
		cancel()
		if err != nil {
			p.log.Warn("retention purge", "error", err)
		} else if n != (store.Purged{}) {
			p.log.Info("retention purge", "calls", n.Calls, "messages", n.Messages, "message_bodies", n.Bodies, "audit", n.Audit)
		}
	}
}

// changed brings admission up to a change this process committed, gen
// the generation it made (store.WithGeneration). When the snapshot was
// at gen-1, the change is applied to a copy of it (a full reload costs
// some 50 ms per 10,000 numbers: bulk provisioning would pay that per
// request); otherwise someone else changed the store too, and all is
// reloaded. The change stands whatever happens here: a failed reload is
// logged and left to the watch loop, never reported as the change's
// failure (a new token would be lost with it).
func (p *Plane) changed(ctx context.Context, gen int64, apply func(*snapshot)) {
	p.reload.Lock()
	defer p.reload.Unlock()
	cur := p.snap.Load()
	switch {
	case gen != 0 && gen <= cur.gen:
		return // loaded after the commit: it has the change
	case gen != 0 && gen == cur.gen+1:
		next := &snapshot{gen: gen, accounts: maps.Clone(cur.accounts), numbers: maps.Clone(cur.numbers), users: maps.Clone(cur.users)}
		apply(next)
		p.snap.Store(next)
		return
	}
	if err := p.reloadLocked(context.WithoutCancel(ctx)); err != nil {
		p.log.Warn("control plane reload after a change failed; retried within a second", "error", err)
	}
}

// Device is a SIP user as the registrar needs it: its digest hashes and
// whether its account may use the service.
type Device struct {
	User   store.User
	Active bool // the user's account is active
}

// Device looks a SIP user up, from memory.
func (p *Plane) Device(username string) (Device, bool) {
	snap := p.snap.Load()
	u := snap.users[username]
	if u == nil {
		return Device{}, false
	}
	a := snap.accounts[u.AccountSID]
	return Device{User: *u, Active: a != nil && a.Status == store.StatusActive}, true
}

// HasDevices tells whether any SIP user exists: without one, a request
// from an address that is no trunk's can be nobody's.
func (p *Plane) HasDevices() bool { return len(p.snap.Load().users) > 0 }

// SaveRegistrations stores a REGISTER's changes to this node's bindings.
func (p *Plane) SaveRegistrations(ctx context.Context, saved, removed []store.Registration) error {
	for i := range saved {
		saved[i].Node = p.cfg.Node
	}
	return p.st.SaveRegistrations(ctx, saved, removed)
}

// NodeRegistrations are this node's live bindings, for a restarted
// registrar.
func (p *Plane) NodeRegistrations(ctx context.Context) ([]store.Registration, error) {
	return p.st.Registrations(ctx, store.RegistrationFilter{Node: p.cfg.Node}, p.now())
}
