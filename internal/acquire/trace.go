package acquire

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// withSpanOf returns ctx carrying the trace span of from, if any: a flight is detached from the request that
// started it (its cancellation, its deadline) but its identity-provider call still belongs to that request's
// trace. Without a span in from (Caddy's tracing is off) ctx is returned as it is.
func withSpanOf(ctx, from context.Context) context.Context {
	span := trace.SpanFromContext(from)
	if !span.SpanContext().IsValid() {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}
