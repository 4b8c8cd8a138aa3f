package main

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// trimEvery is how often returnMemory looks whether the GC has been idle.
const trimEvery = 30 * time.Second

// returnMemory gives the heap memory a burst of call set-ups left behind back
// to the kernel once the GC has been idle for trimEvery. The relay does not
// allocate per packet, so while calls only carry media no GC runs, and
// without one the runtime keeps the set-up peak (SIP transactions live 32 s
// after each answer) as RSS until its 2-minute forced GC. Runs until stop
// is closed.
func returnMemory(stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	cycles := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	last, trimmed := cycles(), false
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := cycles()
		switch {
		case now != last: // the GC is at work: its own pacing returns memory
			last, trimmed = now, false
		case !trimmed: // once per idle period
			debug.FreeOSMemory()
			last, trimmed = cycles(), true
		}
	}
}
