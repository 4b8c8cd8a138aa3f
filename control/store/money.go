package store

import (
	"fmt"
	"strconv"
	"strings"
)

// Money is an amount in millionths of the currency unit.
type Money int64

// Unit is one currency unit.
const Unit Money = 1_000_000

// String prints at least two decimals and no trailing zeros beyond them:
// "2.00", "-0.0075".
func (m Money) String() string {
	neg := m < 0
	if neg {
		m = -m
	}
	s := fmt.Sprintf("%d.%06d", m/Unit, m%Unit)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseMoney reads a decimal amount with at most six decimals.
func ParseMoney(s string) (Money, error) {
	bad := fmt.Errorf("%q is not an amount like 12.50", s)
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(frac) > 6 || len(whole) > 12 {
		return 0, bad
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, bad
	}
	var f uint64
	if frac != "" {
		if f, err = strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil {
			return 0, bad
		}
	}
	m := Money(w)*Unit + Money(f)
	if neg {
		m = -m
	}
	return m, nil
}
