package signin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/acquire"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
)

// Sign-in modes: how the callback ends.
const (
	modeRedirect = ""       // a full-page navigation: the callback redirects to return_to
	modePopup    = "popup"  // a window.open popup: the callback posts a message to the opener and closes
	modeDialog   = "dialog" // an Office dialog (displayDialogAsync): like popup, plus Office.context.ui.messageParent
)

// The pre-login cookie is named per sign-in attempt, so that two tabs signing in at once do not overwrite each
// other's state. Its __Host- variant is used whenever the request is secure: a sibling subdomain can plant a
// __Secure- cookie (Domain=), and a planted pre-login cookie is login CSRF. Earlier versions used __Secure- with
// Path={Path}; those are only expired.
const (
	preLoginCookie       = session.PreLoginCookiePrefix
	hostPreLoginCookie   = "__Host-" + preLoginCookie
	legacyPreLoginCookie = "__Secure-" + preLoginCookie
	preLoginPurpose      = "signin.prelogin"
	maxPendingLogins     = 3    // pre-login cookies a browser keeps at once; older ones are expired
	maxPreLoginCookie    = 3800 // bytes; browsers drop cookies over 4096
	maxExtraScopes       = 20
	maxClaims            = 4096
	maxLoginHint         = 256
)

var prompts = []string{"", "login", "consent", "select_account", "none", "create"}

// preLogin is what the pre-login cookie holds (sealed) between login and callback.
type preLogin struct {
	State    string   `json:"st"`
	Nonce    string   `json:"no"`
	Verifier string   `json:"cv"`
	ReturnTo string   `json:"rt"`
	Mode     string   `json:"m,omitempty"`
	Scopes   []string `json:"sc"`
	Redirect string   `json:"ru"`
	Binding  string   `json:"bd,omitempty"` // bindingHash of the opener's binding (see handoffPurpose)
	Created  int64    `json:"ct"`           // unix seconds
}

// login starts the authorization code flow: PKCE, state and nonce sealed into a pre-login cookie, then a redirect
// to Entra. Query: see parseLogin.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string) {
		h.fail(w, r, failure{status: http.StatusBadRequest, title: "Cannot start sign-in", message: msg}, nil)
	}
	lr, problem := parseLogin(r)
	if problem != "" {
		bad(problem)
		return
	}
	verifier := randomString(32)
	pl := preLogin{
		State:    randomString(32),
		Nonce:    randomString(32),
		Verifier: verifier,
		ReturnTo: lr.returnTo,
		Mode:     lr.mode,
		Scopes:   h.scopes(lr.extra),
		Redirect: h.redirectURI(r),
		Created:  h.cfg.Now().Unix(),
	}
	if lr.binding != "" {
		pl.Binding = bindingHash(lr.binding)
	}
	plain, _ := json.Marshal(pl)
	sealed, err := h.sessions.Seal(plain, preLoginPurpose)
	if err != nil || len(sealed) > maxPreLoginCookie {
		bad("The sign-in request is too large: ask for fewer scopes or a shorter return path.")
		return
	}
	authURL, err := h.idp.AuthCodeURL(r.Context(), acquire.AuthCodeParams{RedirectURI: pl.Redirect, Scopes: pl.Scopes,
		State: pl.State, Nonce: pl.Nonce, CodeChallenge: pkceChallenge(verifier), Prompt: lr.prompt, LoginHint: lr.hint,
		Claims: lr.claims})
	if err != nil {
		h.log.Error("signin: cannot build the authorize URL", zap.Error(err))
		h.fail(w, r, failure{status: http.StatusBadGateway, title: "Cannot start sign-in",
			message: "The identity provider is not reachable. Try again later."}, nil)
		return
	}
	h.prunePreLogins(w, r)
	http.SetCookie(w, h.preLoginCookie(r, preLoginName(r, pl.State), sealed, int(h.cfg.LoginTimeout/time.Second)))
	w.Header().Set("Location", authURL)
	w.WriteHeader(http.StatusFound)
}

// loginRequest is a login's query, checked.
type loginRequest struct {
	mode, claims, prompt, hint, binding, returnTo string
	extra                                         []string
}

// parseLogin checks r's query: return_to, mode (popup|dialog), scope (extra scopes, space separated), claims,
// prompt, login_hint, binding (the opener's random value the handoff will be bound to). It returns what is
// wrong, or "".
func parseLogin(r *http.Request) (loginRequest, string) {
	q := r.URL.Query()
	lr := loginRequest{mode: q.Get("mode"), extra: strings.Fields(q.Get("scope")), claims: q.Get("claims"),
		prompt: q.Get("prompt"), hint: q.Get("login_hint"), binding: q.Get("binding")}
	switch {
	case lr.mode != modeRedirect && lr.mode != modePopup && lr.mode != modeDialog:
		return lr, "mode must be popup or dialog."
	case len(lr.extra) > maxExtraScopes || !all(lr.extra, validScope):
		return lr, "scope must be up to 20 valid scopes separated by spaces."
	case lr.claims != "" && (len(lr.claims) > maxClaims || !isJSONObject(lr.claims)):
		return lr, "claims must be a JSON object (a claims challenge)."
	case !slices.Contains(prompts, lr.prompt):
		return lr, "prompt must be login, consent, select_account, none or create."
	case len(lr.hint) > maxLoginHint || !printable(lr.hint):
		return lr, "login_hint is too long or contains control characters."
	case lr.binding != "" && !validBinding(lr.binding):
		return lr, "binding must be 22 to 128 random base64url characters."
	case !validHost(r.Host):
		return lr, "The request's Host is not valid."
	}
	lr.returnTo, _ = SafeReturnPath(q.Get("return_to")) // anything unsafe (or missing) becomes "/"
	return lr, ""
}

// LoginURL returns the same-origin login URL for the 401 contract's login_url: back to r's path and query after
// sign-in, asking for scopes (incremental consent) and passing a claims challenge through. The scopes are always
// named, because the handler that serves {Path}/login may be another route's, with other default scopes.
// Clients add mode=popup or mode=dialog as they open it.
func (h *Handler) LoginURL(r *http.Request, scopes []string, claims string) string {
	returnTo, _ := SafeReturnPath(r.URL.RequestURI())
	return h.loginURL(returnTo, scopes, claims)
}

func (h *Handler) loginURL(returnTo string, scopes []string, claims string) string {
	v := url.Values{}
	v.Set("return_to", returnTo)
	var extra []string
	for _, s := range scopes {
		if !identity.IsSignInScope(s) && !slices.Contains(extra, s) {
			extra = append(extra, s)
		}
	}
	if len(extra) > 0 {
		v.Set("scope", strings.Join(extra, " "))
	}
	if claims != "" {
		v.Set("claims", claims)
	}
	return h.cfg.Path + "/login?" + v.Encode()
}

// scopes are the configured scopes, then the extra ones, then the OpenID Connect scopes, without repeats. The
// first resource's scopes come first because Entra issues the code's access token for that resource.
func (h *Handler) scopes(extra []string) []string {
	var out []string
	for _, list := range [][]string{h.cfg.Scopes, extra, identity.SignInScopes} {
		for _, s := range list {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// redirectURI is <scheme>://<host>{Path}/callback for r: exactly what must be registered on the app in Entra.
func (h *Handler) redirectURI(r *http.Request) string {
	return origin(r) + h.callbackPath
}

// preLoginName names the pre-login cookie of the attempt with state: a hash, so the name reveals nothing.
func preLoginName(r *http.Request, state string) string {
	sum := sha256.Sum256([]byte(state))
	return preLoginPrefix(r) + base64.RawURLEncoding.EncodeToString(sum[:12])
}

// preLoginPrefix is the name prefix of the pre-login cookies r's callback reads.
func preLoginPrefix(r *http.Request) string {
	if session.SecureRequest(r) {
		return hostPreLoginCookie
	}
	return preLoginCookie
}

// preLoginCookie is Path=/ with no Domain, as __Host- requires (so it reaches every path, and StripCookie keeps it
// from upstreams), SameSite=Lax so it survives the top-level redirect back from Entra, and never Partitioned:
// sign-in always runs in a top-level window (a redirect, a popup or an Office dialog), because Entra refuses to
// be framed.
func (h *Handler) preLoginCookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	path := "/"
	if strings.HasPrefix(name, legacyPreLoginCookie) {
		path = h.cfg.Path // where earlier versions set it
	}
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: session.SecureRequest(r) || strings.HasPrefix(name, "__"), SameSite: http.SameSiteLaxMode}
}

// prunePreLogins expires pre-login cookies that no longer open, have expired or are not of r's form (legacy
// __Secure- ones), and the oldest beyond maxPendingLogins-1, so abandoned sign-ins cannot grow the Cookie header
// without bound.
func (h *Handler) prunePreLogins(w http.ResponseWriter, r *http.Request) {
	type pending struct {
		name    string
		created int64
	}
	var live []pending
	current := preLoginPrefix(r)
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, preLoginCookie) && !strings.HasPrefix(c.Name, hostPreLoginCookie) &&
			!strings.HasPrefix(c.Name, legacyPreLoginCookie) {
			continue
		}
		if pl, ok := h.openPreLogin(c.Value); ok && !h.preLoginExpired(pl) && strings.HasPrefix(c.Name, current) {
			live = append(live, pending{c.Name, pl.Created})
			continue
		}
		http.SetCookie(w, h.preLoginCookie(r, c.Name, "", -1))
	}
	sort.Slice(live, func(i, j int) bool { return live[i].created > live[j].created })
	for i := maxPendingLogins - 1; i < len(live); i++ {
		http.SetCookie(w, h.preLoginCookie(r, live[i].name, "", -1))
	}
}

func (h *Handler) openPreLogin(v string) (preLogin, bool) {
	var pl preLogin
	plain, err := h.sessions.Open(v, preLoginPurpose)
	if err != nil || json.Unmarshal(plain, &pl) != nil || pl.State == "" || pl.Verifier == "" {
		return preLogin{}, false
	}
	return pl, true
}

func (h *Handler) preLoginExpired(pl preLogin) bool {
	return !h.cfg.Now().Before(time.Unix(pl.Created, 0).Add(h.cfg.LoginTimeout))
}

// pkceChallenge is the S256 code challenge of verifier (RFC 7636).
func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomString returns n random bytes as unpadded base64url; 32 bytes make a 43-character PKCE verifier.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// validScope reports whether s is an RFC 6749 scope token.
func validScope(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func validHost(host string) bool {
	if host == "" || len(host) > 255 || strings.ContainsAny(host, "/\\@?#%\"' ") {
		return false
	}
	u, err := url.Parse("//" + host)
	return err == nil && u.Host == host
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func isJSONObject(s string) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal([]byte(s), &m) == nil
}

func all(list []string, ok func(string) bool) bool {
	for _, s := range list {
		if !ok(s) {
			return false
		}
	}
	return true
}
