package sidecar

import (
	"net/http"
	"net/http/httputil"
	"path"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// serveProxy is the transparent mode: /{apiName}/rest is sent to the API's base URL + /rest, method, headers,
// query and body as they came, with the downstream token in Authorization and the caller's credentials
// (Authorization, Cookie) removed; the API's answer comes back as it is. The caller's bearer token gets an
// On-Behalf-Of token; an API with RequestAppToken gets the app's token, with or without a caller token.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	api, ok := s.apis[name]
	if !ok || api.base == nil {
		s.refuse(w, r, contract.NotFound("no such endpoint or proxied API"))
		return
	}
	req := acquire.Request{Scopes: api.Scopes, Timeout: s.cfg.Timeout, ExpiryMargin: s.cfg.ExpiryMargin}
	if api.RequestAppToken {
		req.AppOnly, req.Key = true, s.appKey("", api.scopeKey)
	} else {
		id, raw, err := s.prove(r)
		if err != nil {
			s.fail(w, r, err, nil)
			return
		}
		req.Key = tokencache.Key{User: id.UserKey, Context: id.AuthContext, Scopes: api.scopeKey}
		req.Assertion = raw
	}
	tok, err := s.cfg.Tokens.Token(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, api.Scopes)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(api.base)
			pr.Out.URL.Path, pr.Out.URL.RawPath = joinPath(api.base.Path, rest), ""
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set("Authorization", tok.AuthorizationHeader())
		},
		Transport:     s.cfg.Transport,
		FlushInterval: -1, // streamed answers (server-sent events) pass as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p := contract.UpstreamUnreachable()
			p.LogMessage, p.LogLevel = "sidecar: the downstream API "+name+" could not be reached: "+err.Error(), zapcore.WarnLevel
			s.refuse(w, r, p)
		},
	}
	rp.ServeHTTP(w, r)
}

// joinPath appends rest to base; dot segments in rest cannot climb out of base.
func joinPath(base, rest string) string {
	clean := strings.TrimPrefix(path.Clean("/"+rest), "/")
	if strings.HasSuffix(rest, "/") && clean != "" {
		clean += "/"
	}
	return strings.TrimSuffix(base, "/") + "/" + clean
}

// proxyTransport is the transport to downstream APIs: bounded waits, no redirects followed (ReverseProxy never
// follows them; the Entra sidecar's AllowOutboundRedirects defaults to false too).
func proxyTransport(t http.RoundTripper) http.RoundTripper {
	if t != nil {
		return t
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = 64
	return tr
}
