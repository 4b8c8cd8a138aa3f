//go:build linux

package main

import "testing"

func TestCompare(t *testing.T) {
	runs := sweepRuns()
	tests := []struct {
		name             string
		runs             []*result
		sweeps           []sweepResult
		wantNil          bool
		calls            int
		cpu, mem, capRat float64
	}{
		{name: "no rtpengine", runs: runs[:5], wantNil: true},
		{name: "one run each", runs: []*result{runs[1], runs[6]}, calls: 200, cpu: 10.0 / 8, mem: 50.0 / 40},
		// The largest count both ran, sbc's second run at it.
		{name: "sweep", runs: runs, sweeps: []sweepResult{{Target: "sbc", MaxPassing: 400}, {Target: "rtpengine", MaxPassing: 800}},
			calls: 800, cpu: 14.0 / 9, mem: 50.0 / 40, capRat: 0.5},
		{name: "rtpengine never passed", runs: runs, sweeps: []sweepResult{{Target: "sbc", MaxPassing: 400}, {Target: "rtpengine"}},
			calls: 800, cpu: 14.0 / 9, mem: 50.0 / 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := compare(tc.runs, tc.sweeps)
			if tc.wantNil {
				if c != nil {
					t.Errorf("compare = %+v; want nil", c)
				}
				return
			}
			if c == nil || c.Calls != tc.calls || c.CPUPerPacket != tc.cpu || c.MemPerCall != tc.mem || c.Capacity != tc.capRat {
				t.Errorf("compare = %+v; want calls %d, cpu %v, mem %v, capacity %v", c, tc.calls, tc.cpu, tc.mem, tc.capRat)
			}
			if c != nil {
				t.Log(c)
			}
		})
	}
}
