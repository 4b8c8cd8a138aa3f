//go:build linux && race

package main

// raceEnabled: the tests run with -race, so the daemon is built with it too
// and the load test carries fewer calls.
const raceEnabled = true
