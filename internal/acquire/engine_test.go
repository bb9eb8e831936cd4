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

	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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
	grants   []Grant // every call's grant, in order
}

func (p *countingProvider) record(g Grant) {
	p.mu.Lock()
	p.grants = append(p.grants, g)
	p.mu.Unlock()
}

// refusal stands for the identity provider's typed refusal (an *entra.Error in production), which the engine
// returns as it is.
type refusal struct{ code int }

func (r *refusal) Error() string { return fmt.Sprintf("refused: AADSTS%d", r.code) }

func (p *countingProvider) OnBehalfOf(ctx context.Context, assertion string, g Grant) (tokencache.Token, error) {
	n := p.calls.Add(1)
	p.record(g)
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
	return tokencache.Token{AccessToken: assertion + "/" + string(rune('0'+n)), ExpiresOn: p.clock().Add(p.lifetime)}, nil
}

// Refresh simulates a rotating refresh token: the account's MSAL blob is the refresh token, and redeeming one
// that was already redeemed is an error, as with Entra's strict rotation.
func (p *countingProvider) Refresh(ctx context.Context, a tokencache.Account, user string, g Grant) (tokencache.Token, tokencache.Account, error) {
	p.calls.Add(1)
	p.record(g)
	p.mu.Lock()
	if p.redeemed == nil {
		p.redeemed = map[string]bool{}
	}
	reused := p.redeemed[string(a.MSAL)]
	p.redeemed[string(a.MSAL)] = true
	p.mu.Unlock()
	if p.release != nil {
		<-p.release
	}
	time.Sleep(p.delay)
	if reused {
		return tokencache.Token{}, a, &refusal{70000}
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

func newTestEngine(t *testing.T) (*Engine, *countingProvider, *testenv.Clock) {
	clock := testenv.NewClock(time.Time{})
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
	core, logs := observer.New(zapcore.WarnLevel)
	e.Update(Config{Now: clock.Now, CallTimeout: 2 * time.Second, Logger: zap.New(core)})
	first, _ := e.Token(context.Background(), alice)
	clock.Advance(56 * time.Minute)
	interaction := error(&refusal{50076})
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
	// One warning per key and backoff period, naming the cause.
	waitFor(t, func() bool { return logs.Len() >= 1 })
	if w := logs.All(); len(w) != 1 || !strings.Contains(w[0].Message, "background token renewal failed") ||
		!strings.Contains(fmt.Sprint(w[0].ContextMap()["error"]), "AADSTS50076") {
		t.Fatalf("warnings = %+v", w)
	}
	// Once the token is past its margin the user is finally asked to interact.
	clock.Advance(4 * time.Minute)
	if _, err := e.Token(context.Background(), alice); !errors.As(err, new(*refusal)) {
		t.Fatalf("want the identity provider's refusal, got %v", err)
	}
}

func TestUpdateAppliesSettingsAndKeepsTokens(t *testing.T) {
	e, p, clock := newTestEngine(t)
	first, _ := e.Token(context.Background(), alice)
	// A longer refresh_before puts the cached token past its refresh time at once, without dropping it.
	e.Update(Config{Now: clock.Now, CallTimeout: time.Second, RefreshBefore: 59 * time.Minute})
	got, err := e.Token(context.Background(), alice)
	if err != nil || got.AccessToken != first.AccessToken {
		t.Fatalf("the cached token must survive an update: %v", err)
	}
	waitFor(t, func() bool { return p.calls.Load() == 1 }) // the token was cached before: no renewal yet
	e.Update(Config{Now: clock.Now, CallTimeout: 20 * time.Millisecond})
	p.release = make(chan struct{}) // never released
	bob := alice
	bob.Key.User, bob.Assertion = "oid-b.tid", "sso-b"
	if _, err := e.Token(context.Background(), bob); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the new call timeout must apply: %v", err)
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
	e.Update(Config{CallTimeout: 20 * time.Millisecond})
	p.release = make(chan struct{}) // never released
	_, err := e.Token(context.Background(), alice)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
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

// A sign-out while the user's refresh token is being redeemed ends the account: neither the redemption's rotated
// refresh token nor its access token is kept. The request it was made for is still served.
func TestSignOutDuringARefreshIsNotUndone(t *testing.T) {
	e, p, _ := newTestEngine(t)
	p.release = make(chan struct{})
	user := "oid-s.tid"
	e.cache.SetAccount(context.Background(), user, tokencache.Account{MSAL: []byte("rt"), ExpiresOn: time.Now().Add(time.Hour)})
	done := make(chan error)
	go func() {
		_, err := e.Token(context.Background(), Request{Key: tokencache.Key{User: user, Scopes: "s"}, Scopes: []string{"s"}})
		done <- err
	}()
	for p.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := e.cache.DeleteUser(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatalf("the request that started the refresh: %v", err)
	}
	if a, ok, _ := e.cache.GetAccount(context.Background(), user); ok {
		t.Fatalf("the account is back after the sign-out: %q", a.MSAL)
	}
	_, err := e.Token(context.Background(), Request{Key: tokencache.Key{User: user, Scopes: "s"}, Scopes: []string{"s"}})
	if !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("the next request after the sign-out: %v, want ErrLoginRequired (no token kept from the refresh)", err)
	}
}

func TestSessionWithoutAccountIsLoginRequired(t *testing.T) {
	e, _, _ := newTestEngine(t)
	_, err := e.Token(context.Background(), Request{Key: tokencache.Key{User: "gone.tid", Scopes: "s"}, Scopes: []string{"s"}})
	if !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("got %v", err)
	}
}

// userN is alice's request for user-n.
func userN(n int) Request {
	req := alice
	req.Key.User = fmt.Sprintf("user-%d", n)
	return req
}

// askForUsers asks the engine for the tokens of user-0 to user-(n-1).
func askForUsers(e *Engine, n int) {
	for i := range n {
		e.Token(context.Background(), userN(i))
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	e, p, clock := newTestEngine(t)
	askForUsers(e, 20)
	clock.Advance(56 * time.Minute)
	p.release = make(chan struct{}) // renewals block inside the identity provider
	askForUsers(e, 20)
	if e.Stats().BackgroundRefreshes != 20 {
		t.Fatalf("%d renewals started", e.Stats().BackgroundRefreshes)
	}
	e.Close() // cancels the blocked calls and waits for them
	waitFor(t, func() bool { return runtime.NumGoroutine() <= baseline })
}

func TestCloseWhileRequestsStartRenewals(t *testing.T) {
	e, _, clock := newTestEngine(t)
	askForUsers(e, 50)
	clock.Advance(56 * time.Minute)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Token(context.Background(), userN(i)) // may start a renewal as Close runs; must not panic
		}()
	}
	e.Close()
	wg.Wait()
	e.Close()
}

type panickingProvider struct{ countingProvider }

func (p *panickingProvider) OnBehalfOf(context.Context, string, Grant) (tokencache.Token, error) {
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

}
