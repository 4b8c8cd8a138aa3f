package billing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkLookup prices calls against 5,000 prefixes of 1 to 7 digits,
// about the size of a carrier's international rate deck.
func BenchmarkLookup(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	rates := []Rate{{Prefix: "+", PerMinute: "1"}}
	seen := map[string]bool{}
	for len(rates) < 5000 {
		p := fmt.Sprintf("+%d", r.IntN(9_999_999)+1)
		p = p[:2+r.IntN(len(p)-1)]
		if !seen[p] {
			seen[p] = true
			rates = append(rates, Rate{Prefix: p, PerMinute: "0.01", PerSMS: "0.01"})
		}
	}
	tb := mustTable(b, Config{Enabled: true, Rates: rates})
	to := make([]string, 1024)
	for i := range to {
		to[i] = fmt.Sprintf("+%d", 10_000_000_000+r.Int64N(89_999_999_999))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := tb.Call(to[i%len(to)]); !ok {
			b.Fatal("unrated")
		}
	}
}
