package callerauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

// tenantTemplate is what a multi-tenant discovery document (organizations, common) names the tenant in its
// issuer: https://login.microsoftonline.com/{tenantid}/v2.0 and https://sts.windows.net/{tenantid}/.
const tenantTemplate = "{tenantid}"

// tenantSet is the tenants a multi-tenant validator takes callers from.
type tenantSet struct {
	any bool
	ids map[string]bool // lower-case tids
}

// newTenantSet checks allowed against the configured tenant: required (tids, or "*") with a multi-tenant one,
// refused with one directory, whose own tid is the only one taken.
func newTenantSet(tenant string, allowed []string) (tenantSet, error) {
	if !entra.IsMultiTenant(tenant) {
		if len(allowed) > 0 {
			return tenantSet{}, errors.New("callerauth: AllowedTenants is only for a multi-tenant Tenant (organizations, common)")
		}
		return tenantSet{}, nil
	}
	if len(allowed) == 0 {
		return tenantSet{}, fmt.Errorf("callerauth: tenant %s takes callers of any tenant: AllowedTenants must name their tenant ids, or be * for any", tenant)
	}
	set := tenantSet{ids: map[string]bool{}}
	for _, t := range allowed {
		switch {
		case t == "*":
			set.any = true
		case identity.IsGUID(t):
			set.ids[strings.ToLower(t)] = true
		default:
			return tenantSet{}, fmt.Errorf("callerauth: allowed tenant %q is not a tenant id (a GUID) or *", t)
		}
	}
	return set, nil
}

// takes reports whether a token's tid is acceptable: the directory's own (own, from its discovery document), or,
// for a multi-tenant validator (own empty), an allowed tenant. A multi-tenant tid must be a GUID, since it is
// put into the issuer template.
func (s tenantSet) takes(tid, own string) bool {
	if own != "" {
		return tid == own
	}
	return identity.IsGUID(tid) && (s.any || s.ids[strings.ToLower(tid)])
}

// multiTenantDiscovery keeps a multi-tenant document's issuers as templates; each token's is checked against its
// own tid (keySet.acceptsIssuer).
func (s *keyStore) multiTenantDiscovery(v2, v1 discoveryDoc, v1Err error) (discovery, error) {
	if !issuerNamesTenant(v2.Issuer, tenantTemplate) {
		return discovery{}, s.misconfigured(fmt.Errorf("v2 issuer %q names no %s", v2.Issuer, tenantTemplate),
			"the multi-tenant discovery document is not Entra's: check authority_host")
	}
	d := discovery{v2Issuer: v2.Issuer, v2JWKS: v2.JWKSURI}
	if v1Err == nil && issuerNamesTenant(v1.Issuer, tenantTemplate) {
		d.v1Issuer, d.v1JWKS = v1.Issuer, v1.JWKSURI
	}
	return d, nil
}
