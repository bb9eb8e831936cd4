package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/health"
)

// entraProbeEvery bounds readiness probes' calls to Entra: kubelets probe every few seconds.
const entraProbeEvery = 30 * time.Second

// readinessChecks are what the registration needs to serve requests: the tenant's signing keys, Entra answering
// (probed at most once per entraProbeEvery), and Redis answering a PING when the redis tier is configured.
func (s *registrationState) readinessChecks() []health.Check {
	checks := []health.Check{
		{Name: "signing_keys", Run: s.validator.KeysReady},
		{Name: "entra", Run: health.Memo(entraProbeEvery, s.probeEntra)},
	}
	if s.shared != nil {
		checks = append(checks, health.Check{Name: "redis", Run: s.shared.client.Ping})
	}
	return checks
}

// probeEntra asks Entra for the tenant's discovery document (HEAD: the transport's document cache answers only
// GETs, so this reaches Entra). Any answer below 500 shows Entra reachable.
func (s *registrationState) probeEntra(ctx context.Context) error {
	s.mu.Lock()
	hc, set := s.http, s.applied
	s.mu.Unlock()
	u := strings.TrimSuffix(set.AuthorityHost, "/") + "/" + url.PathEscape(set.Tenant) + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("entra is not reachable: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("entra answered %d", resp.StatusCode)
	}
	return nil
}
