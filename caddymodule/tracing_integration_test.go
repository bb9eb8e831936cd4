package caddymodule_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// otlpReceiver is an OTLP/HTTP trace endpoint: what Caddy's tracing exports to, as a collector would receive it.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = gz
	}
	raw, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func (o *otlpReceiver) find(name string) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (o *otlpReceiver) byID(id []byte) *tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if string(s.SpanId) == string(id) {
			return s
		}
	}
	return nil
}

func spanAttrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes {
		m[a.Key] = a.Value.GetStringValue()
	}
	return m
}

// TestTracingSpansIdentityProviderCalls turns Caddy's tracing directive on for a route, with its OTLP exporter
// pointed at a receiver of the test's: each identity-provider call is a span under the request's server span,
// with Entra's correlation id (the one the client's 401 body quotes) and AADSTS code, and no token.
func TestTracingSpansIdentityProviderCalls(t *testing.T) {
	receiver := &otlpReceiver{}
	srv := httptest.NewServer(receiver)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	client := env.client
	loadConfig(t, siteConfig(errorRoutes+`
	route /traced/* {
		tracing {
			span traced_request
		}
		token_injector https://graph.microsoft.com/User.Read
	}`))
	t.Cleanup(env.Emu.ClearFaults)
	// The next test's config has no tracing: the exporter is flushed and shut down.
	t.Cleanup(func() { loadConfig(t, siteConfig(errorRoutes)) })

	ok, mfa := freshUser(t), freshUser(t)
	okToken := ssoToken(t, ok.Key, entraemu.MintOptions{})
	if status, _, body := call(t, client, "/traced/me", okToken); status != 200 {
		t.Fatalf("traced request: %d %v", status, body)
	}
	env.Emu.SetFault(mfa.Key, entraemu.Fault{Kind: entraemu.FaultMFARequired})
	status, _, refused := call(t, client, "/traced/me", ssoToken(t, mfa.Key, entraemu.MintOptions{}))
	if status != 401 || refused["correlation_id"] == nil {
		t.Fatalf("mfa: %d %v", status, refused)
	}
	var spans []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for spans = receiver.find("entra on_behalf_of"); len(spans) < 2 && time.Now().Before(deadline); spans = receiver.find("entra on_behalf_of") {
		time.Sleep(20 * time.Millisecond)
	}
	if len(spans) != 2 {
		t.Fatalf("%d identity-provider spans exported, want 2", len(spans))
	}
	var sawRefusal bool
	for _, s := range spans {
		a := spanAttrs(s)
		parent := receiver.byID(s.ParentSpanId)
		if parent == nil || parent.Name != "traced_request" || string(parent.TraceId) != string(s.TraceId) {
			t.Errorf("span's parent is %v, want the request's server span", parent)
		}
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || a["entra.grant"] != "on_behalf_of" || a["entra.correlation_id"] == "" {
			t.Errorf("span kind %v attributes %v", s.Kind, a)
		}
		if a["entra.aadsts"] == "AADSTS50076" {
			sawRefusal = true
			if a["entra.correlation_id"] != refused["correlation_id"] || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("refused call: correlation id %s (the client got %v), status %v", a["entra.correlation_id"],
					refused["correlation_id"], s.Status)
			}
		}
		dump := s.String()
		for _, secret := range []string{okToken, env.secret, "eyJ"} {
			if strings.Contains(dump, secret) {
				t.Errorf("a span carries a token or secret: %.60s", secret)
			}
		}
	}
	if !sawRefusal {
		t.Error("no span carries the refusal's AADSTS code")
	}
}
