package health

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadinessFailsWhenAnyCheckFails(t *testing.T) {
	ok := Check{Name: "keys", Run: func(context.Context) error { return nil }}
	down := Check{Name: "redis", Run: func(context.Context) error { return errors.New("dial tcp: refused") }}
	slow := Check{Name: "entra", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	w := httptest.NewRecorder()
	ServeReady(w, httptest.NewRequest("GET", "/readyz", nil), time.Second, []Check{ok})
	if w.Code != 200 || w.Body.String() != `{"status":"Healthy","checks":{"keys":"ok"}}`+"\n" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	rep := Evaluate(context.Background(), 50*time.Millisecond, []Check{ok, down, slow})
	if rep.Status != Unhealthy || rep.Checks["keys"] != "ok" || rep.Checks["redis"] != "dial tcp: refused" ||
		rep.Checks["entra"] != context.DeadlineExceeded.Error() {
		t.Fatalf("%+v", rep)
	}
	w = httptest.NewRecorder()
	ServeReady(w, httptest.NewRequest("GET", "/readyz", nil), time.Second, []Check{ok, down})
	if w.Code != 503 {
		t.Fatalf("status %d, want 503", w.Code)
	}
}

func TestMemoBoundsCalls(t *testing.T) {
	var calls atomic.Int32
	check := Memo(time.Hour, func(context.Context) error { calls.Add(1); return nil })
	for range 10 {
		_ = check(context.Background())
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", calls.Load())
	}
}
