package signin

import (
	"fmt"
	"strings"
)

// CheckPath checks where the endpoints live: empty (the default, /.auth) or an absolute path without a trailing
// slash and without characters that a matcher or a URL would read otherwise.
func CheckPath(p string) error {
	if p != "" && (!strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/") ||
		strings.ContainsAny(p, "?#\\%; \t{}")) {
		return fmt.Errorf("%q must be an absolute path such as /.auth, without a trailing slash", p)
	}
	return nil
}
