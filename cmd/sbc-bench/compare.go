//go:build linux

package main

import (
	"fmt"
	"strings"
)

// comparison is sbc against rtpengine when one invocation measured both:
// each figure is sbc's over rtpengine's, so 0.8 reads "0.8 of rtpengine's".
type comparison struct {
	// Calls is the call count of the two runs compared: the one run of
	// each, or in a sweep the largest count both ran; 0 when none.
	Calls            int     `json:"calls"`
	CPUPerPacket     float64 `json:"relay_cpu_us_per_packet_ratio,omitempty"` // 0: not measurable
	SBCCPUPerPacket  float64 `json:"sbc_cpu_us_per_packet"`
	RTPECPUPerPacket float64 `json:"rtpengine_cpu_us_per_packet"`
	MemPerCall       float64 `json:"mem_per_call_ratio,omitempty"` // 0: a memory growth was not positive
	SBCMemPerCall    float64 `json:"sbc_mem_per_call_kib"`
	RTPEMemPerCall   float64 `json:"rtpengine_mem_per_call_kib"`
	// Capacity is sbc's largest passing call count over rtpengine's, when
	// both were swept (0 when rtpengine had none).
	Capacity     float64 `json:"capacity_ratio,omitempty"`
	SBCMaxCalls  int     `json:"sbc_max_calls_passing,omitempty"`
	RTPEMaxCalls int     `json:"rtpengine_max_calls_passing,omitempty"`
	swept        bool
}

// compare sets the sbc and rtpengine runs side by side; nil when the runs
// lack either.
func compare(runs []*result, sweeps []sweepResult) *comparison {
	c := &comparison{}
	for _, r := range runs {
		if r.Target != "sbc" || r.Calls <= c.Calls {
			continue
		}
		sbc, rtpe := lastAt(runs, "sbc", r.Calls), lastAt(runs, "rtpengine", r.Calls)
		if sbc == nil || rtpe == nil {
			continue
		}
		c.Calls = r.Calls
		c.SBCCPUPerPacket, c.RTPECPUPerPacket = sbc.Relay.CPUPerPacketUs, rtpe.Relay.CPUPerPacketUs
		c.SBCMemPerCall, c.RTPEMemPerCall = sbc.Relay.MemPerCallKiB, rtpe.Relay.MemPerCallKiB
		c.CPUPerPacket = ratio(c.SBCCPUPerPacket, c.RTPECPUPerPacket)
		c.MemPerCall = ratio(c.SBCMemPerCall, c.RTPEMemPerCall)
	}
	var sbcSwept, rtpeSwept bool
	for _, sw := range sweeps {
		switch sw.Target {
		case "sbc":
			c.SBCMaxCalls, sbcSwept = sw.MaxPassing, true
		case "rtpengine":
			c.RTPEMaxCalls, rtpeSwept = sw.MaxPassing, true
		}
	}
	if c.swept = sbcSwept && rtpeSwept; c.swept && c.RTPEMaxCalls > 0 {
		c.Capacity = float64(c.SBCMaxCalls) / float64(c.RTPEMaxCalls)
	}
	if c.Calls == 0 && !c.swept {
		return nil
	}
	return c
}

// lastAt is target's last run of calls calls, nil if none.
func lastAt(runs []*result, target string, calls int) *result {
	for i := len(runs) - 1; i >= 0; i-- {
		if r := runs[i]; r.Target == target && r.Calls == calls && r.Relay != nil {
			return r
		}
	}
	return nil
}

// ratio is a/b when both are positive, else 0.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

func (c *comparison) String() string {
	var parts []string
	if c.Calls > 0 {
		cpu, mem := "not measurable", "not measurable (memory growth not positive)"
		if c.CPUPerPacket > 0 {
			cpu = fmt.Sprintf("%.2f of rtpengine's (%.2f µs against %.2f µs)", c.CPUPerPacket, c.SBCCPUPerPacket, c.RTPECPUPerPacket)
		}
		if c.MemPerCall > 0 {
			mem = fmt.Sprintf("%.2f of rtpengine's (%.1f KiB against %.1f KiB)", c.MemPerCall, c.SBCMemPerCall, c.RTPEMemPerCall)
		}
		parts = append(parts, fmt.Sprintf("at %d calls, relay CPU per packet %s; memory per call %s", c.Calls, cpu, mem))
	}
	if c.swept {
		capacity := "not comparable (a target had no passing step)"
		if c.Capacity > 0 {
			capacity = fmt.Sprintf("%.2f of rtpengine's", c.Capacity)
		}
		parts = append(parts, fmt.Sprintf("capacity (most calls passing) %s: sbc %d, rtpengine %d", capacity, c.SBCMaxCalls, c.RTPEMaxCalls))
	}
	return "sbc against rtpengine: " + strings.Join(parts, "; ")
}

// means summarises repeated runs per target (-repeat): the mean machine
// CPU per packet, relay CPU and p99, and, for the kernel fast path, its
// machine CPU per packet over the bare forwarder's.
func means(runs []*result) string {
	type sum struct {
		n                int
		mach, relay, p99 float64
		first            int
	}
	by := map[string]*sum{}
	var order []string
	for _, r := range runs {
		s := by[r.Target]
		if s == nil {
			s = &sum{}
			by[r.Target] = s
			order = append(order, r.Target)
		}
		s.n++
		s.mach += r.Machine.PerPacketUs
		s.p99 += r.LatencyUs.P99
		if r.Relay != nil {
			s.relay += r.Relay.CPUPct
		}
	}
	var b strings.Builder
	for _, name := range order {
		s := by[name]
		n := float64(s.n)
		fmt.Fprintf(&b, "%s, mean of %d runs: machine CPU %.2f µs per relayed packet, relay CPU %.1f %%, p99 %s\n",
			name, s.n, s.mach/n, s.relay/n, usStr(s.p99/n))
	}
	if k, bare := by["sbc-kernel"], by["bare"]; k != nil && bare != nil && bare.mach > 0 {
		fmt.Fprintf(&b, "sbc-kernel against the bare forwarder: machine CPU per packet %.2f of bare's (%.2f µs against %.2f µs, means)\n",
			(k.mach/float64(k.n))/(bare.mach/float64(bare.n)), k.mach/float64(k.n), bare.mach/float64(bare.n))
	}
	return b.String()
}
