//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// sweepResult is what -sweep found for one target.
type sweepResult struct {
	Target     string `json:"target"`
	MaxPassing int    `json:"max_calls_passing"` // 0: no step passed
	// FirstFailing is the fewest calls seen failing; 0 when every step
	// passed up to the -max-calls.
	FirstFailing int    `json:"first_failing"`
	Why          string `json:"why,omitempty"` // of FirstFailing
	Steps        []int  `json:"steps"`
}

func (s sweepResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sweep %s: ", s.Target)
	switch {
	case s.MaxPassing == 0:
		fmt.Fprintf(&b, "no step passed (loss < %.1f %%, p99 < %v)", passLossPct, passP99)
	default:
		fmt.Fprintf(&b, "the most calls with loss < %.1f %% and p99 < %v: %d", passLossPct, passP99, s.MaxPassing)
	}
	if s.FirstFailing > 0 {
		fmt.Fprintf(&b, "; %d failed: %s", s.FirstFailing, s.Why)
	} else {
		b.WriteString("; no step failed up to -max-calls")
	}
	return b.String()
}

// sweepGrain is the smallest step bisection goes down to.
const sweepGrain = 10

// sweep doubles the calls from -sweep-start until a step fails or
// -max-calls is reached, then bisects between the last pass and the first
// failure -sweep-refine times. Every step is a full run: daemon started
// afresh, calls set up, media, hang-up, daemon stopped; a step that misses
// the pass mark is run again up to -sweep-retry times.
func (b *bench) sweep(ctx context.Context, t target, tab *table, stderr io.Writer) sweepResult {
	sw := sweepResult{Target: t.name()}
	step := func(n int) bool {
		sw.Steps = append(sw.Steps, n)
		res := b.one(ctx, t, n, tab, stderr)
		// A measured failure gets a second chance: on a shared 2-core
		// machine one noisy run should not end the sweep. A run that broke
		// (res == nil) does not.
		for range b.o.retry {
			if res == nil || res.Pass || ctx.Err() != nil {
				break
			}
			res = b.one(ctx, t, n, tab, stderr)
		}
		if res != nil && res.Pass {
			sw.MaxPassing = max(sw.MaxPassing, n)
			return true
		}
		if sw.FirstFailing == 0 || n < sw.FirstFailing {
			sw.FirstFailing = n
			sw.Why = "the run failed"
			if res != nil {
				sw.Why = fmt.Sprintf("loss %.3f %%, p99 %s, misrouted %d", res.LossPct, usStr(res.LatencyUs.P99), res.Misrouted)
			}
		}
		return false
	}
	for n := b.o.sweepStart; ctx.Err() == nil; n *= 2 {
		n = min(n, b.o.maxCalls)
		if !step(n) || n == b.o.maxCalls {
			break
		}
	}
	lo, hi := sw.MaxPassing, sw.FirstFailing
	for range b.o.refine {
		if lo == 0 || hi == 0 || hi-lo <= sweepGrain || ctx.Err() != nil {
			break
		}
		mid := (lo + hi) / 2 / sweepGrain * sweepGrain
		if mid <= lo {
			break
		}
		if step(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return sw
}
