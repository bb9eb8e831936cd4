//go:build race

package caddymodule_test

// raceEnabled builds the second replica with the race detector too, reusing the test build's cache.
const raceEnabled = true
