package entraemu_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

func TestMFAAndConsentAreDistinctSteps(t *testing.T) {
	e, _ := newTestEmulator(t)
	b := newBrowser(t, e)
	claims := `{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}`
	p := url.Values{"client_id": {DefaultSPAClientID}, "response_type": {"code"}, "redirect_uri": {spaOrigin + "/redirect.html"},
		"scope": {spaScope()}, "claims": {claims}}
	path := "/" + DefaultTenantID + "/oauth2/v2.0/authorize?" + p.Encode()

	resp, page := b.do(http.MethodPost, path, url.Values{"user": {"joni"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `data-entraemu-step="mfa"`) || !strings.Contains(page, "multi-factor authentication step") {
		t.Fatalf("after the picker, want the MFA step, got %d %.300s", resp.StatusCode, page)
	}
	resp, page = b.do(http.MethodPost, path, url.Values{"user": {"joni"}, "mfa": {"approved"}})
	if resp.StatusCode != 200 || !strings.Contains(page, `data-entraemu-step="consent"`) || !strings.Contains(page, "consent step") {
		t.Fatalf("after MFA, want the consent step (addin-spa is not consented yet), got %d %.300s", resp.StatusCode, page)
	}
	// The add-in API lists addin-spa as a known client: its own permissions are offered with it.
	if !strings.Contains(page, "knownClientApplications") || !strings.Contains(page, GraphURI+"/User.Read") {
		t.Errorf("consent step does not show the combined consent: %.600s", page)
	}
	resp, _ = b.do(http.MethodPost, path, url.Values{"user": {"joni"}, "mfa": {"approved"}, "consent": {"declined"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, "error=access_denied") || !strings.Contains(loc, "AADSTS65004") {
		t.Errorf("declined consent: %d %q", resp.StatusCode, loc)
	}
	resp, _ = b.do(http.MethodPost, path, url.Values{"user": {"joni"}, "mfa": {"approved"}, "consent": {"accepted"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, "code=") {
		t.Fatalf("after both steps, want a code, got %d %q", resp.StatusCode, loc)
	}
	// Consent is remembered: the next sign-in without a challenge shows no step.
	p.Del("claims")
	p.Set("prompt", "login")
	resp, _ = b.do(http.MethodPost, "/"+DefaultTenantID+"/oauth2/v2.0/authorize?"+p.Encode(), url.Values{"user": {"joni"}})
	if resp.StatusCode != http.StatusFound {
		t.Errorf("a consented app without a challenge: want a redirect, got %d", resp.StatusCode)
	}
}

func TestCombinedConsentThroughKnownClientApplications(t *testing.T) {
	notPreConsented := func(known bool) func(*Config) {
		return func(c *Config) {
			for i := range c.Apps {
				if c.Apps[i].ClientID == DefaultAddinClientID {
					c.Apps[i].PreConsented = false
					if !known {
						c.Apps[i].KnownClientApplications = nil
					}
				}
			}
		}
	}
	for _, known := range []bool{true, false} {
		e, _ := newTestEmulator(t, notPreConsented(known))
		b := newBrowser(t, e)
		sso := mustMint(t, e, "pradeep", MintOptions{})
		checkError(t, postForm(e, v2Token, oboForm(sso, "User.Read")), 400, "invalid_grant", 65001, "consent_required")
		// Pradeep consents to the add-in's client for the add-in API.
		spaAuthorize(t, b, DefaultSPAClientID, spaOrigin+"/redirect.html", spaScope(), "v", "pradeep")
		res := postForm(e, v2Token, oboForm(sso, "User.Read"))
		if known && res.status != 200 {
			t.Errorf("known client: the middle tier's OBO after the client's consent: %d %s", res.status, res.raw)
		}
		if !known {
			checkError(t, res, 400, "invalid_grant", 65001, "consent_required")
		}
	}
}
