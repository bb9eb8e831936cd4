package main

import (
	"runtime"
	"unsafe"
)

// The client requests the child makes (valgrind.h, callgrind.h). They go from the counted program straight to
// callgrind, so no other process has to reach into it while it runs: callgrind_control does that through vgdb,
// which uses ptrace when the program waits in a system call, and ptrace is not allowed everywhere.
const (
	runningOnValgrind             = 0x1001                     // VG_USERREQ__RUNNING_ON_VALGRIND
	callgrindBase                 = uintptr('C')<<24 | 'T'<<16 // VG_USERREQ_TOOL_BASE('C','T')
	callgrindZeroStats            = callgrindBase + 1
	callgrindDumpStatsAt          = callgrindBase + 3
	callgrindStartInstrumentation = callgrindBase + 4
)

// underCallgrind reports whether the program runs under Valgrind (on amd64, where the requests are written).
func underCallgrind() bool {
	return clientRequest(&[6]uintptr{runningOnValgrind}) != 0
}

// startInstrumentation turns callgrind's counting on, after a setup run at full speed (--instr-atstart=no).
func startInstrumentation() { clientRequest(&[6]uintptr{callgrindStartInstrumentation}) }

// zeroCounts forgets what callgrind counted since the last dump.
func zeroCounts() { clientRequest(&[6]uintptr{callgrindZeroStats}) }

// dumpCounts has callgrind write what it counted since the last dump or zeroing to its next output file, whose
// "desc: Trigger:" line ends with phase.
func dumpCounts(phase string) {
	text := append([]byte(phase), 0)
	clientRequest(&[6]uintptr{callgrindDumpStatsAt, uintptr(unsafe.Pointer(&text[0]))})
	runtime.KeepAlive(text)
}
