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

// CheckTenant accepts one directory: a tenant ID or a verified domain. The multi-tenant names are refused, since
// their documents publish a templated issuer that names no tenant.
func CheckTenant(t string) error {
	switch strings.ToLower(t) {
	case "":
		return fmt.Errorf("required (the directory's tenant ID or domain)")
	case "common", "organizations", "consumers":
		return fmt.Errorf("%q is not one directory; name the tenant whose users this proxy serves", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%q is not a tenant ID or domain", t)
		}
	}
	return nil
}
