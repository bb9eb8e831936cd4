package entra

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// TracerName is the instrumentation scope of the proxy's spans.
const TracerName = "github.com/tokeninjector/caddy-token-injector"

// Span attributes of an identity-provider call. None carries a token, an assertion, a code or a user.
const (
	AttrGrant         = "entra.grant"          // on_behalf_of, refresh_token, authorization_code, ...
	AttrCorrelationID = "entra.correlation_id" // the call's client-request-id, which Entra's logs and errors quote
	AttrError         = "entra.error"          // the OAuth error code Entra answered
	AttrAADSTS        = "entra.aadsts"         // its first AADSTS code
	AttrSuberror      = "entra.suberror"
	AttrStatusCode    = "http.response.status_code"
)

// Instrument wraps p so that every identity-provider call is timed for obs and, when the request that caused it is
// traced (Caddy's tracing directive puts a span in its context), recorded as a client span of that trace with its
// grant, correlation id and, on failure, Entra's error and AADSTS code. An untraced call costs no span.
func Instrument(p acquire.Provider, obs metrics.IdentityProvider) acquire.Provider {
	if obs == nil {
		obs = metrics.Nop{}
	}
	return &instrumented{Provider: p, obs: obs}
}

type instrumented struct {
	acquire.Provider // AuthCodeURL and EndSessionURL call no token endpoint
	obs              metrics.IdentityProvider
}

func (i *instrumented) OnBehalfOf(ctx context.Context, assertion string, g acquire.Grant) (tokencache.Token, error) {
	ctx, done := i.start(ctx, metrics.GrantOnBehalfOf)
	t, err := i.Provider.OnBehalfOf(ctx, assertion, g)
	done(err)
	return t, err
}

func (i *instrumented) Refresh(ctx context.Context, account tokencache.Account, user string, g acquire.Grant) (tokencache.Token, tokencache.Account, error) {
	ctx, done := i.start(ctx, metrics.GrantRefreshToken)
	t, a, err := i.Provider.Refresh(ctx, account, user, g)
	done(err)
	return t, a, err
}

func (i *instrumented) AppToken(ctx context.Context, g acquire.Grant) (tokencache.Token, error) {
	ctx, done := i.start(ctx, metrics.GrantClientCredentials)
	t, err := i.Provider.AppToken(ctx, g)
	done(err)
	return t, err
}

func (i *instrumented) RedeemCode(ctx context.Context, p acquire.RedeemParams) (acquire.SignedIn, error) {
	ctx, done := i.start(ctx, metrics.GrantAuthorizationCode)
	s, err := i.Provider.RedeemCode(ctx, p)
	done(err)
	return s, err
}

// idpSpanKey marks the context of an identity-provider call with its span, for the transport (correlate).
type idpSpanKey struct{}

func (i *instrumented) start(ctx context.Context, grant metrics.Grant) (context.Context, func(error)) {
	begin := time.Now()
	var span trace.Span
	if parent := trace.SpanFromContext(ctx); parent.SpanContext().IsValid() {
		ctx, span = parent.TracerProvider().Tracer(TracerName).Start(ctx, "entra "+grant.String(),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String(AttrGrant, grant.String())))
		ctx = context.WithValue(ctx, idpSpanKey{}, span)
	}
	return ctx, func(err error) {
		i.obs.Called(grant, time.Since(begin), err)
		if span != nil {
			endSpan(span, err)
		}
	}
}

// endSpan records err's class and Entra's codes, never its text: an error's text may name hosts and causes,
// which are for the logs.
func endSpan(span trace.Span, err error) {
	defer span.End()
	if err == nil {
		span.SetStatus(codes.Ok, "")
		return
	}
	var e *Error
	var un *UnavailableError
	var mis *MisconfiguredError
	var unexpected *UnexpectedError
	switch {
	case errors.As(err, &e):
		span.SetAttributes(attribute.String(AttrError, e.Code), attribute.Int(AttrStatusCode, e.StatusCode))
		if code := e.AADSTS(); code != "" {
			span.SetAttributes(attribute.String(AttrAADSTS, code))
		}
		if e.Suberror != "" {
			span.SetAttributes(attribute.String(AttrSuberror, e.Suberror))
		}
		if e.CorrelationID != "" {
			span.SetAttributes(attribute.String(AttrCorrelationID, e.CorrelationID))
		}
		span.SetStatus(codes.Error, "entra refused the request: "+e.Code+" "+e.AADSTS())
	case errors.Is(err, acquire.ErrLoginRequired):
		span.SetStatus(codes.Error, "login required")
	case errors.As(err, &un) || errors.Is(err, context.DeadlineExceeded):
		span.SetStatus(codes.Error, "identity provider unavailable")
	case errors.As(err, &mis):
		span.SetStatus(codes.Error, "misconfigured")
	case errors.As(err, &unexpected):
		span.SetStatus(codes.Error, "unexpected answer")
	default:
		span.SetStatus(codes.Error, "failed")
	}
}

// correlated puts the client-request-id of each token request (MSAL sends one per call; Entra's errors and sign-in
// logs quote it as the correlation id) on the identity-provider call's span, for successful calls too.
type correlated struct{ next http.RoundTripper }

func (c correlated) RoundTrip(r *http.Request) (*http.Response, error) {
	if span, ok := r.Context().Value(idpSpanKey{}).(trace.Span); ok && r.Method == http.MethodPost {
		if id := r.Header.Get("client-request-id"); id != "" {
			span.SetAttributes(attribute.String(AttrCorrelationID, id))
		}
	}
	return c.next.RoundTrip(r)
}

// CloseIdleConnections closes the base transport's idle connections (http.Client.CloseIdleConnections calls it).
func (c correlated) CloseIdleConnections() {
	if d, ok := c.next.(*discoveryCache); ok {
		d.next.CloseIdleConnections()
	}
}
