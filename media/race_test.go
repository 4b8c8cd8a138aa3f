//go:build race

package media

// raceEnabled: sync.Pool drops items at random under the race detector,
// so what allocates nothing otherwise may allocate (pion's XOR buffers).
const raceEnabled = true
