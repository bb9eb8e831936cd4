package main

// clientRequest makes a Valgrind client request: args holds the request's number and its five arguments. It
// returns Valgrind's answer, or 0 when the program runs outside Valgrind.
//
//go:noescape
func clientRequest(args *[6]uintptr) uintptr
