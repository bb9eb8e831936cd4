package acquire

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// countingProvider is the identity provider's side of the engine's contract: it counts calls, can be made slow
// or failing, and issues tokens that name the call that made them.
type countingProvider struct {
	calls    atomic.Int64
	delay    time.Duration
	lifetime time.Duration
	fail     atomic.Pointer[error]
	clock    func() time.Time
	release  chan struct{} // when set, each call waits for it

	mu       sync.Mutex
	redeemed map[string]bool
}

func (p *countingProvider) OnBehalfOf(ctx context.Context, assertion string, scopes []string, claims string) (tokencache.Token, error) {
	n := p.calls.Add(1)
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			return tokencache.Token{}, ctx.Err()
		}
	}
	time.Sleep(p.delay)
	if e := p.fail.Load(); e != nil {
		return tokencache.Token{}, *e
	}
	return tokencache.Token{AccessToken: assertion + "/" + claims + "/" + string(rune('0'+n)), ExpiresOn: p.clock().Add(p.lifetime)}, nil
}

// Refresh simulates a rotating refresh token: the account's MSAL blob is the refresh token, and redeeming one
// that was already redeemed is an error, as with Entra's strict rotation.
func (p *countingProvider) Refresh(ctx context.Context, a tokencache.Account, user string, scopes []string) (tokencache.Token, tokencache.Account, error) {
	p.calls.Add(1)
	p.mu.Lock()
	if p.redeemed == nil {
		p.redeemed = map[string]bool{}
	}
	reused := p.redeemed[string(a.MSAL)]
	p.redeemed[string(a.MSAL)] = true
	p.mu.Unlock()
	time.Sleep(p.delay)
	if reused {
		return tokencache.Token{}, a, contract.ParseEntraError(400, nil, []byte(`{"error":"invalid_grant","error_codes":[70000]}`))
	}
	rotated := tokencache.Account{MSAL: append([]byte(nil), append(a.MSAL, '+')...)}
	return tokencache.Token{AccessToken: "session/" + string(rotated.MSAL), ExpiresOn: p.clock().Add(p.lifetime)}, rotated, nil
}

func (p *countingProvider) AuthCodeURL(context.Context, AuthCodeParams) (string, error) {
	return "", nil
}
func (p *countingProvider) RedeemCode(context.Context, RedeemParams) (SignedIn, error) {
	return SignedIn{}, errors.New("not used")
}
func (p *countingProvider) EndSessionURL(string) string { return "" }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestEngine(t *testing.T) (*Engine, *countingProvider, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	p := &countingProvider{lifetime: time.Hour, clock: clock.Now}
	cache := tokencache.NewMemory(100, time.Minute, clock.Now)
	e := New(cache, p, Config{Now: clock.Now, CallTimeout: 2 * time.Second})
	t.Cleanup(e.Close)
	return e, p, clock
}

var alice = Request{Key: tokencache.Key{User: "oid-a.tid", Scopes: "s"}, Scopes: []string{"s"}, Assertion: "sso-a"}

func TestConcurrentFirstRequestsMakeOneCall(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.delay = 50 * time.Millisecond
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := e.Token(context.Background(), alice)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = tok.AccessToken
		}()
	}
	wg.Wait()
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d provider calls for 50 concurrent first requests", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("waiters got different tokens")
		}
	}
	if _, err := e.Token(context.Background(), alice); err != nil || p.calls.Load() != 1 {
		t.Fatal("a later request should hit the cache")
	}
}

func TestRenewsInBackgroundBeforeExpiry(t *testing.T) {
	e, p, clock := newTestEngine(t)
	first, _ := e.Token(context.Background(), alice)
	clock.Advance(56 * time.Minute) // past RefreshOn (expiry - 5m), still usable
	p.release = make(chan struct{})
	got, err := e.Token(context.Background(), alice)
	if err != nil || got.AccessToken != first.AccessToken {
		t.Fatalf("a token due for renewal must be served at once: %v %q", err, got.AccessToken)
	}
	// More requests while the renewal runs join it instead of starting their own.
	for range 10 {
		e.Token(context.Background(), alice)
	}
	close(p.release)
	waitFor(t, func() bool {
		tok, _, _ := e.cache.Get(context.Background(), alice.Key)
		return tok.AccessToken != first.AccessToken
	})
	if n := p.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 1 initial + 1 renewal", n)
	}
}

func TestFailedRenewalKeepsTokenAndBacksOff(t *testing.T) {
	e, p, clock := newTestEngine(t)
	first, _ := e.Token(context.Background(), alice)
	clock.Advance(56 * time.Minute)
	interaction := error(contract.ParseEntraError(400, nil, []byte(`{"error":"invalid_grant","error_codes":[50076]}`)))
	p.fail.Store(&interaction)
	for range 20 {
		got, err := e.Token(context.Background(), alice)
		if err != nil || got.AccessToken != first.AccessToken {
			t.Fatal("a still-valid token must be served while renewal fails")
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool { return e.Stats().ProviderErrors >= 1 })
	if n := p.calls.Load(); n > 3 {
		t.Fatalf("failing renewal retried %d times; it must back off", n-1)
	}
	// Once the token is past its margin the user is finally asked to interact.
	clock.Advance(4 * time.Minute)
	if _, err := e.Token(context.Background(), alice); !errors.As(err, new(*contract.EntraError)) {
		t.Fatalf("want the identity provider's refusal, got %v", err)
	}
}

func TestClaimsBypassCache(t *testing.T) {
	e, p, _ := newTestEngine(t)
	e.Token(context.Background(), alice)
	withClaims := alice
	withClaims.Claims = `{"access_token":{}}`
	tok, err := e.Token(context.Background(), withClaims)
	if err != nil || p.calls.Load() != 2 {
		t.Fatalf("claims must reach the identity provider: %v, %d calls", err, p.calls.Load())
	}
	if cached, _ := e.Token(context.Background(), alice); cached.AccessToken != tok.AccessToken {
		t.Fatal("the token that satisfies the claims should replace the cached one")
	}
}

func TestWaiterThatGivesUpDoesNotFailOthers(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.delay = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.Token(context.Background(), alice); done <- err }()
	if _, err := e.Token(ctx, alice); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient waiter: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("patient waiter failed: %v", err)
	}
	if p.calls.Load() != 1 {
		t.Fatal("one call expected")
	}
}

func TestCallTimeoutIsUnavailable(t *testing.T) {
	e, p, _ := newTestEngine(t)
	e.cfg.CallTimeout = 20 * time.Millisecond
	p.release = make(chan struct{}) // never released
	_, err := e.Token(context.Background(), alice)
	var u *contract.Unavailable
	if !errors.As(err, &u) || !u.Timeout {
		t.Fatalf("want a timeout, got %v", err)
	}
	if p := contract.Classify(err, nil); p.Status != 504 {
		t.Fatalf("status %d", p.Status)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAccountRefreshTokenIsRedeemedOnceAtATime(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.delay = 20 * time.Millisecond
	user := "oid-s.tid"
	e.cache.SetAccount(context.Background(), user, tokencache.Account{MSAL: []byte("rt"), ExpiresOn: time.Now().Add(time.Hour)})
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scopes := fmt.Sprintf("scope-%d", i%3) // three scope sets of one account, concurrently
			_, err := e.Token(context.Background(), Request{Key: tokencache.Key{User: user, Scopes: scopes}, Scopes: []string{scopes}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a refresh token was redeemed twice or failed: %v", err)
		}
	}
	if n := p.calls.Load(); n != 3 {
		t.Fatalf("%d redemptions, want one per scope set", n)
	}
	if a, _, _ := e.cache.GetAccount(context.Background(), user); string(a.MSAL) != "rt+++" {
		t.Fatalf("account after three rotations: %q", a.MSAL)
	}
}

func TestSessionWithoutAccountIsLoginRequired(t *testing.T) {
	e, _, _ := newTestEngine(t)
	_, err := e.Token(context.Background(), Request{Key: tokencache.Key{User: "gone.tid", Scopes: "s"}, Scopes: []string{"s"}})
	if p := contract.Classify(err, nil); p.Reason != contract.ReasonLoginRequired {
		t.Fatalf("got %+v", p)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	e, p, clock := newTestEngine(t)
	for i := range 20 {
		req := alice
		req.Key.User = fmt.Sprintf("user-%d", i)
		e.Token(context.Background(), req)
	}
	clock.Advance(56 * time.Minute)
	p.release = make(chan struct{}) // renewals block inside the identity provider
	for i := range 20 {
		req := alice
		req.Key.User = fmt.Sprintf("user-%d", i)
		e.Token(context.Background(), req)
	}
	if e.Stats().BackgroundRefreshes != 20 {
		t.Fatalf("%d renewals started", e.Stats().BackgroundRefreshes)
	}
	e.Close() // cancels the blocked calls and waits for them
	waitFor(t, func() bool { return runtime.NumGoroutine() <= baseline })
}

func TestCloseWhileRequestsStartRenewals(t *testing.T) {
	e, _, clock := newTestEngine(t)
	for i := range 50 {
		req := alice
		req.Key.User = fmt.Sprintf("user-%d", i)
		e.Token(context.Background(), req)
	}
	clock.Advance(56 * time.Minute)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := alice
			req.Key.User = fmt.Sprintf("user-%d", i)
			e.Token(context.Background(), req) // may start a renewal as Close runs; must not panic
		}()
	}
	e.Close()
	wg.Wait()
	e.Close()
}

type panickingProvider struct{ countingProvider }

func (p *panickingProvider) OnBehalfOf(context.Context, string, []string, string) (tokencache.Token, error) {
	panic("boom")
}

func TestProviderPanicIsAnErrorNotACrash(t *testing.T) {
	p := &panickingProvider{}
	e := New(tokencache.NewMemory(10, time.Minute, nil), p, Config{})
	defer e.Close()
	_, err := e.Token(context.Background(), alice)
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("err = %v", err)
	}
	if pr := contract.Classify(err, nil); pr.Status != 502 {
		t.Fatalf("status %d", pr.Status)
	}
}
