//go:build !unix

package main

import "time"

// processCPU is not measured on this platform; the CPU rows then read 0.
func processCPU() (time.Duration, bool) { return 0, false }
