//go:build linux && race

package main

// e2eRace: the tests run with -race, so the daemon is built with it too.
const e2eRace = true
