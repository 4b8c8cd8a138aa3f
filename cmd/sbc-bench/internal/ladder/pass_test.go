//go:build linux

package ladder

import "testing"

func TestStepPasses(t *testing.T) {
	ok := Step{Calls: 1000, Succeeded: 1000}
	tests := []struct {
		name string
		step func(Step) Step
		want bool
	}{
		{"every call, no retransmission", func(s Step) Step { return s }, true},
		{"1 % retransmissions", func(s Step) Step { s.Retransmissions, s.RetransPct = 10, 1.0; return s }, true},
		{"just over 1 %", func(s Step) Step { s.Retransmissions, s.RetransPct = 11, 1.1; return s }, false},
		{"one failed call", func(s Step) Step { s.Succeeded, s.Failed = 999, 1; return s }, false},
		{"one failed at the uas", func(s Step) Step { s.UASFailed = 1; return s }, false},
		{"no call placed", func(Step) Step { return Step{} }, false},
	}
	for _, tc := range tests {
		if got := tc.step(ok).passes(); got != tc.want {
			t.Errorf("%s: passes() = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestHighestPassing(t *testing.T) {
	step := func(rate int, pass bool) Step { return Step{Rate: rate, Pass: pass} }
	tests := []struct {
		name  string
		steps []Step
		want  int
	}{
		{"none", nil, 0},
		{"first fails twice", []Step{step(100, false), step(100, false)}, 0},
		{"all pass", []Step{step(100, true), step(200, true), step(300, true)}, 300},
		{"stops at the first failure", []Step{step(100, true), step(200, true), step(300, false), step(300, false)}, 200},
		{"a retry that passes counts", []Step{step(100, true), step(200, false), step(200, true), step(300, false), step(300, false)}, 200},
		{"a pass above a failure does not count", []Step{step(100, true), step(200, false), step(300, true)}, 100},
	}
	for _, tc := range tests {
		if got := highestPassing(tc.steps); got != tc.want {
			t.Errorf("%s: highestPassing = %d; want %d", tc.name, got, tc.want)
		}
	}
}
