// Package entraemu is a local emulator of the Microsoft Entra ID (Azure AD) security token service.
//
// It serves the same paths, JSON shapes and AADSTS error bodies as login.microsoftonline.com for the
// flows a middle tier needs: OpenID discovery (v1 and v2), signing keys, the token endpoint
// (on-behalf-of, refresh_token, authorization_code with PKCE, client_credentials), an interactive
// authorize endpoint with a "pick a demo user" page followed by distinct MFA and consent steps, logout, fault
// injection and a control API. App registrations follow Entra's rules for browsers (platforms.go): spa and web
// redirect URIs, public and confidential clients, loopback redirect URIs that match whatever their port, and
// combined consent through knownClientApplications (steps.go). Clients authenticate with a secret, a client
// assertion signed by a registered certificate, or a federated credential (assertion.go, federated.go); an App
// Service style managed identity endpoint (managedidentity.go) issues the host's identity tokens. The cloud
// follows the host the emulator is reached as (cloud.go).
//
// It mints real, signed tokens for a fake tenant, so it is a development and test tool only: never
// expose it beyond the loopback interface (Start refuses to unless told otherwise).
//
// Deliberate differences from real Entra are documented where they occur (Config.AllowRefreshTokenReuse,
// the error catalogue in errors.go).
package entraemu

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

// User is a demo user of the emulated tenant.
type User struct {
	Key      string // short login name used by the control API and the picker, e.g. "adele"
	ObjectID string // the user's object id (oid claim), a GUID
	UPN      string // user principal name, e.g. AdeleV@contoso.onmicrosoft.com
	Name     string // display name
}

// Scope is a delegated permission exposed by a resource.
type Scope struct {
	Value            string // e.g. "User.Read"
	AdminConsentOnly bool   // users cannot consent to it themselves
}

// Resource is an API that tokens can be issued for (Microsoft Graph, a downstream API).
type Resource struct {
	AppID              string   // the resource's application (client) id, a GUID
	IdentifierURIs     []string // e.g. https://graph.microsoft.com or api://downstream
	Scopes             []Scope  // delegated permissions
	AppRoles           []string // application permissions (roles claim of app-only tokens)
	AccessTokenVersion int      // 1 or 2; 0 means 1
	Name               string   // display name; optional
}

// App is an application registration: a client and optionally an API (resource) itself.
type App struct {
	ClientID, Secret, Name string              // Secret "" makes it a public client (no client authentication)
	IdentifierURIs         []string            // e.g. api://localhost/<client id>; the app's own API
	ExposedScopes          []string            // e.g. access_as_user
	RedirectURIs           []string            // registered reply URLs of the web platform (platforms.go: matching)
	SPARedirectURIs        []string            // registered reply URLs of the single-page-application platform
	AccessTokenVersion     int                 // version of tokens issued FOR this app as a resource; default 1
	RequiredPermissions    map[string][]string // resource identifier (URI or app id) -> static delegated scopes (what .default means)
	PreConsented           bool                // admin consent granted for RequiredPermissions for all users
	// ApplicationPermissions are app roles granted (with admin consent) to this app, by resource
	// identifier: they become the roles claim of client_credentials tokens.
	ApplicationPermissions map[string][]string
	// OtherSecrets are more client secrets of a confidential app: Entra keeps several at once, which is how a
	// secret is rotated without downtime.
	OtherSecrets []string
	// Certificates are the app's certificate credentials (keyCredentials): client assertions signed with their
	// keys authenticate it (see assertion.go).
	Certificates []*x509.Certificate
	// FederatedCredentials are its federated identity credentials (see federated.go).
	FederatedCredentials []FederatedCredential
	// KnownClientApplications are client apps (by client id) whose consent to this app's API also consents this
	// app's RequiredPermissions (Entra's combined consent for a client and its middle tier).
	KnownClientApplications []string
}

// hasSecret reports whether s is one of the app's client secrets.
func (a *App) hasSecret(s string) bool {
	ok := subtle.ConstantTimeCompare([]byte(s), []byte(a.Secret)) == 1
	for _, o := range a.OtherSecrets {
		ok = subtle.ConstantTimeCompare([]byte(s), []byte(o)) == 1 || ok
	}
	return ok
}

// Config configures an Emulator. Zero values get sensible defaults in New.
type Config struct {
	TenantID     string
	TenantDomain string
	TenantName   string // display name shown on the sign-in page; default derived from the domain

	Users     []User
	Apps      []App
	Resources []Resource

	AccessTokenLifetime  time.Duration // default 1h (MSAL ignores tokens with expires_in <= 300s)
	RefreshTokenLifetime time.Duration // default 24h; a sliding inactivity window renewed by each rotation
	RefreshIn            time.Duration // when > 0, token responses carry refresh_in (seconds); real Entra sends it only for some tokens
	Now                  func() time.Time

	// AllowRefreshTokenReuse turns off strict rotation. Real Entra keeps a redeemed refresh token
	// valid until it expires; the emulator by default rejects a second redemption with
	// invalid_grant AADSTS70000 so that clients which race two refreshes of one token are caught
	// (a client that survives strict rotation also works against real Entra).
	AllowRefreshTokenReuse bool

	// SigningKey optionally supplies the RSA key (>= 2048 bits) used to sign tokens; New generates one otherwise.
	SigningKey any

	// ManagedIdentities are the identities the managed identity endpoint serves (managedidentity.go), and
	// IdentityHeader the X-IDENTITY-HEADER it requires (default: derived from the tenant id).
	ManagedIdentities []ManagedIdentity
	IdentityHeader    string
}

// Emulator is the emulated tenant. It is an http.Handler and safe for concurrent use.
type Emulator struct {
	cfg     Config
	now     func() time.Time
	tenant  string // lower-case tenant GUID
	domain  string // lower-case domain
	name    string
	key     *signingKey
	capolID string // the conditional access policy id used in MFA claims challenges

	users      map[string]*User // by lower-case key
	usersByOID map[string]*User // by lower-case oid
	apps       map[string]*App  // by lower-case client id
	resources  []*resourceInfo
	graph      *resourceInfo

	base atomic.Pointer[string]
	mux  *http.ServeMux

	mu        sync.Mutex
	refresh   map[string]*refreshRecord // sha256(token) -> record
	codes     map[string]*codeRecord    // sha256(code) -> record
	sessions  map[string]*session       // sha256(cookie) -> session
	consents  map[string]map[string]bool
	revokeGen map[string]int       // user key -> generation bumped by RevokeRefreshTokens
	revokedAt map[string]time.Time // user key -> TokensValidFrom
	faults    map[string]*faultState
	mfaSIDs   map[string]bool // sign-in sessions that satisfied MFA
	sweepTick int

	counters    counterState
	credentials credentialLog   // client authentications, managed identity tokens, used jti values
	federated   federatedState  // federated credentials added at run time, hosted workload issuers
	others      tenantDirectory // more tenants on the same host (tenants.go)
	cae         caeState        // CAE revocations enforced by the downstream stub (cae.go)
	requests    requestLog      // the claims of recent token requests (claims.go)
}

// Grant names used in Counters.
const (
	GrantOBO               = "obo"
	GrantRefreshToken      = "refresh_token"
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
)

const (
	defaultAccessTokenLifetime  = time.Hour
	defaultRefreshTokenLifetime = 24 * time.Hour
	// defaultBaseURL is only used for tokens minted before any request or SetBaseURL told the
	// emulator where it lives.
	defaultBaseURL = "https://localhost"
)

// New validates cfg and returns an emulator with a fresh RSA-2048 signing key (kid = its thumbprint).
func New(cfg Config) (*Emulator, error) {
	if !identity.IsGUID(cfg.TenantID) {
		return nil, fmt.Errorf("entraemu: TenantID %q is not a GUID", cfg.TenantID)
	}
	if cfg.TenantDomain == "" {
		return nil, errors.New("entraemu: TenantDomain is required")
	}
	if cfg.AccessTokenLifetime == 0 {
		cfg.AccessTokenLifetime = defaultAccessTokenLifetime
	}
	if cfg.RefreshTokenLifetime == 0 {
		cfg.RefreshTokenLifetime = defaultRefreshTokenLifetime
	}
	if cfg.AccessTokenLifetime < 0 || cfg.RefreshTokenLifetime < 0 {
		return nil, errors.New("entraemu: token lifetimes must be positive")
	}
	cfg = cloneDirectory(cfg) // the caller keeps its slices and maps; we never share them
	e := &Emulator{
		cfg:        cfg,
		now:        cfg.Now,
		tenant:     strings.ToLower(cfg.TenantID),
		domain:     strings.ToLower(cfg.TenantDomain),
		name:       cfg.TenantName,
		users:      map[string]*User{},
		usersByOID: map[string]*User{},
		apps:       map[string]*App{},
		refresh:    map[string]*refreshRecord{},
		codes:      map[string]*codeRecord{},
		sessions:   map[string]*session{},
		consents:   map[string]map[string]bool{},
		revokeGen:  map[string]int{},
		revokedAt:  map[string]time.Time{},
		faults:     map[string]*faultState{},
		mfaSIDs:    map[string]bool{},
		capolID:    deterministicGUID("capolid:" + cfg.TenantID),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.name == "" {
		e.name = strings.SplitN(cfg.TenantDomain, ".", 2)[0]
	}
	if err := e.loadDirectory(); err != nil {
		return nil, err
	}
	key, err := newSigningKey(cfg.SigningKey, e.tenant)
	if err != nil {
		return nil, err
	}
	e.key = key
	e.counters.reset()
	e.mux = e.routes()
	return e, nil
}

func (e *Emulator) loadDirectory() error {
	for i := range e.cfg.Users {
		u := &e.cfg.Users[i]
		if u.Key == "" || !identity.IsGUID(u.ObjectID) || u.UPN == "" {
			return fmt.Errorf("entraemu: user %d needs Key, a GUID ObjectID and UPN", i)
		}
		k := strings.ToLower(u.Key)
		if _, dup := e.users[k]; dup {
			return fmt.Errorf("entraemu: duplicate user key %q", u.Key)
		}
		e.users[k] = u
		e.usersByOID[strings.ToLower(u.ObjectID)] = u
	}
	for i := range e.cfg.Apps {
		a := &e.cfg.Apps[i]
		if !identity.IsGUID(a.ClientID) {
			return fmt.Errorf("entraemu: app %q: ClientID must be a GUID", a.Name)
		}
		k := strings.ToLower(a.ClientID)
		if _, dup := e.apps[k]; dup {
			return fmt.Errorf("entraemu: duplicate app %s", a.ClientID)
		}
		e.apps[k] = a
		if len(a.IdentifierURIs) > 0 || len(a.ExposedScopes) > 0 {
			e.resources = append(e.resources, resourceFromApp(a))
		}
	}
	for i := range e.cfg.Resources {
		r := &e.cfg.Resources[i]
		if !identity.IsGUID(r.AppID) {
			return fmt.Errorf("entraemu: resource %v: AppID must be a GUID", r.IdentifierURIs)
		}
		if slices.ContainsFunc(e.cfg.Resources[:i], func(x Resource) bool { return strings.EqualFold(x.AppID, r.AppID) }) {
			return fmt.Errorf("entraemu: resource %s is defined twice", r.AppID)
		}
		ri := resourceFromConfig(r)
		if j := slices.IndexFunc(e.resources, func(x *resourceInfo) bool { return strings.EqualFold(x.appID, r.AppID) }); j >= 0 {
			e.resources[j] = ri // an app's API described in full as a Resource: that wins
		} else {
			e.resources = append(e.resources, ri)
		}
		if ri.isGraph {
			e.graph = ri
		}
	}
	return nil
}

// cloneDirectory deep-copies the directory parts of cfg.
func cloneDirectory(cfg Config) Config {
	cfg.Users = slices.Clone(cfg.Users)
	cfg.Apps = slices.Clone(cfg.Apps)
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		a.IdentifierURIs = slices.Clone(a.IdentifierURIs)
		a.ExposedScopes = slices.Clone(a.ExposedScopes)
		a.RedirectURIs = slices.Clone(a.RedirectURIs)
		a.SPARedirectURIs = slices.Clone(a.SPARedirectURIs)
		a.KnownClientApplications = slices.Clone(a.KnownClientApplications)
		a.RequiredPermissions = cloneListMap(a.RequiredPermissions)
		a.ApplicationPermissions = cloneListMap(a.ApplicationPermissions)
		a.Certificates = slices.Clone(a.Certificates)
		a.FederatedCredentials = slices.Clone(a.FederatedCredentials)
	}
	cfg.ManagedIdentities = slices.Clone(cfg.ManagedIdentities)
	cfg.Resources = slices.Clone(cfg.Resources)
	for i := range cfg.Resources {
		r := &cfg.Resources[i]
		r.IdentifierURIs = slices.Clone(r.IdentifierURIs)
		r.Scopes = slices.Clone(r.Scopes)
		r.AppRoles = slices.Clone(r.AppRoles)
	}
	return cfg
}

func cloneListMap(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// TenantID returns the emulated tenant's GUID (lower case, as in the tid claim).
func (e *Emulator) TenantID() string { return e.tenant }

// SetBaseURL fixes the issuer base URL (scheme://host[:port], no trailing slash). Without it the
// base URL is derived from each request.
func (e *Emulator) SetBaseURL(u string) {
	u = strings.TrimRight(u, "/")
	e.base.Store(&u)
	for _, t := range e.otherTenants() {
		t.SetBaseURL(u)
	}
}

// baseURL is where the emulator is reached, as the issuer and endpoints must say.
func (e *Emulator) baseURL(r *http.Request) string {
	if p := e.base.Load(); p != nil {
		return *p
	}
	if r == nil {
		return defaultBaseURL
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// ServeHTTP serves every endpoint: discovery, keys, token, authorize, logout and /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.serveOtherTenant(w, r) {
		return
	}
	e.mux.ServeHTTP(w, r)
}

func (e *Emulator) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.handleDiscoveryV2)
	m.HandleFunc("GET /{tenant}/.well-known/openid-configuration", e.handleDiscoveryV1)
	m.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.handleKeysV2)
	m.HandleFunc("GET /{tenant}/discovery/keys", e.handleKeysV1)
	m.HandleFunc("GET /discovery/keys", e.handleKeysV1)
	m.HandleFunc("OPTIONS /{tenant}/v2.0/.well-known/openid-configuration", e.handlePreflight)
	m.HandleFunc("OPTIONS /{tenant}/.well-known/openid-configuration", e.handlePreflight)
	m.HandleFunc("OPTIONS /{tenant}/discovery/v2.0/keys", e.handlePreflight)
	m.HandleFunc("OPTIONS /{tenant}/discovery/keys", e.handlePreflight)

	m.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.handleTokenV2)
	m.HandleFunc("POST /{tenant}/oauth2/token", e.handleTokenV1)
	m.HandleFunc("OPTIONS /{tenant}/oauth2/v2.0/token", e.handlePreflight)
	m.HandleFunc("OPTIONS /{tenant}/oauth2/token", e.handlePreflight)

	m.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", e.handleAuthorize)
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", e.handleAuthorize)
	m.HandleFunc("GET /{tenant}/oauth2/v2.0/logout", e.handleLogout)
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/logout", e.handleLogout)
	m.HandleFunc("GET /error", e.handleErrorPage)

	e.controlRoutes(m)
	e.credentialRoutes(m)
	e.caeRoutes(m)
	return m
}

// tenantKind tells how a {tenant} path segment resolved.
type tenantKind int

const (
	tenantUnknown tenantKind = iota
	tenantOwn                // the tenant GUID or its domain
	tenantMulti              // common or organizations
)

func (e *Emulator) resolveTenant(seg string) tenantKind {
	switch strings.ToLower(seg) {
	case e.tenant, e.domain:
		return tenantOwn
	case "common", "organizations":
		return tenantMulti
	}
	return tenantUnknown
}

func (e *Emulator) userByKey(k string) *User { return e.users[strings.ToLower(k)] }

func (e *Emulator) appByID(id string) *App { return e.apps[strings.ToLower(id)] }
