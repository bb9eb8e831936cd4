package contract

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// maxChallengeClaims bounds the decoded claims of an upstream's challenge: they are sent on to Entra and key a
// token flight. Graph's are under 200 bytes.
const maxChallengeClaims = 8 << 10

// UpstreamChallenge reports whether an upstream's answer is a Continuous Access Evaluation claims challenge:
// 401 with WWW-Authenticate: Bearer ..., error="insufficient_claims", claims="<base64 JSON>", as Microsoft Graph
// sends to clients that declared cp1. It returns the decoded claims, which a new token must satisfy. Any other
// answer, or a challenge whose claims are not a base64 JSON object, is the upstream's own and goes to the client
// as it is.
func UpstreamChallenge(status int, h http.Header) (claims string, ok bool) {
	if status != http.StatusUnauthorized {
		return "", false
	}
	for _, v := range h.Values("WWW-Authenticate") {
		params := bearerParams(v)
		if params["error"] != "insufficient_claims" || params["claims"] == "" {
			continue
		}
		if c, ok := decodeClaims(params["claims"]); ok {
			return c, true
		}
	}
	return "", false
}

// ChallengedAgainError is an upstream's claims challenge to a token that was got with the claims of its first
// challenge: the proxy does not retry twice, and the client must interact (replay Claims, as for MFA).
type ChallengedAgainError struct{ Claims string }

func (e *ChallengedAgainError) Error() string {
	return "the upstream challenged the token got for its claims challenge"
}

// challengedAgain is the answer to a ChallengedAgainError.
func challengedAgain(e *ChallengedAgainError, scopes []string) *Problem {
	return &Problem{Status: http.StatusUnauthorized, Code: CodeInteractionRequired, Reason: ReasonConditionalAccess,
		Description: userFacingDescription(ReasonConditionalAccess), Claims: e.Claims, Scopes: scopes}
}

// decodeClaims decodes a challenge's claims: base64 (Graph sends the standard alphabet with padding; the URL-safe
// and unpadded forms are taken too) of a JSON object.
func decodeClaims(s string) (string, bool) {
	if base64.StdEncoding.DecodedLen(len(s)) > maxChallengeClaims {
		return "", false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// bearerParams returns the auth-params of the Bearer challenge in one WWW-Authenticate value (RFC 9110 11.6.1),
// which may hold several challenges: `Bearer realm="", error="insufficient_claims", claims="..."`. Names are
// lower-cased; quoted values are unescaped.
func bearerParams(v string) map[string]string {
	params := map[string]string{}
	inBearer := false
	for s := strings.TrimSpace(v); s != ""; {
		name := s[:tokenEnd(s)]
		s = strings.TrimLeft(s[len(name):], " \t")
		if name == "" { // a stray separator
			s = strings.TrimLeft(s[1:], " \t")
			continue
		}
		if !strings.HasPrefix(s, "=") { // a scheme: the params that follow are its own
			inBearer = strings.EqualFold(name, "Bearer")
			s = strings.TrimLeft(s, ", \t")
			continue
		}
		s = strings.TrimLeft(s[1:], " \t")
		var value string
		value, s = paramValue(s)
		if inBearer {
			params[strings.ToLower(name)] = value
		}
		s = strings.TrimLeft(s, ", \t")
	}
	return params
}

// tokenEnd is the length of the RFC 9110 token at the start of s.
func tokenEnd(s string) int {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(" \t,=\"", s[i]) >= 0 {
			return i
		}
	}
	return len(s)
}

// paramValue reads a token or a quoted-string at the start of s and returns it with the rest of s.
func paramValue(s string) (value, rest string) {
	if !strings.HasPrefix(s, `"`) {
		n := tokenEnd(s)
		return s[:n], s[n:]
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "" // unterminated: what there is
}
