package signin

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// attempt is one login and callback from a fresh browser at addr, as an attacker scripts them.
func attempt(t *testing.T, e *env, addr, code string) *httptest.ResponseRecorder {
	t.Helper()
	b := newBrowser(t, e.h)
	b.remote = addr
	return b.callback(e.login(t, b, ""), code)
}

func TestRedeemFloodIsBounded(t *testing.T) {
	tests := []struct {
		name       string
		addr       func(i int) string
		maxRedeems int
	}{
		// 500 pairs in a second, as in the attack: one address (its burst and a second of its rate), then many
		// (the total burst and a second of the total rate).
		{"one address", func(int) string { return "198.51.100.7:4242" }, perAddressBurst + perAddressRate + 5},
		{"many addresses", func(i int) string { return fmt.Sprintf("10.%d.%d.1:4242", i/250, i%250) }, totalBurst + 35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			e := newEnv(t, Config{Logger: zap.New(core)}, session.Config{})
			e.idp.redeemErr = &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{9002313}}
			limited := 0
			for i := range 500 {
				before := e.idp.redeemCount()
				w := attempt(t, e, tt.addr(i), "bogus-"+strconv.Itoa(i))
				e.clock.Advance(2 * time.Millisecond)
				switch w.Code {
				case http.StatusBadRequest:
				case http.StatusTooManyRequests:
					limited++
					if e.idp.redeemCount() != before {
						t.Fatal("a refused callback still asked Entra")
					}
					if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 {
						t.Fatalf("429 without a Retry-After: %v", w.Header())
					}
				default:
					t.Fatalf("callback %d = %d: %s", i, w.Code, w.Body)
				}
			}
			if n := e.idp.redeemCount(); n > tt.maxRedeems || limited == 0 {
				t.Fatalf("%d token requests (%d limited), want at most %d", n, limited, tt.maxRedeems)
			}
			for _, l := range logs.All() {
				if l.Level >= zapcore.ErrorLevel {
					t.Fatalf("the flood logged an error: %s", l.Message)
				}
			}
		})
	}
}

func TestOrdinarySignInsPass(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	for i := range 50 {
		if w := attempt(t, e, "203.0.113.9:5000", "code-"+strconv.Itoa(i)); w.Code != http.StatusFound {
			t.Fatalf("sign-in %d = %d: %s", i, w.Code, w.Body)
		}
		e.clock.Advance(200 * time.Millisecond)
	}
}

// TestUsedMemoryNotFlushable: a flood of valid-looking callbacks over a whole LoginTimeout must not evict a used
// state from the replay memory, so replaying it is still refused.
func TestUsedMemoryNotFlushable(t *testing.T) {
	e := newEnvUsed(t, Config{}, session.Config{}, 2000)
	victim := newBrowser(t, e.h)
	state := e.login(t, victim, "")
	saved := maps.Clone(victim.cookies)
	if w := victim.callback(state, "victim-code"); w.Code != http.StatusFound {
		t.Fatalf("sign-in = %d", w.Code)
	}
	for i := range 1475 { // one pair every 400 ms, each from its own address, for 590 s
		e.clock.Advance(400 * time.Millisecond)
		attempt(t, e, fmt.Sprintf("10.%d.%d.2:1", i/250, i%250), "flood-"+strconv.Itoa(i))
	}
	replay := newBrowser(t, e.h)
	for k, v := range saved {
		replay.cookies[k] = v
		replay.order = append(replay.order, k)
	}
	redeems := e.idp.redeemCount()
	if w := replay.callback(state, "victim-code"); w.Code != http.StatusBadRequest || e.idp.redeemCount() != redeems {
		t.Fatalf("replay after the flood = %d (redeemed: %v): %s", w.Code, e.idp.redeemCount() != redeems, w.Body)
	}
}

func TestClientAddressKeysTheLimit(t *testing.T) {
	// 300 sign-ins 20 ms apart: within the total limit, over one address's.
	run := func(cfg Config) (limited int) {
		e := newEnv(t, cfg, session.Config{})
		for i := range 300 {
			w := attempt(t, e, fmt.Sprintf("10.1.%d.%d:1", i/250, i%250), "c-"+strconv.Itoa(i))
			if w.Code == http.StatusTooManyRequests {
				limited++
			} else if w.Code != http.StatusFound {
				t.Fatalf("sign-in %d = %d", i, w.Code)
			}
			e.clock.Advance(20 * time.Millisecond)
		}
		return limited
	}
	if n := run(Config{}); n != 0 {
		t.Fatalf("by RemoteAddr: %d of 300 distinct addresses limited", n)
	}
	if n := run(Config{ClientAddress: func(*http.Request) string { return "192.0.2.50" }}); n == 0 {
		t.Fatal("ClientAddress is not what the limit is kept by")
	}
}

func TestLimitedCallbackCompletesAfterRetryAfter(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	for i := 0; ; i++ {
		b := newBrowser(t, e.h)
		b.remote = "198.51.100.1:1"
		state := e.login(t, b, "")
		w := b.callback(state, "c-"+strconv.Itoa(i))
		if w.Code != http.StatusTooManyRequests {
			if i > perAddressBurst {
				t.Fatal("never limited")
			}
			continue
		}
		j := b.callback(state, "c-"+strconv.Itoa(i), "Accept", "application/json", "Sec-Fetch-Mode", "cors")
		if j.Code != http.StatusTooManyRequests || !strings.Contains(j.Body.String(), `"retry_after":1`) {
			t.Fatalf("JSON 429 = %d %s", j.Code, j.Body)
		}
		secs, _ := strconv.Atoi(w.Header().Get("Retry-After"))
		e.clock.Advance(time.Duration(secs) * time.Second)
		if w := b.callback(state, "c-"+strconv.Itoa(i)); w.Code != http.StatusFound || !b.hasSession(e.sessions) {
			t.Fatalf("reload after Retry-After = %d: %s", w.Code, w.Body)
		}
		return
	}
}

func TestTotalRateArithmetic(t *testing.T) {
	for _, ttl := range []time.Duration{time.Minute, 10 * time.Minute, maxLoginTimeout} {
		r := float64(totalRate(maxUsed, ttl))
		// Entries a flood adds within one TTL, when every sign-in adds usedPerSignIn of them.
		if added := usedPerSignIn * (totalBurst + r*ttl.Seconds()); added > maxUsed/3 {
			t.Errorf("ttl %s: a flood adds %.0f entries per TTL, more than a third of %d", ttl, added, maxUsed)
		}
	}
	if r := float64(totalRate(maxUsed, 10*time.Minute)); r < 5 {
		t.Errorf("default total rate %.1f/s is below ordinary use (5/s)", r)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":   "2001:db8:1:2::/64",
		"not an ip":              "not an ip",
		strings.Repeat("x", 100): strings.Repeat("x", 64),
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "[2001:db8::1]:443"
	if got := remoteHost(r); got != "2001:db8::1" {
		t.Errorf("remoteHost = %q", got)
	}
}

// Five addresses, each under its own rate, forging callbacks (a free login, then a junk code) no longer use up the
// total and lock everyone else out: each refused code costs its address refusedCodeCost more.
func TestForgedCallbacksDoNotLockOthersOut(t *testing.T) {
	e := newEnv(t, Config{}, session.Config{})
	junk := &entra.Error{StatusCode: 400, Code: "invalid_grant", Codes: []int{9002313}}
	e.idp.redeemErr = junk
	victims, locked := 0, 0
	for tick := range 3000 { // 60 s: a forged callback every 20 ms, 5 addresses in turn (10 a second each)
		attempt(t, e, fmt.Sprintf("198.51.100.%d:1", tick%5), fmt.Sprint("junk-", tick))
		if tick >= 1000 && tick%50 == 25 { // from 20 s on, a user on her own address, once a second
			victims++
			e.idp.redeemErr = nil
			if w := attempt(t, e, fmt.Sprintf("203.0.113.%d:1", tick/50), fmt.Sprint("real-", tick)); w.Code == http.StatusTooManyRequests {
				locked++
			}
			e.idp.redeemErr = junk
		}
		e.clock.Advance(20 * time.Millisecond)
	}
	if locked > 0 {
		t.Fatalf("%d of %d sign-ins refused with 429 while 5 addresses forged callbacks", locked, victims)
	}
	if n := e.idp.redeemCount(); n > 5*(perAddressBurst+60*perAddressRate)/refusedCodeCost+victims+10 {
		t.Fatalf("%d redemptions reached Entra in 60 s from 5 forging addresses", n)
	}
}
