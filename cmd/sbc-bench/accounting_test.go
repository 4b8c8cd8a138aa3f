//go:build linux

package main

import "testing"

func TestRxState(t *testing.T) {
	tests := []struct {
		name                  string
		seqs                  []uint32
		sent                  uint64
		received, dups, reord uint64
		lost                  uint64
	}{
		{"in order", []uint32{0, 1, 2, 3, 4}, 5, 5, 0, 0, 0},
		{"gap is loss", []uint32{0, 1, 3, 4}, 5, 4, 0, 0, 1},
		{"lost at the end", []uint32{0, 1, 2}, 5, 3, 0, 0, 2},
		{"lost at the start", []uint32{2, 3, 4}, 5, 3, 0, 0, 2},
		{"swap", []uint32{0, 2, 1, 3}, 4, 4, 0, 1, 0},
		{"late by many", []uint32{0, 2, 3, 4, 5, 1}, 6, 6, 0, 1, 0},
		{"duplicate of the highest", []uint32{0, 1, 1, 2}, 3, 3, 1, 0, 0},
		{"duplicate of an older one", []uint32{0, 1, 2, 1}, 3, 3, 1, 0, 0},
		{"duplicate of a late one", []uint32{0, 2, 1, 1}, 3, 3, 1, 1, 0},
		{"gap of 100 then late", []uint32{0, 100, 1}, 101, 3, 0, 1, 98},
		{"more received than sent is no negative loss", []uint32{0, 1, 2}, 2, 3, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s rxState
			for _, q := range tc.seqs {
				s.add(q)
			}
			if s.received != tc.received || s.dups != tc.dups || s.reordered != tc.reord || s.lost(tc.sent) != tc.lost {
				t.Errorf("received %d dups %d reordered %d lost %d; want %d %d %d %d",
					s.received, s.dups, s.reordered, s.lost(tc.sent), tc.received, tc.dups, tc.reord, tc.lost)
			}
		})
	}
}

// A packet more than 64 behind the highest cannot be told from a duplicate:
// it counts as a late (reordered) arrival. This is the window's limit.
func TestRxStateOutsideWindow(t *testing.T) {
	var s rxState
	for _, q := range seq(0, 200) {
		s.add(q)
	}
	s.add(10)
	if s.reordered != 1 || s.received != 201 {
		t.Errorf("a packet 189 behind: reordered %d received %d; want 1 and 201 (not checked for a duplicate)", s.reordered, s.received)
	}
}

func seq(from, to uint32) []uint32 {
	var s []uint32
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
