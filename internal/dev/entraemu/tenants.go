package entraemu

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// tenantDirectory holds the other tenants an emulator serves (AddTenant): Entra's one authority host serves
// every tenant, each under its own id and domain.
type tenantDirectory struct {
	mu     sync.RWMutex
	byName map[string]*Emulator // lower-case tenant id and domain
	list   []*Emulator
}

// AddTenant adds another tenant to the emulator, served by the same server: its own directory (users, apps),
// issuer, discovery documents and token endpoint under its tenant id and domain, its own faults and counters.
// A multi-tenant app is an App with the same client id in both tenants (in Entra, its service principal in the
// other tenant). The tenants share the signing key, as Entra's do, so the keys under /common and /organizations
// (which stay the first tenant's, with their {tenantid} issuers) verify every tenant's tokens.
//
// The other tenant's control API is under /_emulator/tenants/{tenant id}/ (token, faults, counters, cae).
func (e *Emulator) AddTenant(cfg Config) (*Emulator, error) {
	if e.resolveTenant(cfg.TenantID) != tenantUnknown || e.resolveTenant(cfg.TenantDomain) != tenantUnknown ||
		e.tenantFor(cfg.TenantID) != nil || e.tenantFor(cfg.TenantDomain) != nil {
		return nil, fmt.Errorf("entraemu: tenant %s (%s) is already served", cfg.TenantID, cfg.TenantDomain)
	}
	if cfg.Now == nil {
		cfg.Now = e.now
	}
	cfg.SigningKey = e.key.priv // no new key to generate; replaced by the very same below
	t, err := New(cfg)
	if err != nil {
		return nil, err
	}
	t.key = e.key
	if b := e.base.Load(); b != nil {
		t.SetBaseURL(*b)
	}
	d := &e.others
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byName == nil {
		d.byName = map[string]*Emulator{}
	}
	d.byName[t.tenant], d.byName[t.domain] = t, t
	d.list = append(d.list, t)
	return t, nil
}

// tenantFor returns the other tenant named by a path segment (its id or domain), or nil.
func (e *Emulator) tenantFor(seg string) *Emulator {
	d := &e.others
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byName[strings.ToLower(seg)]
}

// otherTenants returns the tenants AddTenant added.
func (e *Emulator) otherTenants() []*Emulator {
	e.others.mu.RLock()
	defer e.others.mu.RUnlock()
	return append([]*Emulator(nil), e.others.list...)
}

// serveOtherTenant serves r when it is addressed to another tenant: /{tenant}/... or its control API under
// /_emulator/tenants/{tenant}/....
func (e *Emulator) serveOtherTenant(w http.ResponseWriter, r *http.Request) bool {
	seg, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if seg == "_emulator" && strings.HasPrefix(rest, "tenants/") {
		name, sub, _ := strings.Cut(strings.TrimPrefix(rest, "tenants/"), "/")
		t := e.tenantFor(name)
		if t == nil {
			controlError(w, http.StatusNotFound, "unknown tenant %q", name)
			return true
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/_emulator/"+sub, ""
		t.mux.ServeHTTP(w, r2)
		return true
	}
	if t := e.tenantFor(seg); t != nil {
		t.mux.ServeHTTP(w, r)
		return true
	}
	return false
}

// SecondTenantConfig is a second demo tenant, Fabrikam, with four users of its own, in which the default add-in
// API (a multi-tenant app) is consented by an admin: the tenant of a customer of a multi-tenant add-in.
func SecondTenantConfig() Config {
	cfg := DefaultConfig()
	cfg.TenantID, cfg.TenantDomain, cfg.TenantName = SecondTenantID, SecondTenantDomain, "Fabrikam"
	cfg.Users = nil
	for i, name := range []string{"Ava Tran", "Ben Okafor", "Chloe Martin", "Dev Patel"} {
		first, _, _ := strings.Cut(name, " ")
		key := strings.ToLower(first)
		cfg.Users = append(cfg.Users, User{Key: key, ObjectID: fmt.Sprintf("f4b41ca0-0000-4000-8000-%012d", i+1),
			UPN: key + "@" + SecondTenantDomain, Name: name})
	}
	// The add-in's redirect URIs are its home tenant's registration; the service principal has none of its own.
	for i := range cfg.Apps {
		cfg.Apps[i].RedirectURIs = nil
	}
	return cfg
}

// Fixed identifiers of the second demo tenant (SecondTenantConfig).
const (
	SecondTenantID     = "fab41ca0-5eed-4b0b-8c1e-0d2e3f4a5b6c"
	SecondTenantDomain = "fabrikam.onmicrosoft.com"
)
