package entraemu

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// NewDownstreamAPI returns a stub downstream API that echoes who called it. It verifies the bearer
// token's signature with the emulator's key and its lifetime, then answers
// {"aud","oid","tid","upn","name","scp","roles","token_sha256"}; otherwise 401 with a
// WWW-Authenticate challenge in Microsoft Graph's style. While an insufficient_claims fault is set
// for the caller it answers the Continuous Access Evaluation challenge
// (error="insufficient_claims", claims=<base64 JSON>) until a token is requested with claims.
func NewDownstreamAPI(e *Emulator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, raw, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
			downstreamUnauthorized(w, `Bearer realm="", authorization_uri="`+e.baseURL(r)+`/common/oauth2/authorize", client_id="`+DefaultDownstreamAppID+`"`,
				"InvalidAuthenticationToken", "Access token is empty.")
			return
		}
		raw = strings.TrimSpace(raw)
		claims, verr := e.key.verify(raw)
		if verr != nil {
			downstreamUnauthorized(w, `Bearer error="invalid_token", error_description="`+verr.reason+`"`,
				"InvalidAuthenticationToken", "Access token validation failure. "+verr.reason)
			return
		}
		now := e.now()
		if exp, ok := numClaim(claims, "exp"); !ok || !now.Before(exp) {
			downstreamUnauthorized(w, `Bearer error="invalid_token", error_description="The token is expired"`,
				"InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
			return
		}
		if nbf, ok := numClaim(claims, "nbf"); ok && now.Add(5*time.Minute).Before(nbf) {
			downstreamUnauthorized(w, `Bearer error="invalid_token", error_description="The token is not yet valid"`,
				"InvalidAuthenticationToken", "Lifetime validation failed, the token is not yet valid.")
			return
		}
		if oid, _ := claims["oid"].(string); oid != "" {
			if u := e.usersByOID[strings.ToLower(oid)]; u != nil {
				// CAE: a critical event (say, the user's session was revoked) makes the resource
				// demand a token issued after it, with the nbf of the challenge (cae.go).
				if nbf, ok := e.caeChallenge(u, claims, now); ok {
					downstreamUnauthorized(w, caeChallengeHeader(e.baseURL(r), nbf),
						"InvalidAuthenticationToken", "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp")
					return
				}
			}
		}
		sum := sha256.Sum256([]byte(raw))
		out := map[string]any{
			"aud": claims["aud"], "oid": claims["oid"], "tid": claims["tid"],
			"upn": firstClaim(claims, "upn", "preferred_username"), "name": claims["name"],
			"scp": claims["scp"], "roles": claims["roles"], "token_sha256": hex.EncodeToString(sum[:]),
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func firstClaim(c map[string]any, names ...string) any {
	for _, n := range names {
		if v, ok := c[n]; ok {
			return v
		}
	}
	return nil
}

// caeRevoked reports (and consumes one use of) an insufficient_claims fault for u.
func (e *Emulator) caeRevoked(u *User) bool {
	_, ok := e.takeFault([]string{strings.ToLower(u.Key), ""}, func(f Fault) bool {
		return f.Kind == FaultInsufficientClaims
	})
	return ok
}

func downstreamUnauthorized(w http.ResponseWriter, challenge, code, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
