package entraemu

import (
	"encoding/json"
	"net/http"
)

// discoveryV2 is the v2.0 OpenID configuration document, fields in Entra's order.
type discoveryV2 struct {
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	Issuer                            string   `json:"issuer"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	HTTPLogoutSupported               bool     `json:"http_logout_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ClaimsSupported                   []string `json:"claims_supported"`
	KerberosEndpoint                  string   `json:"kerberos_endpoint"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
	RBACURL                           string   `json:"rbac_url"`
}

// discoveryV1 is the v1 (no /v2.0) OpenID configuration document.
type discoveryV1 struct {
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	Issuer                            string   `json:"issuer"`
	MicrosoftMultiRefreshToken        bool     `json:"microsoft_multi_refresh_token"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	HTTPLogoutSupported               bool     `json:"http_logout_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CheckSessionIframe                string   `json:"check_session_iframe"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	KerberosEndpoint                  string   `json:"kerberos_endpoint"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
	RBACURL                           string   `json:"rbac_url"`
}

var authMethods = []string{"client_secret_post", "private_key_jwt", "client_secret_basic"}

// tenantPathAndIssuer returns the path segment endpoints use and the tenant placeholder of the
// issuer: a tenant-specific document always names the GUID (even when asked by domain), while
// common/organizations keep their segment and publish "{tenantid}" in the issuer, as Entra does.
func (e *Emulator) tenantPathAndIssuer(r *http.Request) (seg, issuerTenant string, region *string, ok bool) {
	raw := r.PathValue("tenant")
	switch e.resolveTenant(raw) {
	case tenantOwn:
		na := "NA"
		return e.tenant, e.tenant, &na, true
	case tenantMulti:
		return raw, "{tenantid}", nil, true
	}
	return "", "", nil, false
}

func (e *Emulator) handleDiscoveryV2(w http.ResponseWriter, r *http.Request) {
	e.counters.add(func(c *Counters) { c.Discovery++ })
	seg, it, region, ok := e.tenantPathAndIssuer(r)
	if !ok {
		e.writeDiscoveryTenantError(w, r)
		return
	}
	b := e.baseURL(r)
	doc := discoveryV2{
		TokenEndpoint:                     b + "/" + seg + "/oauth2/v2.0/token",
		TokenEndpointAuthMethodsSupported: authMethods,
		JWKSURI:                           b + "/" + seg + "/discovery/v2.0/keys",
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token", "id_token token"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		Issuer:                            b + "/" + it + "/v2.0",
		RequestURIParameterSupported:      false,
		UserinfoEndpoint:                  "https://" + e.cloud(r).msgraph + "/oidc/userinfo",
		AuthorizationEndpoint:             b + "/" + seg + "/oauth2/v2.0/authorize",
		DeviceAuthorizationEndpoint:       b + "/" + seg + "/oauth2/v2.0/devicecode",
		HTTPLogoutSupported:               true,
		FrontchannelLogoutSupported:       true,
		EndSessionEndpoint:                b + "/" + seg + "/oauth2/v2.0/logout",
		ClaimsSupported: []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
			"preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		KerberosEndpoint:   b + "/" + seg + "/kerberos",
		TenantRegionScope:  region,
		CloudInstanceName:  e.cloud(r).instance,
		CloudGraphHostName: e.cloud(r).graphHost,
		MSGraphHost:        e.cloud(r).msgraph,
		RBACURL:            "https://pas.windows.net",
	}
	writeDiscoveryJSON(w, r, doc)
}

func (e *Emulator) handleDiscoveryV1(w http.ResponseWriter, r *http.Request) {
	e.counters.add(func(c *Counters) { c.Discovery++ })
	seg, it, region, ok := e.tenantPathAndIssuer(r)
	if !ok {
		e.writeDiscoveryTenantError(w, r)
		return
	}
	b := e.baseURL(r)
	doc := discoveryV1{
		TokenEndpoint:                     b + "/" + seg + "/oauth2/token",
		TokenEndpointAuthMethodsSupported: authMethods,
		JWKSURI:                           b + "/common/discovery/keys",
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ResponseTypesSupported:            []string{"code", "id_token", "code id_token", "token id_token", "token"},
		ScopesSupported:                   []string{"openid"},
		// The v1 issuer is the STS name, not the host serving it: exactly as real Entra.
		Issuer:                      "https://" + e.cloud(r).sts + "/" + it + "/",
		MicrosoftMultiRefreshToken:  true,
		AuthorizationEndpoint:       b + "/" + seg + "/oauth2/authorize",
		DeviceAuthorizationEndpoint: b + "/" + seg + "/oauth2/devicecode",
		HTTPLogoutSupported:         true,
		FrontchannelLogoutSupported: true,
		EndSessionEndpoint:          b + "/" + seg + "/oauth2/logout",
		ClaimsSupported: []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr",
			"nonce", "email", "given_name", "family_name", "nickname"},
		CheckSessionIframe: b + "/" + seg + "/oauth2/checksession",
		UserinfoEndpoint:   b + "/" + seg + "/openid/userinfo",
		KerberosEndpoint:   b + "/" + seg + "/kerberos",
		TenantRegionScope:  region,
		CloudInstanceName:  e.cloud(r).instance,
		CloudGraphHostName: e.cloud(r).graphHost,
		MSGraphHost:        e.cloud(r).msgraph,
		RBACURL:            "https://pas.windows.net",
	}
	writeDiscoveryJSON(w, r, doc)
}

func (e *Emulator) writeDiscoveryTenantError(w http.ResponseWriter, r *http.Request) {
	setCORS(w, r)
	e.writeError(w, r, errTenantNotFound(r.PathValue("tenant"), "invalid_tenant"))
}

// handleKeysV2 serves /{tenant}/discovery/v2.0/keys: the v2 key set names its issuer.
func (e *Emulator) handleKeysV2(w http.ResponseWriter, r *http.Request) {
	e.counters.add(func(c *Counters) { c.JWKS++ })
	_, it, _, ok := e.tenantPathAndIssuer(r)
	if !ok {
		e.writeDiscoveryTenantError(w, r)
		return
	}
	writeDiscoveryJSON(w, r, map[string][]jwk{"keys": {e.key.jwk(e.baseURL(r) + "/" + it + "/v2.0")}})
}

// handleKeysV1 serves /common/discovery/keys (and /{tenant}/discovery/keys): the same key.
func (e *Emulator) handleKeysV1(w http.ResponseWriter, r *http.Request) {
	e.counters.add(func(c *Counters) { c.JWKS++ })
	if t := r.PathValue("tenant"); t != "" && e.resolveTenant(t) == tenantUnknown {
		e.writeDiscoveryTenantError(w, r)
		return
	}
	writeDiscoveryJSON(w, r, map[string][]jwk{"keys": {e.key.jwk("")}})
}

func writeDiscoveryJSON(w http.ResponseWriter, r *http.Request, v any) {
	setCORS(w, r)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=86400, private")
	_ = json.NewEncoder(w).Encode(v)
}

// setCORS mirrors Entra's CORS answer for browser (SPA) callers: the Origin is echoed.
func setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "client-request-id, x-ms-request-id, Retry-After")
}

// handlePreflight answers CORS preflight requests for the token and discovery endpoints.
func (e *Emulator) handlePreflight(w http.ResponseWriter, r *http.Request) {
	setCORS(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}
