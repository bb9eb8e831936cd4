package testenv

import (
	"fmt"
	"sync"
	"testing"
)

// Concurrently runs f(goroutine, i) from goroutines goroutines, ops times each, and fails the test with the first
// error, naming the goroutine and the operation. Run it under -race: that is what it is for.
func Concurrently(t testing.TB, goroutines, ops int, f func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range ops {
				if err := f(g, i); err != nil {
					errs <- fmt.Errorf("goroutine %d, op %d: %w", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
