package billing

import (
	"testing"
	"time"

	"sbc/control/store"
)

func mustTable(t testing.TB, c Config) *Table {
	t.Helper()
	tb, err := NewTable(c)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func money(t testing.TB, s string) store.Money {
	t.Helper()
	m, err := store.ParseMoney(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookup(t *testing.T) {
	tb := mustTable(t, Config{Enabled: true, Rates: []Rate{
		{Prefix: "+", PerMinute: "0.50"},
		{Prefix: "+1", PerMinute: "0.0100", PerSMS: "0.0075"},
		{Prefix: "+1900", PerMinute: "2.00"},
		{Prefix: "+4", PerMinute: "0.04"},
		{Prefix: "+44", PerSMS: "0.04"}, // must not hide +4 for calls
		{Prefix: "+447", PerMinute: "0.10", PerSMS: "0"},
	}})
	for _, tt := range []struct {
		to        string
		call, sms string // "": unrated
	}{
		{"+14155550100", "0.0100", "0.0075"},
		{"+19005550100", "2.00", "0.0075"}, // longest for calls, +1 still for SMS
		{"+1900", "2.00", "0.0075"},        // the prefix itself
		{"+442071234567", "0.04", "0.04"},  // +44 rates only SMS: +4 for calls
		{"+447700900123", "0.10", "0"},     // free, but rated
		{"+33123456789", "0.50", ""},       // "+" catch-all has no per_sms
		{"+4", "0.04", ""},
		{"+", "0.50", ""},
		{"14155550100", "", ""}, // no "+": not E.164, no prefix matches
		{"", "", ""},
	} {
		pm, ok := tb.Call(tt.to)
		if ok != (tt.call != "") || ok && pm != money(t, tt.call) {
			t.Errorf("Call(%q) = %v, %v; want %q", tt.to, pm, ok, tt.call)
		}
		ps, ok := tb.SMS(tt.to)
		if ok != (tt.sms != "") || ok && ps != money(t, tt.sms) {
			t.Errorf("SMS(%q) = %v, %v; want %q", tt.to, ps, ok, tt.sms)
		}
	}
}

func TestTableSettings(t *testing.T) {
	g := 5 * time.Second
	for _, tt := range []struct {
		name    string
		c       Config
		enabled bool
		grace   time.Duration
		refuse  bool
	}{
		{"zero config: off", Config{}, false, DefaultGrace, false},
		{"off: nothing refused", Config{Unrated: UnratedRefuse}, false, DefaultGrace, false},
		{"on, refuse", Config{Enabled: true, Grace: &g, Rates: []Rate{{Prefix: "+1", PerSMS: "1"}}}, true, g, true},
		{"on, free", Config{Enabled: true, Unrated: UnratedFree}, true, DefaultGrace, false},
	} {
		tb := mustTable(t, tt.c)
		if tb.Enabled() != tt.enabled || tb.Grace() != tt.grace || tb.RefuseUnrated() != tt.refuse {
			t.Errorf("%s: enabled %v grace %v refuse %v; want %v %v %v", tt.name,
				tb.Enabled(), tb.Grace(), tb.RefuseUnrated(), tt.enabled, tt.grace, tt.refuse)
		}
	}
}

// TestLookupAllocs: a lookup runs at every call admission.
func TestLookupAllocs(t *testing.T) {
	tb := mustTable(t, Config{Rates: []Rate{{Prefix: "+1", PerMinute: "1"}, {Prefix: "+1415", PerMinute: "2"}}})
	if n := testing.AllocsPerRun(100, func() { tb.Call("+14155550100"); tb.SMS("+14155550100") }); n != 0 {
		t.Errorf("%v allocations per lookup; want 0", n)
	}
}
