package entraemu_test

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// refreshTokenFor gets a refresh token for user through OBO (with offline_access).
func refreshTokenFor(t *testing.T, e *Emulator, user string) string {
	t.Helper()
	res := postForm(e, v2Token, oboForm(mustMint(t, e, user, MintOptions{}), "https://graph.microsoft.com/User.Read offline_access openid profile"))
	rt := str(res.body["refresh_token"])
	if res.status != 200 || rt == "" {
		t.Fatalf("OBO: %d %s", res.status, res.raw)
	}
	return rt
}

func refreshForm(rt, scope string) url.Values {
	return url.Values{
		"grant_type": {"refresh_token"}, "client_id": {DefaultAddinClientID}, "client_secret": {DefaultAddinSecret},
		"refresh_token": {rt}, "scope": {scope}, "client_info": {"1"},
	}
}

func TestRefreshRotation(t *testing.T) {
	e, _ := newTestEmulator(t)
	rt1 := refreshTokenFor(t, e, "adele")
	res := postForm(e, v2Token, refreshForm(rt1, "https://graph.microsoft.com/User.Read offline_access openid profile"))
	rt2 := str(res.body["refresh_token"])
	if res.status != 200 || rt2 == "" || rt2 == rt1 {
		t.Fatalf("first refresh: %d rotated=%v %s", res.status, rt2 != rt1, res.raw)
	}
	if str(res.body["id_token"]) == "" || str(res.body["client_info"]) == "" {
		t.Errorf("refresh response lacks id_token/client_info: %s", res.raw)
	}
	// Strict rotation: the redeemed token is dead.
	checkError(t, postForm(e, v2Token, refreshForm(rt1, "https://graph.microsoft.com/User.Read")), 400, "invalid_grant", 70000, "")
	// A refresh token is multi-resource: the new one gets a downstream token.
	res = postForm(e, v2Token, refreshForm(rt2, DefaultDownstreamURI+"/Data.Read offline_access"))
	if res.status != 200 {
		t.Fatalf("MRRT: %d %s", res.status, res.raw)
	}
	if _, c := decodeJWT(t, str(res.body["access_token"])); c["aud"] != DefaultDownstreamAppID {
		t.Errorf("aud = %v", c["aud"])
	}
	if n := e.Counters().ByUserGrant["adele"][GrantRefreshToken]; n != 3 {
		t.Errorf("adele refreshes = %d, want 3", n)
	}
}

func TestRefreshErrors(t *testing.T) {
	e, clk := newTestEmulator(t, func(c *Config) {
		c.Apps = append(c.Apps, App{ClientID: "22222222-3333-4444-8555-666666666666", Secret: "other", Name: "other"})
	})
	cases := []struct {
		name     string
		prep     func(rt string) url.Values
		code     int
		err      string
		suberror string
		desc     string
	}{
		{"unknown token", func(string) url.Values { return refreshForm("1.Agarbage", "User.Read") }, 70000, "invalid_grant", "", "malformed or invalid"},
		{"missing token", func(string) url.Values { f := refreshForm("", "User.Read"); f.Del("refresh_token"); return f }, 900144, "invalid_request", "", "'refresh_token'"},
		{"other client", func(rt string) url.Values {
			f := refreshForm(rt, "User.Read")
			f.Set("client_id", "22222222-3333-4444-8555-666666666666")
			f.Set("client_secret", "other")
			return f
		}, 70000, "invalid_grant", "", "invalid or malformed"},
		{"expired by inactivity", func(rt string) url.Values {
			clk.Advance(24*time.Hour + time.Second)
			return refreshForm(rt, "User.Read")
		},
			700082, "invalid_grant", "bad_token", "was inactive for 1.00:00:00"},
		{"revoked", func(rt string) url.Values { e.RevokeRefreshTokens("adele"); return refreshForm(rt, "User.Read") },
			50173, "invalid_grant", "", "TokensValidFrom"},
		{"unknown scope", func(rt string) url.Values { return refreshForm(rt, "https://graph.microsoft.com/Bogus") }, 70011, "invalid_scope", "", "does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := refreshTokenFor(t, e, "adele")
			res := postForm(e, v2Token, tc.prep(rt))
			checkError(t, res, 400, tc.err, tc.code, tc.suberror)
			if !strings.Contains(str(res.body["error_description"]), tc.desc) {
				t.Errorf("description %q lacks %q", res.body["error_description"], tc.desc)
			}
		})
	}
	t.Run("sign-in after revocation works", func(t *testing.T) {
		e.RevokeRefreshTokens("megan")
		rt := refreshTokenFor(t, e, "megan")
		if res := postForm(e, v2Token, refreshForm(rt, "User.Read")); res.status != 200 {
			t.Errorf("%d %s", res.status, res.raw)
		}
	})
	t.Run("inactivity window slides with rotation", func(t *testing.T) {
		rt := refreshTokenFor(t, e, "alex")
		for i := 0; i < 3; i++ {
			clk.Advance(23 * time.Hour)
			res := postForm(e, v2Token, refreshForm(rt, "User.Read"))
			if res.status != 200 {
				t.Fatalf("day %d: %d %s", i, res.status, res.raw)
			}
			rt = str(res.body["refresh_token"])
		}
	})
}

func TestRefreshReuseModes(t *testing.T) {
	lenient, _ := newTestEmulator(t, func(c *Config) { c.AllowRefreshTokenReuse = true })
	rt := refreshTokenFor(t, lenient, "diego")
	for i := 0; i < 2; i++ {
		if res := postForm(lenient, v2Token, refreshForm(rt, "User.Read")); res.status != 200 {
			t.Fatalf("lenient redemption %d: %d %s", i, res.status, res.raw)
		}
	}

	// Strict: of concurrent redemptions of one token exactly one wins.
	strict, _ := newTestEmulator(t)
	rt = refreshTokenFor(t, strict, "diego")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := postForm(strict, v2Token, refreshForm(rt, "User.Read"))
			mu.Lock()
			codes[res.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1 || codes[400] != 31 {
		t.Errorf("statuses = %v, want one 200", codes)
	}
}

func TestRefreshV1Endpoint(t *testing.T) {
	e, _ := newTestEmulator(t)
	rt := refreshTokenFor(t, e, "grady")
	f := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultAddinClientID},
		"client_secret": {DefaultAddinSecret}, "refresh_token": {rt}, "resource": {DefaultDownstreamURI}}
	res := postForm(e, v1Token, f)
	if res.status != 200 || res.body["resource"] != DefaultDownstreamURI || res.body["scope"] != "Data.Read" || str(res.body["refresh_token"]) == "" {
		t.Fatalf("%d %s", res.status, res.raw)
	}
}
