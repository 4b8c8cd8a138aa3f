// Package registrar keeps the bindings of registered devices (RFC 3261
// §10.3): for each user, the contacts it registered, the flow each came
// over (transport and source address: behind NAT, the only way back to
// the device, RFC 5626 §5) and when each expires. It knows nothing of
// sockets or of the SIP library: the SBC hands it what a REGISTER asked.
package registrar

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Binding is one registered contact of a user.
type Binding struct {
	User      string    `json:"username"`
	Contact   string    `json:"contact"`   // the Contact URI as registered
	Transport string    `json:"transport"` // "udp", "tcp", "tls": the flow's
	Source    string    `json:"source"`    // "ip:port" the REGISTER came from
	Expires   time.Time `json:"expires"`
	UserAgent string    `json:"user_agent"`
	CallID    string    `json:"call_id"`
	CSeq      uint32    `json:"cseq"`
	Updated   time.Time `json:"updated"`
}

// Contact is one Contact of a REGISTER: its URI, and its expires (the
// parameter, else the Expires header, else the default: -1 when none
// said).
type Contact struct {
	URI     string
	Expires int
}

// Request is what a REGISTER asks, once authenticated.
type Request struct {
	User      string
	Contacts  []Contact // empty: a query
	Wildcard  bool      // Contact: * (with Expires: 0): remove all
	Expires   int       // the Expires header; -1 when absent
	CallID    string
	CSeq      uint32
	Transport string
	Source    string
	UserAgent string
}

// Errors of Register, each with its SIP answer.
var (
	ErrOutOfOrder = errors.New("registrar: CSeq not above the last one of this Call-ID") // 500
	ErrWildcard   = errors.New("registrar: Contact: * needs Expires: 0 and no other contact")
	ErrTooBrief   = errors.New("registrar: expiry below the minimum") // 423 with Min-Expires
	ErrTooMany    = errors.New("registrar: too many contacts for one user")
)

// Registrar holds the bindings. Safe for concurrent use.
type Registrar struct {
	// Min and Max bound a binding's expiry: a shorter one is refused (423,
	// RFC 3261 §10.3 step 7), a longer one cut to Max (short, so that a
	// device behind NAT refreshes its pinhole). Default is the expiry when
	// the REGISTER says none.
	Min, Max, Default time.Duration
	// PerUser is the most contacts one user may hold.
	PerUser int

	mu      sync.Mutex
	users   map[string][]*Binding
	sources map[string]int       // flow source -> bindings over it
	hosts   map[netip.Prefix]int // hostOf(flow source) -> bindings from it
}

// New returns an empty registrar.
func New(min, max, def time.Duration, perUser int) *Registrar {
	return &Registrar{Min: min, Max: max, Default: def, PerUser: perUser, users: map[string][]*Binding{}, sources: map[string]int{}, hosts: map[netip.Prefix]int{}}
}

// Register applies a REGISTER (RFC 3261 §10.3 steps 6-8) at now and
// returns the user's bindings after it, and the changes to persist:
// bindings added or refreshed, and removed.
func (r *Registrar) Register(req Request, now time.Time) (current, saved, removed []Binding, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.live(req.User, now)
	if req.Wildcard {
		if req.Expires != 0 || len(req.Contacts) > 0 {
			return nil, nil, nil, ErrWildcard
		}
		for _, b := range list {
			if b.CallID == req.CallID && req.CSeq <= b.CSeq {
				return nil, nil, nil, ErrOutOfOrder
			}
		}
		for _, b := range list {
			removed = append(removed, *b)
		}
		r.set(req.User, nil)
		return nil, nil, removed, nil
	}
	next := slices.Clone(list)
	for _, c := range req.Contacts {
		secs := c.Expires
		if secs < 0 {
			secs = req.Expires
		}
		exp := r.Default
		if secs >= 0 {
			// Above the cap anyway; a huge value must not overflow.
			exp = time.Duration(min(secs, 1<<31)) * time.Second
		}
		i := slices.IndexFunc(next, func(b *Binding) bool { return b.Contact == c.URI })
		if i >= 0 && next[i].CallID == req.CallID && req.CSeq <= next[i].CSeq {
			return nil, nil, nil, ErrOutOfOrder
		}
		if exp == 0 {
			if i >= 0 {
				removed = append(removed, *next[i])
				next = slices.Delete(next, i, i+1)
			}
			continue
		}
		if exp < r.Min {
			return nil, nil, nil, ErrTooBrief
		}
		b := &Binding{User: req.User, Contact: c.URI, Transport: req.Transport, Source: req.Source,
			Expires: now.Add(min(exp, r.Max)), UserAgent: req.UserAgent, CallID: req.CallID, CSeq: req.CSeq, Updated: now}
		if i >= 0 {
			next[i] = b
		} else {
			next = append(next, b)
		}
		saved = append(saved, *b)
	}
	if len(next) > r.PerUser {
		return nil, nil, nil, ErrTooMany
	}
	r.set(req.User, next)
	for _, b := range next {
		current = append(current, *b)
	}
	return current, saved, removed, nil
}

// live is user's unexpired bindings (expired ones dropped). Under r.mu.
func (r *Registrar) live(user string, now time.Time) []*Binding {
	list := r.users[user]
	var kept []*Binding
	for _, b := range list {
		if now.Before(b.Expires) {
			kept = append(kept, b)
		}
	}
	if len(kept) < len(list) {
		r.set(user, kept)
	}
	return kept
}

// set makes list user's bindings, keeping the flow index. Under r.mu.
func (r *Registrar) set(user string, list []*Binding) {
	for _, b := range r.users[user] {
		if r.sources[b.Source]--; r.sources[b.Source] <= 0 {
			delete(r.sources, b.Source)
		}
		if h, ok := hostOf(b.Source); ok {
			if r.hosts[h]--; r.hosts[h] <= 0 {
				delete(r.hosts, h)
			}
		}
	}
	for _, b := range list {
		r.sources[b.Source]++
		if h, ok := hostOf(b.Source); ok {
			r.hosts[h]++
		}
	}
	if len(list) == 0 {
		delete(r.users, user)
	} else {
		r.users[user] = list
	}
}

// Registered tells whether some binding's flow is source ("ip:port"):
// the device's other requests (OPTIONS pings, in-dialog requests) come
// from there.
func (r *Registrar) Registered(source string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources[source] > 0
}

// HostRegistered tells whether some device registered from ip's host (an
// IPv4 address, an IPv6 /64: as bans count sources), a NAT's address
// maybe, whatever the port: failures that anyone could forge from there
// must not cut the devices off.
func (r *Registrar) HostRegistered(ip netip.Addr) bool {
	h, ok := hostOf(netip.AddrPortFrom(ip, 0).String())
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hosts[h] > 0
}

// hostOf is the host of a flow source "ip:port": the IPv4 address, or
// the IPv6 /64 (one host holds a whole /64).
func hostOf(source string) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return netip.Prefix{}, false
	}
	a, bits := ap.Addr().Unmap(), 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// Lookup is user's live bindings, the most recently refreshed first.
func (r *Registrar) Lookup(user string, now time.Time) []Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Binding
	for _, b := range r.live(user, now) {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b Binding) int { return b.Updated.Compare(a.Updated) })
	return out
}

// Flows is the sources of the live bindings over transport, each once:
// where NAT keepalives go.
func (r *Registrar) Flows(transport string, now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, list := range r.users {
		for _, b := range list {
			if b.Transport == transport && now.Before(b.Expires) && !seen[b.Source] {
				seen[b.Source] = true
				out = append(out, b.Source)
			}
		}
	}
	return out
}

// Restore puts back bindings saved by a previous run; expired ones are
// skipped.
func (r *Registrar) Restore(bs []Binding, now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range bs {
		if now.Before(b.Expires) && len(r.users[b.User]) < r.PerUser {
			r.set(b.User, append(slices.Clone(r.users[b.User]), &b))
			n++
		}
	}
	return n
}

// Expire drops the bindings expired at now and returns them.
func (r *Registrar) Expire(now time.Time) []Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []Binding
	for user, list := range r.users {
		for _, b := range list {
			if !now.Before(b.Expires) {
				gone = append(gone, *b)
			}
		}
		r.live(user, now)
	}
	return gone
}
