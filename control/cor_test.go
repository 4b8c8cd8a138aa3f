package control

import "testing"

func TestE164(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"+14155550100", "+14155550100", true},
		{"14155550100", "+14155550100", true},
		{"0044 20 7946 0958", "+442079460958", true},
		{"+1 (415) 555-0100", "+14155550100", true},
		{"+1.415.555.0100", "+14155550100", true},
		{"alice", "", false},
		{"1+2", "", false},
		{"++1415", "", false},
		{"", "", false},
		{"+", "", false},
		{"0123", "", false}, // national format: no country code
		{"+1234567890123456", "", false},
	} {
		got, ok := E164(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("E164(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassifier(t *testing.T) {
	premium := []string{"+1900", "+1976"}
	def := newClassifier(Class{Name: "default"}, "1", premium)
	open := newClassifier(Class{Name: "open", International: true, Allow: []string{"+1900555"}, Deny: []string{"+44", "+4420"}}, "1", premium)
	both := newClassifier(Class{Name: "both", Allow: []string{"+44"}, Deny: []string{"+44"}}, "1", nil)
	uk := newClassifier(Class{Name: "uk", Premium: true}, "44", premium)
	for _, tt := range []struct {
		c     *classifier
		num   string
		allow bool
		rule  string
	}{
		{def, "+14155550100", true, "class default: home country +1"},
		{def, "+19005551234", false, "class default: premium +1900"},
		{def, "+19765551234", false, "class default: premium +1976"},
		{def, "+442079460958", false, "class default: international (outside +1)"},
		{open, "+442079460958", false, "class open: deny +4420"},
		{open, "+441234", false, "class open: deny +44"},
		{open, "+33123456789", true, "class open: international allowed"},
		{open, "+19005551234", true, "class open: allow +1900555"}, // longest prefix beats premium
		{open, "+19001234", false, "class open: premium +1900"},
		{both, "+441234", false, "class both: deny +44"}, // deny wins a tie
		{uk, "+19001234", false, "class uk: international (outside +44)"},
		{uk, "+447700900123", true, "class uk: home country +44"},
	} {
		v := tt.c.check(tt.num)
		if v.allowed != tt.allow || v.rule != tt.rule {
			t.Errorf("%s.check(%s) = %v %q; want %v %q", tt.c.name, tt.num, v.allowed, v.rule, tt.allow, tt.rule)
		}
	}
}
