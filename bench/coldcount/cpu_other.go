//go:build !unix

package main

import "time"

// processCPU is not measured on this platform: -whole then prints no kernel share.
func processCPU() (user, system time.Duration) { return 0, 0 }
