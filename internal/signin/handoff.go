package signin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/identity"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// The handoff carries a sign-in from the popup or dialog window into the framed add-in when session cookies are
// partitioned (CHIPS): the two have different cookie partitions, so the add-in POSTs the handoff to
// {Path}/handoff, which starts a session in its own partition. It is sealed, single-use and short-lived, and bound
// to the sign-in that made it: the opener chose a random binding at login (login?mode=popup&binding=...), the
// pre-login cookie carried its hash, the handoff seals that hash, and /handoff wants the binding itself. A sealed
// handoff copied into another browser is therefore useless without the opener's binding.
const (
	handoffPurpose = "signin.handoff"
	handoffTTL     = 2 * time.Minute
	minBinding     = 22 // base64url characters: 132 bits
	maxBinding     = 128
)

type handoffClaims struct {
	ID       string `json:"id"`
	Expires  int64  `json:"exp"`
	Binding  string `json:"bh"` // bindingHash of the opener's binding
	UserKey  string `json:"uk"`
	ObjectID string `json:"oid,omitempty"`
	TenantID string `json:"tid,omitempty"`
	Username string `json:"un,omitempty"`
	Name     string `json:"nm,omitempty"`
}

// validBinding reports whether b is a binding the opener may choose: 22 to 128 base64url characters.
func validBinding(b string) bool {
	if len(b) < minBinding || len(b) > maxBinding {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// bindingHash is what the pre-login cookie and the handoff keep of a binding.
func bindingHash(b string) string {
	sum := sha256.Sum256([]byte("token_injector:binding:" + b))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (h *Handler) sealHandoff(u identity.User, binding string) (string, error) {
	b, _ := json.Marshal(handoffClaims{ID: randomString(16), Expires: h.cfg.Now().Add(handoffTTL).Unix(),
		Binding: binding, UserKey: u.Key(), ObjectID: u.ObjectID, TenantID: u.TenantID, Username: u.Username,
		Name: u.Name})
	return h.sessions.Seal(b, handoffPurpose)
}

// openHandoff opens v and checks it against the binding presented with it.
func (h *Handler) openHandoff(v, binding string) (handoffClaims, bool) {
	var c handoffClaims
	b, err := h.sessions.Open(v, handoffPurpose)
	if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" || c.UserKey == "" || c.Binding == "" ||
		!h.cfg.Now().Before(time.Unix(c.Expires, 0)) {
		return handoffClaims{}, false
	}
	if subtle.ConstantTimeCompare([]byte(bindingHash(binding)), []byte(c.Binding)) != 1 {
		return handoffClaims{}, false
	}
	return c, true
}

// handoff starts a session in the caller's cookie partition from a handoff the popup or dialog page posted (see
// handoffPurpose). The request must come from this origin or an allowed one, so a foreign page cannot plant its
// own sign-in (login CSRF). Body: form fields or JSON members "handoff" and "binding".
func (h *Handler) handoff(w http.ResponseWriter, r *http.Request) {
	if !h.sessions.Partitioned() {
		h.fail(w, r, failure{status: http.StatusNotFound, title: "Not found",
			message: "Session handoff is only used with partitioned cookies."}, nil)
		return
	}
	if o := r.Header.Get("Origin"); o == "" || !h.sameOriginOrAllowed(r, o) {
		h.fail(w, r, failure{status: http.StatusForbidden, title: "Handoff refused",
			message: "The handoff must come from this site or an allowed origin."}, nil)
		return
	}
	v, binding := readHandoff(w, r)
	c, ok := h.openHandoff(v, binding)
	if !ok || !h.markUsed("handoff:"+c.ID, time.Unix(c.Expires, 0)) {
		h.fail(w, r, failure{status: http.StatusBadRequest, title: "Handoff refused",
			message: "The handoff is not valid, has expired, was already used or belongs to another sign-in. Sign in again."}, nil)
		return
	}
	s, err := h.sessions.Create(w, r, session.Session{UserKey: c.UserKey, ObjectID: c.ObjectID, TenantID: c.TenantID,
		Username: c.Username, Name: c.Name})
	if err != nil {
		h.log.Error("signin: cannot store the session", zap.Error(err))
		h.fail(w, r, failure{status: http.StatusServiceUnavailable, title: "Handoff failed",
			message: "Your session could not be saved. Try again."}, nil)
		return
	}
	writeJSON(w, http.StatusOK, userJSON(s))
}

// readHandoff reads the handoff and binding from a form or JSON body of at most 8 KiB.
func readHandoff(w http.ResponseWriter, r *http.Request) (handoff, binding string) {
	r.Body = http.MaxBytesReader(w, r.Body, 8192)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Handoff string `json:"handoff"`
			Binding string `json:"binding"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		return body.Handoff, body.Binding
	}
	return r.PostFormValue("handoff"), r.PostFormValue("binding")
}
