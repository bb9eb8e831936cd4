//go:build !unix

package demo

import "os"

// tryLock is a no-op where flock is unavailable: two demos on one port are not detected there.
func tryLock(*os.File) (bool, error) { return true, nil }
