package billing

import (
	"math"
	"testing"
	"time"

	"sbc/control/store"
)

func TestCallPrice(t *testing.T) {
	rates := []Rate{{Prefix: "+1", PerMinute: "0.0100"}, {Prefix: "+44", PerMinute: "1000"}, {Prefix: "+33", PerMinute: "0"}}
	second := mustTable(t, Config{Increment: IncrementSecond, Rates: rates})
	minute := mustTable(t, Config{Increment: IncrementMinute, Rates: rates})
	for _, tt := range []struct {
		to             string
		seconds        int
		second, minute string
	}{
		{"+14155550100", 0, "0", "0"},
		{"+14155550100", -5, "0", "0"},
		{"+14155550100", 1, "0.000167", "0.01"}, // 166.67 millionths, rounded up
		{"+14155550100", 6, "0.001", "0.01"},    // exact: no rounding
		{"+14155550100", 59, "0.009834", "0.01"},
		{"+14155550100", 60, "0.01", "0.01"},
		{"+14155550100", 61, "0.010167", "0.02"},
		{"+14155550100", 3600, "0.60", "0.60"},
		{"+14155550100", 3601, "0.600167", "0.61"},
		{"+442071234567", 86400, "1440000", "1440000"}, // a day at the highest price
		{"+442071234567", 86401, "1440016.666667", "1441000"},
		{"+442071234567", math.MaxInt, "max", "max"}, // saturates
		{"+33123456789", 600, "0", "0"},
	} {
		for _, m := range []struct {
			tb   *Table
			want string
		}{{second, tt.second}, {minute, tt.minute}} {
			want := store.Money(math.MaxInt64)
			if m.want != "max" {
				want = money(t, m.want)
			}
			got, ok := m.tb.CallPrice(tt.to, tt.seconds)
			if !ok || got != want {
				t.Errorf("per %v: CallPrice(%q, %d) = %v, %v; want %v", m.tb.perSecond, tt.to, tt.seconds, got, ok, m.want)
			}
		}
	}
	if p, ok := second.CallPrice("+61212345678", 60); ok || p != 0 {
		t.Errorf("unrated: %v, %v; want 0, false", p, ok)
	}
}

func TestSMSPrice(t *testing.T) {
	tb := mustTable(t, Config{Rates: []Rate{{Prefix: "+1", PerSMS: "0.0075"}, {Prefix: "+44", PerSMS: "0"}, {Prefix: "+49", PerMinute: "0.01"}}})
	for _, tt := range []struct {
		to       string
		segments int
		want     string
		ok       bool
	}{
		{"+14155550100", 1, "0.0075", true},
		{"+14155550100", 3, "0.0225", true},
		{"+14155550100", 0, "0", true},
		{"+14155550100", -1, "0", true},
		{"+447700900123", 5, "0", true},
		{"+4915112345678", 1, "0", false}, // rated for calls only
		{"+61212345678", 1, "0", false},
	} {
		got, ok := tb.SMSPrice(tt.to, tt.segments)
		if ok != tt.ok || got != money(t, tt.want) {
			t.Errorf("SMSPrice(%q, %d) = %v, %v; want %v, %v", tt.to, tt.segments, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCostSoFar(t *testing.T) {
	second := mustTable(t, Config{Increment: IncrementSecond})
	minute := mustTable(t, Config{Increment: IncrementMinute})
	pm := store.Money(10_000) // 0.01 a minute
	for _, tt := range []struct {
		elapsed        time.Duration
		second, minute store.Money
	}{
		{0, 0, 0},
		{-time.Second, 0, 0},
		{time.Nanosecond, 167, 10_000}, // the first second and minute have started
		{time.Second, 167, 10_000},
		{1500 * time.Millisecond, 334, 10_000},
		{time.Minute, 10_000, 10_000},
		{time.Minute + time.Millisecond, 10_167, 20_000},
		{time.Hour, 600_000, 600_000},
		{math.MaxInt64, 1_537_228_672_834, 1_537_228_680_000}, // 292 years: no overflow
	} {
		if got := second.CostSoFar(pm, tt.elapsed); got != tt.second {
			t.Errorf("second: CostSoFar(%v) = %d; want %d", tt.elapsed, got, tt.second)
		}
		if got := minute.CostSoFar(pm, tt.elapsed); got != tt.minute {
			t.Errorf("minute: CostSoFar(%v) = %d; want %d", tt.elapsed, got, tt.minute)
		}
	}
	if got := second.CostSoFar(-pm, time.Hour); got != 0 {
		t.Errorf("negative price: %d; want 0", got)
	}
}

// TestCostSoFarMatchesCallPrice: the balance watch's running cost is what
// the call, ended now and billed for its started seconds, is charged;
// and second mode is never dearer than minute mode.
func TestCostSoFarMatchesCallPrice(t *testing.T) {
	rates := []Rate{{Prefix: "+", PerMinute: "0.0137"}}
	second := mustTable(t, Config{Increment: IncrementSecond, Rates: rates})
	minute := mustTable(t, Config{Increment: IncrementMinute, Rates: rates})
	pm, _ := second.Call("+1")
	for s := range 2 * 3600 {
		ps, _ := second.CallPrice("+1", s)
		pmin, _ := minute.CallPrice("+1", s)
		if ps > pmin || s%60 == 0 && ps != pmin {
			t.Fatalf("%d s: second mode %v, minute mode %v", s, ps, pmin)
		}
		for _, tb := range []*Table{second, minute} {
			want, _ := tb.CallPrice("+1", s)
			// Any elapsed time in (s-1, s] seconds counts as s seconds.
			for _, d := range []time.Duration{time.Duration(s) * time.Second, time.Duration(s)*time.Second - time.Millisecond} {
				if got := tb.CostSoFar(pm, d); got != want && d > 0 {
					t.Fatalf("per second %v, %v: CostSoFar %v; CallPrice(%d) %v", tb.perSecond, d, got, s, want)
				}
			}
		}
	}
}

func TestMulDivCeil(t *testing.T) {
	for _, tt := range []struct {
		a, b, d uint64
		want    store.Money
	}{
		{0, 5, 60, 0},
		{1, 1, 60, 1},
		{60, 1, 60, 1},
		{61, 1, 60, 2},
		{math.MaxInt64, 1, 1, math.MaxInt64},
		{math.MaxInt64, 2, 2, math.MaxInt64},
		{math.MaxInt64, 2, 1, math.MaxInt64},                // saturates
		{math.MaxUint64, math.MaxUint64, 60, math.MaxInt64}, // the 128-bit product's high half >= d
		{math.MaxUint64, 59, 60, math.MaxInt64},             // quotient 2^64-2 rounding up: no wrap
		{math.MaxInt64 - 1, 3, 3, math.MaxInt64 - 1},
	} {
		if got := mulDivCeil(tt.a, tt.b, tt.d); got != tt.want {
			t.Errorf("mulDivCeil(%d, %d, %d) = %d; want %d", tt.a, tt.b, tt.d, got, tt.want)
		}
	}
}
