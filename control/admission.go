package control

import (
	"math"
	"strings"
	"sync"
	"time"

	"sbc/control/store"
)

// Attempt is a call the SBC asks to admit, before it routes it.
type Attempt struct {
	// Account owns the trunk the call came from; "" for a carrier's or a
	// peer's trunk, whose calls belong to the number they are for.
	Account string
	// User is the authenticated SIP user who placed the call, if any.
	User string
	From string // caller's user part
	To   string // Request-URI user part
}

// Decision is admission's answer. Code 0 admits the call; otherwise it is
// the SIP status to refuse it with.
type Decision struct {
	Code       int
	Reason     string // for the Warning header and the log
	RetryAfter int    // seconds, with 503
	// Cause, when set, is the refusal's own status (402: the balance is
	// spent) for a Reason header (RFC 3326) beside Code, the SIP status
	// peers act on.
	Cause int
	Rule  string // the class-of-restriction rule that decided

	Account   string // the call's account; "" for a transit call
	Direction string // store.Direction*
	To        string // the destination, as E.164 where it is a number
	// Target is where the number's owner wants its calls ("trunk:NAME",
	// "user:NAME", a sip: URI); "" sends the call by the dial plan.
	Target string
	// CallerID, for a SIP user's call, is the number the call presents:
	// the From it sent when that is a number of its account, else its
	// account's number whose calls go to that user.
	CallerID string

	slot *limiter
}

// Admitted reports whether the call may go on.
func (d *Decision) Admitted() bool { return d.Code == 0 }

// Release gives back the call's concurrency slot: once, when the call
// ends. Safe on refused decisions and to call twice.
func (d *Decision) Release() {
	if s := d.slot; s != nil {
		d.slot = nil
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}
}

// snapshot is what admission reads: every account, number and user, as
// loaded from the store. Immutable; replaced whole on reload.
type snapshot struct {
	gen      int64
	accounts map[string]*store.Account
	numbers  map[string]*store.Number // by +E.164
	users    map[string]*store.User   // by username

	// userNumbers is, per "account SID/user:NAME" voice target, the
	// lowest number calling it: a device's caller ID. Made at its first
	// use (one pass over the numbers per snapshot, not per call).
	userNumbersOnce sync.Once
	userNumbers     map[string]string
}

// limiter is one account's calls-per-second bucket and concurrent calls.
type limiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	active int
}

// take admits one call under cps and maxActive: 0, or the status and
// Retry-After that refuse it. A refused call takes nothing.
func (l *limiter) take(now time.Time, cps, maxActive int) (code, retry int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	burst := float64(cps)
	if l.last.IsZero() {
		l.tokens = burst
	} else if el := now.Sub(l.last).Seconds(); el > 0 {
		l.tokens = math.Min(burst, l.tokens+el*float64(cps))
	}
	l.last = now
	if l.tokens < 1 {
		return 503, max(1, int(math.Ceil((1-l.tokens)/float64(cps))))
	}
	if l.active >= maxActive {
		return 486, 0
	}
	l.tokens--
	l.active++
	return 0, 0
}

// limiters holds a limiter per account for the life of the process (an
// account's counters survive reloads of the snapshot).
type limiters struct {
	mu sync.RWMutex
	m  map[string]*limiter
}

func (ls *limiters) get(sid string) *limiter {
	ls.mu.RLock()
	l := ls.m[sid]
	ls.mu.RUnlock()
	if l != nil {
		return l
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l = ls.m[sid]; l == nil {
		l = &limiter{}
		ls.m[sid] = l
	}
	return l
}

// Active is the number of calls an account has up on this node.
func (p *Plane) Active(account string) int {
	l := p.lim.get(account)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active
}

func refuse(code int, reason string) Decision { return Decision{Code: code, Reason: reason} }

// AdmitCall decides a call attempt from memory: no store round trip. An
// admitted decision holds a concurrency slot until Release.
func (p *Plane) AdmitCall(a Attempt) Decision {
	snap := p.snap.Load()
	num, isNum := E164(a.To)
	d := Decision{To: a.To}
	var owner *store.Number
	if isNum {
		d.To, owner = num, snap.numbers[num]
	}
	caller := a.Account
	var class string
	if a.User != "" {
		u := snap.users[a.User]
		if u == nil {
			return refuse(403, "unknown user")
		}
		caller, class = u.AccountSID, u.Class
		if d.CallerID = callerID(snap, u, a.From); d.CallerID == "" {
			return Decision{Code: 403, Reason: "no number of the account to present as the caller (give one the target user:" + u.Username + ")", Account: caller}
		}
	}

	var acct *store.Account
	if caller != "" {
		acct = snap.accounts[caller]
		if acct == nil {
			return refuse(403, "account not found")
		}
		deny := func(code int, reason string) Decision {
			return Decision{Code: code, Reason: reason, Account: caller}
		}
		if acct.Status != store.StatusActive {
			return deny(403, "account "+acct.Status)
		}
		if !isNum {
			return deny(404, "destination is not an E.164 number")
		}
		d.Direction = store.DirectionTerminating
		switch {
		case owner != nil && owner.AccountSID == caller && owner.Voice && owner.VoiceTarget != "":
			// On-net within one account: to the number's own target.
			d.Target = owner.VoiceTarget
		case owner != nil && owner.AccountSID != caller && p.cfg.CrossAccount == CrossRefuse:
			return deny(403, "number of another account (control.cross_account = refuse)")
		default:
			// To the PSTN, another account's number included: that is
			// customer isolation, the dial plan's carrier trunk takes it.
			if class == "" {
				class = acct.Class
			}
			cl := p.classes[class]
			if cl == nil {
				return deny(403, "class of restriction "+class+" not configured")
			}
			if v := cl.check(num); !v.allowed {
				d := deny(403, "destination not allowed by "+v.rule)
				d.Rule = v.rule
				return d
			}
		}
	} else {
		if owner == nil {
			// A call between trunks of no account: the dial plan alone.
			d.Direction = store.DirectionTransit
			return d
		}
		acct = snap.accounts[owner.AccountSID]
		if acct == nil || acct.Status != store.StatusActive {
			return refuse(403, "number's account not active")
		}
		if !owner.Voice {
			return refuse(404, "number not voice-enabled")
		}
		d.Direction, d.Target = store.DirectionOriginating, owner.VoiceTarget
	}
	d.Account = acct.SID
	if r := p.led.rates; r.Enabled() {
		if b, ok := p.led.balance(acct.SID); ok && b <= 0 || !ok && acct.Balance <= 0 {
			return Decision{Code: 403, Cause: 402, Reason: "insufficient balance", Account: acct.SID}
		}
		if _, ok := r.Call(d.To); !ok && r.RefuseUnrated() && d.Direction == store.DirectionTerminating {
			return Decision{Code: 403, Reason: "no rate for the destination (control.billing.unrated = refuse)", Account: acct.SID}
		}
	}
	l := p.lim.get(acct.SID)
	code, retry := l.take(p.now(), acct.CPS, acct.MaxConcurrent)
	switch code {
	case 503:
		return Decision{Code: 503, Reason: "account calls per second limit reached", RetryAfter: retry, Account: acct.SID}
	case 486:
		return Decision{Code: 486, Reason: "account concurrent call limit reached", Account: acct.SID}
	}
	d.slot = l
	return d
}

// Resume holds a concurrency slot for a call that a restarted SBC took
// over (row: its log row, answered): it counts against the account's
// limit without being refused, and its cost against the balance.
func (p *Plane) Resume(row store.Call) Decision {
	account := row.AccountSID
	if p.led.rates.Enabled() {
		p.led.track(&row)
	}
	l := p.lim.get(account)
	l.mu.Lock()
	l.active++
	l.mu.Unlock()
	return Decision{Account: account, slot: l}
}

// callerID is the number a user's call presents: from, when it is a
// number of the user's account (a device may choose among them), else
// the account's lowest number whose calls go to the user; "" when there
// is none. A device never presents a number that is not its account's.
func callerID(snap *snapshot, u *store.User, from string) string {
	if n, ok := E164(from); ok {
		if num := snap.numbers[n]; num != nil && num.AccountSID == u.AccountSID {
			return n
		}
	}
	snap.userNumbersOnce.Do(func() {
		snap.userNumbers = map[string]string{}
		for n, num := range snap.numbers {
			if k := num.AccountSID + "/" + num.VoiceTarget; strings.HasPrefix(num.VoiceTarget, "user:") {
				if best, ok := snap.userNumbers[k]; !ok || n < best {
					snap.userNumbers[k] = n
				}
			}
		}
	})
	return snap.userNumbers[u.AccountSID+"/user:"+u.Username]
}
