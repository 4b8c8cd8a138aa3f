package billing

import (
	"math"
	"math/bits"
	"time"

	"sbc/control/store"
)

// CallPrice is what a call to to answered for seconds costs: in second
// mode ceil(per_minute × seconds / 60) millionths, in minute mode
// per_minute for each started minute; 0 for seconds <= 0. ok is false
// (and the price 0) if the destination is unrated.
func (t *Table) CallPrice(to string, seconds int) (store.Money, bool) {
	pm, ok := t.Call(to)
	if !ok {
		return 0, false
	}
	return t.callCost(pm, int64(seconds)), true
}

// SMSPrice is what a message of segments segments to to costs; 0 for
// segments <= 0. ok is false (and the price 0) if the destination is
// unrated.
func (t *Table) SMSPrice(to string, segments int) (store.Money, bool) {
	ps, ok := t.SMS(to)
	if !ok {
		return 0, false
	}
	if segments <= 0 || ps <= 0 {
		return 0, true
	}
	return mulDivCeil(uint64(ps), uint64(segments), 1), true
}

// CostSoFar is what a call at perMinute answered elapsed ago costs by
// now, for the balance watch: elapsed is rounded up to the second, and
// in minute mode a started minute counts whole. It never falls short of
// the CallPrice of the same call ended now, so the watch cannot let a
// balance run further negative than the grace allows.
func (t *Table) CostSoFar(perMinute store.Money, elapsed time.Duration) store.Money {
	if elapsed <= 0 {
		return 0
	}
	s := int64(elapsed / time.Second)
	if elapsed%time.Second != 0 {
		s++
	}
	return t.callCost(perMinute, s)
}

func (t *Table) callCost(perMinute store.Money, seconds int64) store.Money {
	if perMinute <= 0 || seconds <= 0 {
		return 0
	}
	if t.perSecond {
		return mulDivCeil(uint64(perMinute), uint64(seconds), 60)
	}
	minutes := seconds / 60
	if seconds%60 != 0 {
		minutes++
	}
	return mulDivCeil(uint64(perMinute), uint64(minutes), 1)
}

// mulDivCeil is ceil(a×b/d) with a 128-bit product, so no intermediate
// overflows; a result past int64 (only for absurd inputs: prices are
// bounded by MaxPrice) saturates at math.MaxInt64 rather than wrapping
// to a negative charge.
func mulDivCeil(a, b, d uint64) store.Money {
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return math.MaxInt64 // the quotient needs more than 64 bits
	}
	q, rem := bits.Div64(hi, lo, d)
	if q >= math.MaxInt64 {
		return math.MaxInt64 // checked before q++, which could wrap
	}
	if rem != 0 {
		q++
	}
	return store.Money(q)
}
