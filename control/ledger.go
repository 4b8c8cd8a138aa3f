package control

import (
	"context"
	"sync"
	"time"

	"sbc/control/billing"
	"sbc/control/store"
)

// ledger is what billing needs in memory: each account's balance (from
// the store, refreshed each reloadInterval and at once after this node's
// charges), for admission to read without a round trip, and the answered
// calls in progress, whose cost so far the balance watch weighs against
// it.
type ledger struct {
	rates *billing.Table

	mu        sync.Mutex
	balances  map[string]store.Money
	live      map[string]liveCall  // by call SID
	ended     map[string]time.Time // calls ended lately: a late non-final row must not bring one back
	exhausted map[string]time.Time // accounts whose balance ran out, since
}

type liveCall struct {
	account   string
	answered  time.Time
	perMinute store.Money
}

func newLedger(rates *billing.Table) *ledger {
	return &ledger{rates: rates, balances: map[string]store.Money{}, live: map[string]liveCall{}, ended: map[string]time.Time{},
		exhausted: map[string]time.Time{}}
}

// balance is account's balance as last known; known false: never loaded.
func (l *ledger) balance(account string) (store.Money, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.balances[account]
	return b, ok
}

func (l *ledger) setBalance(account string, b store.Money) {
	l.mu.Lock()
	l.balances[account] = b
	l.mu.Unlock()
}

// track follows a call's rows: answered and live, its cost runs; ended,
// it is charged with its final row and weighs no more.
func (l *ledger) track(c *store.Call) {
	if c.AccountSID == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case c.Final():
		delete(l.live, c.SID)
		l.ended[c.SID] = time.Now()
	case !c.Answered.IsZero():
		if _, gone := l.ended[c.SID]; gone {
			return // its in-progress row raced its end
		}
		if _, ok := l.live[c.SID]; !ok {
			pm, _ := l.rates.Call(c.To)
			l.live[c.SID] = liveCall{account: c.AccountSID, answered: c.Answered, perMinute: pm}
		}
	}
}

// overdrawn returns the calls to end now: those of each account whose
// balance, less what its live calls cost so far, has been at or below
// zero for the grace period.
func (l *ledger) overdrawn(now time.Time) (ending []string, accounts []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for sid, at := range l.ended {
		if time.Since(at) > time.Minute {
			delete(l.ended, sid)
		}
	}
	cost := map[string]store.Money{}
	for _, c := range l.live {
		cost[c.account] += l.rates.CostSoFar(c.perMinute, now.Sub(c.answered))
	}
	for account, spent := range cost {
		b, ok := l.balances[account]
		if !ok || b-spent > 0 {
			delete(l.exhausted, account)
			continue
		}
		since, ok := l.exhausted[account]
		if !ok {
			l.exhausted[account], since = now, now
		}
		if now.Sub(since) >= l.rates.Grace() {
			accounts = append(accounts, account)
			for sid, c := range l.live {
				if c.account == account {
					ending = append(ending, sid)
				}
			}
		}
	}
	for account := range l.exhausted {
		if cost[account] == 0 {
			delete(l.exhausted, account) // its calls have ended
		}
	}
	return ending, accounts
}

// refreshBalances reads every account's balance from the store (other
// nodes' charges and operators' top-ups).
func (p *Plane) refreshBalances(ctx context.Context) error {
	all, err := p.st.Balances(ctx)
	if err != nil {
		return err
	}
	p.led.mu.Lock()
	for sid, b := range all {
		p.led.balances[sid] = b
	}
	p.led.mu.Unlock()
	return nil
}

// watchBalances ends the calls of accounts whose balance ran out (after
// the grace period), once a reloadInterval.
func (p *Plane) watchBalances(now time.Time) {
	ending, accounts := p.led.overdrawn(now)
	if len(ending) == 0 {
		return
	}
	p.hangupMu.RLock()
	hangup := p.hangup
	p.hangupMu.RUnlock()
	p.log.Warn("balance exhausted: ending the accounts' calls", "accounts", accounts, "calls", len(ending), "grace", p.led.rates.Grace())
	if hangup == nil {
		return
	}
	for _, sid := range ending {
		hangup(sid, EndedByBalance)
	}
}

// callsWritten is told of each batch of call rows committed: the ends
// posted to status callbacks, the balances the charges left.
func (p *Plane) callsWritten(batch []store.Call, bals []store.Balance) {
	for i := range batch {
		p.callHook(&batch[i])
	}
	p.charged(bals)
}

// charged takes the balances this node's charges left.
func (p *Plane) charged(bals []store.Balance) {
	for _, b := range bals {
		p.led.setBalance(b.AccountSID, b.Balance)
		if b.Low {
			p.lowBalance(b)
		}
	}
}
