package dialplan

import "testing"

func TestLookup(t *testing.T) {
	tab := New([]Route{
		{From: "a", Prefix: "", To: "default"},
		{From: "a", Prefix: "44", To: "uk"},
		{From: "a", Prefix: "4420", To: "london"},
		{From: "", Prefix: "4420", To: "any-london"},
		{From: "", Prefix: "1", To: "nanp"},
		{From: "b", Prefix: "1", To: "b-nanp"},
	})
	tests := []struct {
		from, number, want string
		ok                 bool
	}{
		{"a", "4420123", "london", true},     // longest prefix
		{"a", "4412", "uk", true},            // shorter prefix
		{"a", "33", "default", true},         // empty prefix catches all
		{"c", "4420999", "any-london", true}, // wildcard route for other trunks
		{"c", "1555", "nanp", true},
		{"b", "1555", "b-nanp", true}, // specific beats wildcard at equal length
		{"c", "33", "", false},        // no route
		{"b", "", "", false},
	}
	for _, tt := range tests {
		got, ok := tab.Lookup(tt.from, tt.number)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q, %v", tt.from, tt.number, got, ok, tt.want, tt.ok)
		}
	}
}
