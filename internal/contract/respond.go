package contract

import (
	"net/http"
)

// Options are a route's part in an answer.
type Options struct {
	// Scopes are the route's scopes, named in interaction_required answers (incremental consent).
	Scopes []string
	// LoginURL, set when the proxy runs sign-in, builds the same-origin URL that fixes an interaction_required
	// answer, asking for scopes and passing Entra's claims challenge through.
	LoginURL func(r *http.Request, scopes []string, claims string) string
}

// Respond writes the answer for err, the one decision of what a refused client gets: the problem Decide maps err
// to; with sign-in, the login_url that fixes an interaction_required answer, and a 302 there for a browser
// navigation (which cannot act on a 401). It returns the problem for the caller's placeholders and log line.
func Respond(w http.ResponseWriter, r *http.Request, err error, o Options) *Problem {
	p := Decide(err, o.Scopes)
	if o.LoginURL != nil && p.Status == http.StatusUnauthorized && p.Code == CodeInteractionRequired {
		p.LoginURL = o.LoginURL(r, p.Scopes, p.Claims)
		if IsNavigation(r) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, p.LoginURL, http.StatusFound)
			return p
		}
	}
	p.Write(w)
	return p
}
