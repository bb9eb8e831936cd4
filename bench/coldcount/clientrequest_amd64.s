#include "textflag.h"

// func clientRequest(args *[6]uintptr) uintptr
//
// Valgrind's client request on amd64 (valgrind.h, VALGRIND_DO_CLIENT_REQUEST_EXPR): the four rotations of DI
// (128 bits in all, so DI is unchanged) and the exchange of BX with itself, which the CPU runs as no-ops and
// Valgrind recognises. It reads the request and its arguments at AX and leaves its answer in DX, which holds 0,
// the answer outside Valgrind.
TEXT ·clientRequest(SB), NOSPLIT, $0-16
	MOVQ args+0(FP), AX
	MOVQ $0, DX
	ROLQ $3, DI
	ROLQ $13, DI
	ROLQ $61, DI
	ROLQ $51, DI
	XCHGQ BX, BX
	MOVQ DX, ret+8(FP)
	RET
