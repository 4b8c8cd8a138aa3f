package control

import (
	"strings"
	"testing"
)

// FuzzE164 checks the destination normaliser: no panic, the result is
// "+" and 2 to 15 digits, and normalising it again changes nothing.
func FuzzE164(f *testing.F) {
	for _, s := range []string{"+14155550100", "14155550100", "0044 20 7946 0958", "+1 (415) 555-0100", "alice", "++1", "", "00", "+0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := E164(s)
		if !ok {
			return
		}
		if len(n) < 3 || len(n) > 16 || n[0] != '+' || n[1] == '0' || strings.Trim(n[1:], "0123456789") != "" {
			t.Fatalf("E164(%q) = %q", s, n)
		}
		if again, ok := E164(n); !ok || again != n {
			t.Fatalf("E164(%q) = %q, then %q %v", s, n, again, ok)
		}
	})
}

// FuzzClassifier checks that every class decides every number without
// panicking and names the rule it used.
func FuzzClassifier(f *testing.F) {
	f.Add("+19005551234", "+1900", "+44")
	f.Add("+4420", "+4", "+4420")
	f.Fuzz(func(t *testing.T, num, allow, deny string) {
		c := newClassifier(Class{Name: "f", Allow: []string{allow}, Deny: []string{deny}}, "1", []string{"+1900"})
		if v := c.check(num); v.rule == "" {
			t.Fatalf("no rule for %q", num)
		}
	})
}
