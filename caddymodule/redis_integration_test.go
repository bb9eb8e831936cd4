package caddymodule_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// TestRedisReplicas runs two Caddy instances, A and B, on one real redis-server, as two replicas behind a load
// balancer: one identity-provider call per user and scope set across both, sessions shared, logout propagated,
// restarts and an outage survived, nothing readable in Redis.
func TestRedisReplicas(t *testing.T) {
	rs := startReplicas(t)
	both := []string{rs.a, rs.b}

	t.Run("UserServedByAThenBWithANewSSOTokenIsOneOBOCall", func(t *testing.T) {
		user := freshUser(t)
		before := oboCalls()
		if s, body := get(t, rs.a, "/graph/me", ssoToken(t, user.Key, entraemu.MintOptions{})); s != 200 || !strings.Contains(body, user.ObjectID) {
			t.Fatalf("A: %d %.200s", s, body)
		}
		if s, body := get(t, rs.b, "/graph/me", ssoToken(t, user.Key, entraemu.MintOptions{})); s != 200 || !strings.Contains(body, user.ObjectID) {
			t.Fatalf("B: %d %.200s", s, body)
		}
		if n := oboCalls() - before; n != 1 {
			t.Fatalf("%d OBO calls for one user on two replicas, want 1", n)
		}
	})

	t.Run("ConcurrentFirstRequestsOnBothAreOneOBOCall", func(t *testing.T) {
		user := freshUser(t)
		tok := ssoToken(t, user.Key, entraemu.MintOptions{})
		before := oboCalls()
		statuses := concurrentStatuses(20, both, func(site string) int { s, _ := get(t, site, "/graph/me", tok); return s })
		if statuses[200] != 40 {
			t.Fatalf("statuses %v, want 40 × 200", statuses)
		}
		if n := oboCalls() - before; n != 1 {
			t.Fatalf("%d OBO calls for 20+20 concurrent first requests, want 1", n)
		}
	})

	user, b := rs.signIn(t)
	t.Run("SessionSignedInOnAWorksOnBWithoutATokenRequest", func(t *testing.T) {
		before := tokenRequests()
		if s, _, body := b.api(rs.b + "/graph/me"); s != 200 || body["oid"] != user.ObjectID {
			t.Fatalf("B: %d %v", s, body)
		}
		if n := tokenRequests() - before; n != 0 {
			t.Fatalf("%d token requests on B for a session and scopes A already has, want 0", n)
		}
	})

	t.Run("ConcurrentRequestsForNewScopesRedeemTheRefreshTokenOnce", func(t *testing.T) {
		before := env.Emu.Counters().ByUserGrant[user.Key][entraemu.GrantRefreshToken]
		statuses := concurrentStatuses(15, both, func(site string) int { s, _, _ := b.api(site + "/mail/me"); return s })
		if statuses[200] != 30 {
			t.Fatalf("statuses %v, want 30 × 200", statuses)
		}
		if n := env.Emu.Counters().ByUserGrant[user.Key][entraemu.GrantRefreshToken] - before; n != 1 {
			t.Fatalf("%d refresh-token redemptions for 15+15 concurrent requests, want 1", n)
		}
	})

	t.Run("RestartOfBothNeedsNoIdentityProviderCall", func(t *testing.T) {
		cached := freshUser(t)
		tok := ssoToken(t, cached.Key, entraemu.MintOptions{})
		if s, body := get(t, rs.a, "/graph/me", tok); s != 200 {
			t.Fatalf("A: %d %.200s", s, body)
		}
		rs.B.stop()
		if err := env.caddy.Stop(); err != nil {
			t.Fatal(err)
		}
		rs.loadA(t)
		rs.B.start(t)
		before := tokenRequests()
		for _, site := range both {
			if s, body := get(t, site, "/graph/me", tok); s != 200 || !strings.Contains(body, cached.ObjectID) {
				t.Fatalf("%s after the restart: %d %.200s", site, s, body)
			}
			if s, _, body := b.api(site + "/graph/me"); s != 200 || body["oid"] != user.ObjectID {
				t.Fatalf("%s: the session after the restart: %d %v", site, s, body)
			}
		}
		if n := tokenRequests() - before; n != 0 {
			t.Fatalf("%d token requests after a restart of both replicas, want 0", n)
		}
	})

	t.Run("NothingInRedisIsReadable", func(t *testing.T) { rs.checkRedisOpaque(t) })

	t.Run("LogoutOnAIsRefusedOnBWithinASecond", func(t *testing.T) {
		_, other := rs.signIn(t)
		if s, _, body := other.api(rs.b + "/graph/me"); s != 200 {
			t.Fatalf("B before logout: %d %v", s, body)
		}
		rs.logoutKeepingCookie(t, other) // a copy of the cookie, as an attacker holding it would send
		start := time.Now()
		for {
			s, _, body := other.api(rs.b + "/graph/me")
			if s == 401 && body["reason"] == "login_required" {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("B still answers %d %v a second after logout on A", s, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("LogoutMissedWhileCutOffIsRefusedAfterResubscribe", func(t *testing.T) {
		gate := testenv.NewGate(t, rs.srv.Addr) // C's path to Redis
		t.Setenv("TOKEN_INJECTOR_TEST_REDIS_URL", "redis://"+gate.Addr()+"/0")
		c := startReplica(t, freeSite(t), "TOKEN_INJECTOR_TEST_REDIS_KEY")
		_, other := rs.signIn(t)
		// A read of Redis that another replica's message (the sign-in's own, from A) lands in is served but not
		// kept in L1; C must hold the session before it is cut off.
		waitUntil(t, "C to hold the session in memory", func() bool {
			s, _, _ := other.api(c.site + "/graph/me")
			return s == 200 && c.held(t).Sessions == 1
		})
		gate.Set(false)
		rs.logoutKeepingCookie(t, other)
		if s, _, body := other.api(c.site + "/graph/me"); s != 200 {
			t.Fatalf("C cut off from Redis: %d %v; want 200 from its L1, or the test shows no missed logout", s, body)
		}
		gate.Set(true)
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, _, body := other.api(c.site + "/graph/me")
			if s == 401 && body["reason"] == "login_required" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("C still answers %d %v 5 s after its subscription came back", s, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("MetricsCountRedisOperations", func(t *testing.T) {
		m := scrape(t)
		for _, op := range []string{"get", "set", "delete", "publish", "subscribe", "lock", "unlock"} {
			if n := m["caddy_token_injector_redis_duration_seconds_count{op="+op+"}"]; n < 1 {
				t.Errorf("redis op %s counted %v times after the traffic above, want at least 1", op, n)
			}
		}
	})

	t.Run("RedisKilledUnderLoad", func(t *testing.T) { rs.outage(t, user, b) })

	t.Run("WrongEncryptionKeyOnAThirdInstanceGetsAFreshOBO", func(t *testing.T) {
		cached := freshUser(t)
		if s, _ := get(t, rs.a, "/graph/me", ssoToken(t, cached.Key, entraemu.MintOptions{})); s != 200 {
			t.Fatalf("A: %d", s)
		}
		t.Setenv("TOKEN_INJECTOR_TEST_REDIS_OTHER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
		c := startReplica(t, freeSite(t), "TOKEN_INJECTOR_TEST_REDIS_OTHER_KEY")
		before := oboCalls()
		if s, body := get(t, c.site, "/graph/me", ssoToken(t, cached.Key, entraemu.MintOptions{})); s != 200 || !strings.Contains(body, cached.ObjectID) {
			t.Fatalf("C: %d %.200s", s, body)
		}
		if n := oboCalls() - before; n != 1 {
			t.Fatalf("%d OBO calls on the replica with another key, want 1 (a fresh one)", n)
		}
		if s, _, body := b.api(c.site + "/graph/me"); s != 401 || body["reason"] != "login_required" {
			t.Fatalf("C with A's session cookie: %d %v, want 401 login_required", s, body)
		}
	})
}

// freeSite returns http://127.0.0.1:<free port>.
func freeSite(t *testing.T) string {
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// signIn signs a fresh user in on A with a new browser.
func (rs *replicas) signIn(t *testing.T) (entraemu.User, *browser) {
	t.Helper()
	user := freshUser(t)
	b := newBrowser(t)
	if status, _, body := b.signIn(rs.a+"/graph/me", user.Key); status != 200 {
		t.Fatalf("sign-in on A: %d %.300s", status, body)
	}
	return user, b
}

func (rs *replicas) logout(t *testing.T, b *browser) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rs.a+"/.auth/logout", nil)
	req.Header.Set("Origin", rs.a)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// logoutKeepingCookie logs b out on A, then puts its session cookies back, as a copy of the cookie held elsewhere
// would be sent: the logout must end the session, not just the browser's cookie.
func (rs *replicas) logoutKeepingCookie(t *testing.T, b *browser) {
	t.Helper()
	saved := b.Cookies(rs.a)
	if len(saved) == 0 {
		t.Fatal("no cookie before the logout")
	}
	rs.logout(t, b)
	u, _ := url.Parse(rs.a)
	b.Client.Jar.SetCookies(u, saved)
}

// checkRedisOpaque reads every key and value: each key starts with the prefix, and no value, nor its base64,
// hex or gzip decoding, holds a token, a refresh token, a secret, a cookie value or who the user is.
func (rs *replicas) checkRedisOpaque(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := rs.srv.Client()
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 5 {
		t.Fatalf("only %d keys in Redis: the replicas did not store their state", len(keys))
	}
	var secrets []string
	env.mu.Lock()
	secrets = append(secrets, env.minted...)
	secrets = append(secrets, env.credentials...)
	env.mu.Unlock()
	for _, h := range env.Upstream.Seen() {
		secrets = append(secrets, strings.TrimPrefix(h.Get("Authorization"), "Bearer "))
	}
	secrets = append(secrets, env.secret, rs.key, "refresh", "7e570000-0000-4000-8000", "@"+entraemu.DefaultTenantDomain)
	for _, k := range keys {
		if !strings.HasPrefix(k, "tokeninjector:") {
			t.Errorf("key %q does not start with the prefix", k)
		}
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(k, s) {
				t.Errorf("key %q reveals %.12s…", k, s)
			}
		}
		v, err := c.Dump(ctx, k).Result() // any type: strings, sets
		if err != nil {
			continue // expired meanwhile
		}
		for _, form := range decodings([]byte(v)) {
			for _, s := range secrets {
				if len(s) >= 8 && (bytes.Contains(form, []byte(s)) || jwtPart(form, s)) {
					t.Errorf("the value of %s reveals %.12s…", k, s)
				}
			}
		}
	}
}

// decodings returns v and what base64, hex and gzip make of it.
func decodings(v []byte) [][]byte {
	out := [][]byte{v}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(string(v)); err == nil {
			out = append(out, d)
		}
	}
	if d, err := hex.DecodeString(string(v)); err == nil {
		out = append(out, d)
	}
	for _, f := range append([][]byte{}, out...) {
		if zr, err := gzip.NewReader(bytes.NewReader(f)); err == nil {
			if d, err := io.ReadAll(zr); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// jwtPart reports whether form holds the signature of the JWT s.
func jwtPart(form []byte, s string) bool {
	i := strings.LastIndexByte(s, '.')
	return i > 0 && len(s)-i > 20 && bytes.Contains(form, []byte(s[i+1:]))
}

// outage kills redis-server while cached users (bearer and session) keep calling both replicas, then brings it
// back empty at the same address.
func (rs *replicas) outage(t *testing.T, user entraemu.User, b *browser) {
	warm := freshUser(t)
	tok := ssoToken(t, warm.Key, entraemu.MintOptions{})
	for _, site := range []string{rs.a, rs.b} {
		if s, _ := get(t, site, "/graph/me", tok); s != 200 {
			t.Fatalf("%s before the outage: %d", site, s)
		}
		if s, _, body := b.api(site + "/graph/me"); s != 200 {
			t.Fatalf("%s: the session before the outage: %d %v", site, s, body)
		}
	}
	_, unseen := rs.signIn(t) // a session B has never seen
	stop := make(chan struct{})
	failures := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			site := []string{rs.a, rs.b}[i%2]
			if s, body := get(t, site, "/graph/me", tok); s != 200 {
				failures <- site + " bearer: " + body
			}
			if s, _, body := b.api(site + "/graph/me"); s != 200 {
				failures <- site + " session: " + body["error"].(string)
			}
		}
	}()
	errorsBefore := redisErrors(scrape(t))
	rs.srv.Kill()
	newcomer := freshUser(t)
	if s, body := get(t, rs.b, "/graph/me", ssoToken(t, newcomer.Key, entraemu.MintOptions{})); s != 200 && s != 503 {
		t.Errorf("a new user during the outage: %d %.200s, want 200 or 503", s, body)
	}
	if s, body := get(t, rs.a, "/graph/me", ssoToken(t, freshUser(t).Key, entraemu.MintOptions{})); s != 200 && s != 503 {
		t.Errorf("a new user on A during the outage: %d %.200s, want 200 or 503", s, body)
	}
	if s, _, body := unseen.api(rs.b + "/graph/me"); s != 503 || body["error"] != "temporarily_unavailable" {
		t.Errorf("a session B has not seen, during the outage: %d %v, want 503 temporarily_unavailable", s, body)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	<-done
	close(failures)
	n := 0
	for f := range failures {
		if n++; n <= 3 {
			t.Errorf("a cached user's request failed during the outage: %s", f)
		}
	}
	if n > 0 {
		t.Fatalf("%d failed requests for cached users during the outage, want 0", n)
	}
	if got := redisErrors(scrape(t)); got <= errorsBefore {
		t.Errorf("redis_errors_total went from %v to %v while Redis was down, want it to grow", errorsBefore, got)
	}
	if err := rs.srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Within 5 s, without a restart: tokens are shared again and a logout reaches the other replica.
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := freshUser(t)
		before := oboCalls()
		sa, _ := get(t, rs.a, "/graph/me", ssoToken(t, after.Key, entraemu.MintOptions{}))
		sb, _ := get(t, rs.b, "/graph/me", ssoToken(t, after.Key, entraemu.MintOptions{}))
		if sa == 200 && sb == 200 && oboCalls()-before == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after Redis came back, replicas still do not share tokens (%d, %d)", sa, sb)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, again := rs.signIn(t)
	if s, _, body := again.api(rs.b + "/graph/me"); s != 200 {
		t.Fatalf("B, a session signed in on A after the recovery: %d %v", s, body)
	}
	rs.logout(t, again)
	waitFor := time.Now().Add(5 * time.Second)
	for {
		if s, _, body := again.api(rs.b + "/graph/me"); s == 401 && body["reason"] == "login_required" {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatal("a logout on A did not reach B after the recovery")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisErrors is the sum of redis_errors_total over every op.
func redisErrors(m map[string]float64) float64 {
	n := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "caddy_token_injector_redis_errors_total{") {
			n += v
		}
	}
	return n
}
