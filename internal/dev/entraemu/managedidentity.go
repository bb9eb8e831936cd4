package entraemu

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ManagedIdentity is an identity of the emulated host, served by the managed identity endpoint in the App
// Service / Container Apps style: GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...[&client_id=...]
// with the X-IDENTITY-HEADER: $IDENTITY_HEADER header.
type ManagedIdentity struct {
	ClientID string // the identity's client (application) id, a GUID
	ObjectID string // its service principal's object id (oid, sub), a GUID: a federated credential's subject
	// SystemAssigned makes it the identity a request without client_id gets.
	SystemAssigned bool
}

// managedIdentityPath is the endpoint's path on the emulator; IDENTITY_ENDPOINT is the base URL plus this.
const managedIdentityPath = "/msi/token"

// appServiceAPIVersion is the only api-version of the App Service style endpoint.
const appServiceAPIVersion = "2019-08-01"

// ManagedIdentityEndpoint returns what the host would put in IDENTITY_ENDPOINT and IDENTITY_HEADER.
func (e *Emulator) ManagedIdentityEndpoint() (endpoint, header string) {
	return e.baseURL(nil) + managedIdentityPath, e.identityHeader()
}

// identityHeader is the X-IDENTITY-HEADER secret: Config.IdentityHeader, or one derived from the tenant.
func (e *Emulator) identityHeader() string {
	if e.cfg.IdentityHeader != "" {
		return e.cfg.IdentityHeader
	}
	return deterministicGUID("identity-header:" + e.tenant)
}

// ManagedIdentityTokens is how many tokens the endpoint issued for the identity with clientID.
func (e *Emulator) ManagedIdentityTokens(clientID string) int {
	e.credentials.mu.Lock()
	defer e.credentials.mu.Unlock()
	return e.credentials.miCalls[strings.ToLower(clientID)]
}

// miError is the endpoint's error body.
func miError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": msg, "correlationId": newGUID()})
}

func (e *Emulator) handleManagedIdentityToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Header.Get("X-IDENTITY-HEADER") == "":
		miError(w, http.StatusBadRequest, "The X-IDENTITY-HEADER header is missing.")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != e.identityHeader():
		miError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is not valid.")
		return
	case q.Get("api-version") != appServiceAPIVersion:
		miError(w, http.StatusBadRequest, "The api-version '"+q.Get("api-version")+"' is not supported; use "+appServiceAPIVersion+".")
		return
	case q.Get("resource") == "":
		miError(w, http.StatusBadRequest, "The resource parameter is required.")
		return
	case q.Has("principal_id") || q.Has("mi_res_id") || q.Has("object_id"):
		miError(w, http.StatusBadRequest, "The emulator selects user-assigned identities by client_id only.")
		return
	}
	mi := e.managedIdentity(q.Get("client_id"))
	if mi == nil {
		miError(w, http.StatusBadRequest, "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.")
		return
	}
	resource := q.Get("resource")
	now := e.now()
	exp := now.Add(e.cfg.AccessTokenLifetime)
	tok, err := e.key.sign(map[string]any{
		"aud": resource, "iss": e.issuerV2(r), "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		"azp": mi.ClientID, "azpacr": "2", "idtyp": "app", "oid": mi.ObjectID, "sub": mi.ObjectID,
		"tid": e.tenant, "uti": newOpaque(16), "ver": "2.0",
		"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + mi.ClientID,
	}, false)
	if err != nil {
		miError(w, http.StatusInternalServerError, "There was an error issuing a token.")
		return
	}
	e.credentials.mu.Lock()
	if e.credentials.miCalls == nil {
		e.credentials.miCalls = map[string]int{}
	}
	e.credentials.miCalls[strings.ToLower(mi.ClientID)]++
	e.credentials.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok, "expires_on": strconv.FormatInt(exp.Unix(), 10), "resource": resource,
		"token_type": "Bearer", "client_id": mi.ClientID,
	})
}

// managedIdentity picks the identity: by client id, or the system-assigned one when none is named.
func (e *Emulator) managedIdentity(clientID string) *ManagedIdentity {
	for i := range e.cfg.ManagedIdentities {
		mi := &e.cfg.ManagedIdentities[i]
		if (clientID == "" && mi.SystemAssigned) || (clientID != "" && strings.EqualFold(mi.ClientID, clientID)) {
			return mi
		}
	}
	return nil
}

// credentialRoutes serves the managed identity endpoint, the hosted workload issuers, and the record of how an
// app authenticated (GET /_emulator/credentials/{client id}: {"secret":0,"certificate":3,...}).
func (e *Emulator) credentialRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_emulator/credentials/{client}", func(w http.ResponseWriter, r *http.Request) {
		writeControlJSON(w, http.StatusOK, e.ClientCredentials(r.PathValue("client")))
	})
	m.HandleFunc("GET "+managedIdentityPath, e.handleManagedIdentityToken)
	m.HandleFunc("GET "+workloadIssuerPath+"{name}/.well-known/openid-configuration", e.handleWorkloadDiscovery)
	m.HandleFunc("GET "+workloadIssuerPath+"{name}/openid/v1/jwks", e.handleWorkloadJWKS)
}
