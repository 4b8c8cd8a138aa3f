//go:build linux && !race

package main

const e2eRace = false
