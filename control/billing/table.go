package billing

import (
	"cmp"
	"slices"
	"time"

	"sbc/control/store"
)

// Table is a validated [control.billing]: the rates, indexed for lookup
// by longest prefix. It never changes once made, so it is safe for
// concurrent use; a config reload makes a new one.
//
// Lookups take the destination in E.164 with its "+" ("+14155550100");
// a number without it matches no prefix and is unrated.
type Table struct {
	enabled   bool
	perSecond bool
	grace     time.Duration
	refuse    bool
	call, sms index
}

// NewTable fills in c's defaults, validates it, and indexes its rates.
// NewTable(Config{}) is billing off.
func NewTable(c Config) (*Table, error) {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t := &Table{
		enabled:   c.Enabled,
		perSecond: c.Increment == IncrementSecond,
		grace:     *c.Grace,
		refuse:    c.Unrated == UnratedRefuse,
	}
	call, sms := map[string]store.Money{}, map[string]store.Money{}
	for _, r := range c.Rates {
		if p, ok, _ := parsePrice(r.PerMinute); ok {
			call[r.Prefix] = p
		}
		if p, ok, _ := parsePrice(r.PerSMS); ok {
			sms[r.Prefix] = p
		}
	}
	t.call, t.sms = newIndex(call), newIndex(sms)
	return t, nil
}

// Enabled reports whether billing is on: calls and messages are charged
// and balances checked. The lookups below answer either way.
func (t *Table) Enabled() bool { return t.enabled }

// Grace is how long a call goes on after its account's balance runs out.
func (t *Table) Grace() time.Duration { return t.grace }

// RefuseUnrated reports whether calls and messages no rate prices are
// refused: billing on and unrated = "refuse".
func (t *Table) RefuseUnrated() bool { return t.enabled && t.refuse }

// Call is the price per minute of a call to to: the longest prefix with
// a per_minute. ok is false if none has one (unrated).
func (t *Table) Call(to string) (perMinute store.Money, ok bool) { return t.call.lookup(to) }

// SMS is the price per segment of a message to to: the longest prefix
// with a per_sms. ok is false if none has one (unrated).
func (t *Table) SMS(to string) (perSegment store.Money, ok bool) { return t.sms.lookup(to) }

// index maps prefixes to prices, one map per prefix length, longest
// first: a lookup tries only the lengths some prefix has, and slicing
// the destination for a map key allocates nothing.
type index []level

type level struct {
	n      int // prefix length in bytes, "+" included
	prices map[string]store.Money
}

func newIndex(prices map[string]store.Money) index {
	byLen := map[int]map[string]store.Money{}
	for p, m := range prices {
		if byLen[len(p)] == nil {
			byLen[len(p)] = map[string]store.Money{}
		}
		byLen[len(p)][p] = m
	}
	x := make(index, 0, len(byLen))
	for n, m := range byLen {
		x = append(x, level{n, m})
	}
	slices.SortFunc(x, func(a, b level) int { return cmp.Compare(b.n, a.n) })
	return x
}

func (x index) lookup(to string) (store.Money, bool) {
	for _, l := range x {
		if l.n > len(to) {
			continue
		}
		if p, ok := l.prices[to[:l.n]]; ok {
			return p, true
		}
	}
	return 0, false
}
