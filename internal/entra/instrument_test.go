package entra

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// calls records what Instrument reports.
type calls struct {
	metrics.Nop
	mu     sync.Mutex
	grants []metrics.Grant
	errs   []error
}

func (c *calls) Called(g metrics.Grant, _ time.Duration, err error) {
	c.mu.Lock()
	c.grants = append(c.grants, g)
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

const mfaBody = `{"error":"invalid_grant","error_description":"AADSTS50076: Due to a configuration change ...",` +
	`"error_codes":[50076],"suberror":"basic_action","claims":"{\"access_token\":{\"capolids\":{\"essential\":true,` +
	`\"values\":[\"p1\"]}}}","correlation_id":"c0ffee00-0000-4000-8000-000000000001","trace_id":"t1"}`

// TestIdentityProviderCallsAreSpansOfTheRequestsTrace runs the engine over the instrumented adapter, as the
// handler does: each identity-provider call is a client span under the traced request's span, even though the
// flight is detached from the request; it carries the grant, the correlation id and Entra's codes, never a token.
func TestIdentityProviderCallsAreSpansOfTheRequestsTrace(t *testing.T) {
	const accessToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb3duc3RyZWFtIn0.c2lnbmF0dXJl"
	const assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYWxsZXIifQ.Y2FsbGVyLXNpZ25hdHVyZQ"
	var refuse atomic.Bool
	client := fakeEntraWith(t, func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(mfaBody))
			return
		}
		_, _ = w.Write([]byte(tokenBody(accessToken)))
	})
	observed := &calls{}
	engine := acquire.New(tokencache.NewMemory(100, time.Minute, nil), Instrument(client, observed), acquire.Config{})
	t.Cleanup(engine.Close)

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	req := func(user string) acquire.Request {
		return acquire.Request{Key: tokencache.Key{User: user, Scopes: "api://x/.default"}, Scopes: []string{"api://x/.default"},
			Assertion: assertion}
	}
	if _, err := engine.Token(ctx, req("ok-user")); err != nil {
		t.Fatal(err)
	}
	refuse.Store(true)
	var e *Error
	if _, err := engine.Token(ctx, req("mfa-user")); !errors.As(err, &e) || !e.HasCode(50076) {
		t.Fatalf("refused call: %v", err)
	}
	// Untraced: no span, still measured.
	if _, err := engine.Token(context.Background(), req("untraced-user")); err == nil {
		t.Fatal("want the refusal")
	}
	refuse.Store(false)
	if _, err := engine.Token(ctx, acquire.Request{Key: tokencache.Key{User: "app", Scopes: "api://x/.default"},
		Scopes: []string{"api://x/.default"}, AppOnly: true}); err != nil {
		t.Fatal(err)
	}
	request.End()
	if n := len(spansNamed(rec, "entra client_credentials")); n != 1 {
		t.Errorf("%d client-credentials spans, want 1", n)
	}

	idp := spansNamed(rec, "entra on_behalf_of")
	if len(idp) != 2 {
		t.Fatalf("%d identity-provider spans, want 2 (the untraced call makes none)", len(idp))
	}
	for i, s := range idp {
		if s.Parent().SpanID() != request.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %d: parent %v kind %v, want a client span under the request", i, s.Parent().SpanID(), s.SpanKind())
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs[AttrGrant] != "on_behalf_of" || attrs[AttrCorrelationID] == "" {
			t.Errorf("span %d attributes %v: want the grant and a correlation id", i, attrs)
		}
		text := s.Status().Description
		for k, v := range attrs {
			text += " " + k + "=" + v
		}
		for _, ev := range s.Events() {
			text += " " + ev.Name
		}
		for _, secret := range []string{accessToken, assertion, "s3cret", "capolids", "Due to a configuration"} {
			if strings.Contains(text, secret) {
				t.Errorf("span %d carries %q: %s", i, secret, text)
			}
		}
		if i == 0 && s.Status().Code != codes.Ok {
			t.Errorf("successful call: status %v", s.Status())
		}
		if i == 1 && (s.Status().Code != codes.Error || attrs[AttrAADSTS] != "AADSTS50076" || attrs[AttrError] != "invalid_grant" ||
			attrs[AttrCorrelationID] != "c0ffee00-0000-4000-8000-000000000001" || attrs[AttrSuberror] != "basic_action") {
			t.Errorf("refused call: status %v, attributes %v", s.Status(), attrs)
		}
	}
	observed.mu.Lock()
	defer observed.mu.Unlock()
	if len(observed.grants) != 4 || observed.errs[0] != nil || observed.errs[2] == nil ||
		observed.grants[3] != metrics.GrantClientCredentials {
		t.Fatalf("observed %v %v, want 3 on_behalf_of calls (the first successful) and 1 client_credentials",
			observed.grants, observed.errs)
	}
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}
