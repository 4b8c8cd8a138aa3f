package store

import "testing"

// FuzzParseMoney: no panic, and what parses prints back to the same
// amount.
func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"2.00", "-0.0075", "12", "0.000001", "1e3", "", "-", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			return
		}
		back, err := ParseMoney(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseMoney(%q) = %d, printed %q, parsed back %d %v", s, m, m.String(), back, err)
		}
	})
}
