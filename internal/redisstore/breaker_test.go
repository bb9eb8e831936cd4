package redisstore

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
)

// overdue is a context whose deadline has passed while its Done and Err do not say so yet: the instant in which a
// connection's read deadline, set from the same deadline, has fired but the context's own timer has not.
type overdue struct{ context.Context }

func (overdue) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A command that fails because its caller's deadline came (a waiter for another replica's lease, a client that
// gave up) says nothing about Redis: it must not open the breaker, which would answer every other request of this
// replica with 503 for a second. A command that times out on its own does open it.
func TestCallerDeadlineDoesNotOpenTheBreaker(t *testing.T) {
	srv := testenv.StartRedis(t)
	c, err := Open(Config{URL: srv.URL, Keys: [][]byte{make([]byte, 32)}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ioTimeout := func(context.Context) error { return os.ErrDeadlineExceeded } // what the connection reports
	ctx := overdue{context.Background()}
	if err := c.do(ctx, metrics.RedisGet, ioTimeout); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a command past its caller's deadline: %v, want the caller's deadline", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("after a caller's deadline, Redis is reported down: %v", err)
	}
	if err := c.do(context.Background(), metrics.RedisGet, ioTimeout); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a command that timed out on its own: %v, want ErrUnavailable", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Redis itself timed out, the breaker let a command through at once: %v", err)
	}
}
