package entra

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultAuthorityHost is the public cloud's sign-in host.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// CheckAuthorityHost returns s without a trailing slash if it is an https URL of a host and nothing else, the
// form Entra's authority hosts take (https://login.microsoftonline.com, https://login.microsoftonline.us).
func CheckAuthorityHost(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" ||
		u.Fragment != "" || strings.HasSuffix(s, "?") {
		return "", fmt.Errorf("%q is not an https URL of a host (like %s)", s, DefaultAuthorityHost)
	}
	return s, nil
}

// CheckTenant accepts a tenant ID, a verified domain, or the multi-tenant organizations and common (see
// IsMultiTenant). consumers is refused: personal accounts cannot call a work API On-Behalf-Of.
func CheckTenant(t string) error {
	switch strings.ToLower(t) {
	case "":
		return fmt.Errorf("required (the directory's tenant ID or domain)")
	case "consumers":
		return fmt.Errorf("%q is personal Microsoft accounts only; name the tenant, or organizations for several", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%q is not a tenant ID or domain", t)
		}
	}
	return nil
}

// IsMultiTenant reports whether t names every work tenant (organizations) or every tenant (common) rather than
// one: the callers' own tenants are then the ones that matter, and their documents publish a templated issuer.
func IsMultiTenant(t string) bool {
	return strings.EqualFold(t, "organizations") || strings.EqualFold(t, "common")
}
