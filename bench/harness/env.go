package harness

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/loadgen"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
)

// Paths of the benchmark site.
const (
	PathPlain  = "/plain/" // reverse_proxy only
	PathInj    = "/inj/"   // token_injector + reverse_proxy, tenant A
	PathCheck  = "/check/" // the same registration and scopes as /inj/, in front of the token-checking stub
	PathExpiry = "/exp/"   // token_injector with tenant B (refresh_in) + reverse_proxy
	CaptureInj = "inj"     // name of the captured /inj/ handler
	GraphScope = "https://graph.microsoft.com/User.Read"

	// Cookie sessions: the same registration as /inj/ (so the same token cache) plus a sign_in block.
	PathSess      = "/sess/"   // token_injector with sign_in + reverse_proxy to the trivial upstream
	PathSessCheck = "/scheck/" // the same, in front of the token-checking stub: sign-in lands here
	PathAuth      = "/.auth/"  // the sign-in endpoints (login, callback), served by a token_injector with sign_in
	CaptureSess   = "sess"     // name of the captured /sess/ handler
	// PathSessControl is the session path's control: reverse_proxy behind a handler that sends upstream a fixed
	// Authorization header as long as the session route's (SetSessionControl) and not the cookie, which the
	// session route strips (control.go). So a request there carries the same bytes in and out as one on /sess/.
	PathSessControl = "/sctl/"
)

// measuredPaths are the routes the steady, session and scale items compare: each also has a server of its own
// (Route.Own, AddrOf), so that reaching it costs the same as reaching its control.
var measuredPaths = []string{PathPlain, PathInj, PathSess, PathSessControl}

// CacheMaxEntriesA is tenant A's token cache bound: room for the scale item's million entries besides the users.
const CacheMaxEntriesA = 2_000_000

// EnvOptions configures StartEnv.
type EnvOptions struct {
	UsersA int // numbered users of tenant A (steady state, herds)
	// TimeoutA is tenant A's registration timeout (each call to Entra); 0 keeps the default (10s).
	TimeoutA time.Duration
	// UsersB > 0 adds tenant B, whose tokens carry refresh_in = RefreshInB, behind /exp/.
	UsersB     int
	RefreshInB time.Duration
	LogFile    string // Caddy's log; "" discards it
	// CallerScopes, when set, is the bearer routes' caller_scopes (tenant A's tokens carry access_as_user); the
	// session routes take none, as sign_in requires.
	CallerScopes []string
}

// Env is everything the suite runs in one process: tenants, upstreams and one Caddy.
type Env struct {
	Addr    string // Caddy's listener, host:port
	A, B    *IdP
	Trivial *Upstream // behind /plain/, /inj/, /sess/ and /exp/
	Echo    *Upstream // the emulator's downstream stub, behind /check/ and /scheck/
	// ServerErrors counts what the emulators' and upstreams' servers log (refused connections, failed TLS
	// handshakes), which a herd can cause by the thousand.
	ServerErrors *ErrorTally

	dir   string
	caddy *testenv.Caddy
	site  Site              // the running config, for UseRedis and SetSessionControl
	own   map[string]string // measured path -> the address of its own server
	// userKeys are users' keys (by object id) as their proven identities have them: see SeedTokens.
	userKeys map[string]string
}

// AddrOf is the address of path's own server (for the measured routes), else the shared one's, Addr.
func (e *Env) AddrOf(path string) string { return cmp.Or(e.own[path], e.Addr) }

// SetSessionControl reloads the site with authorization as the Authorization header PathSessControl sends
// upstream: a header of the session route's size (one user's downstream token). The registrations' state (token
// cache, proven tokens, sessions) outlives the reload; what each handler remembered of the cookies it opened
// does not, so cookies are opened again on the new handlers' first requests.
func (e *Env) SetSessionControl(authorization string) error {
	for i, r := range e.site.Routes {
		if r.Path == PathSessControl+"*" {
			if r.FixedAuthorization == authorization {
				return nil
			}
			e.site.Routes[i].FixedAuthorization = authorization
		}
	}
	return e.site.Load(e.caddy)
}

// UseRedis reloads the site with redis (a token_injector app's redis block) or, with nil, without it. The
// registration's state is a new one (its identity includes the redis block): caches start empty.
func (e *Env) UseRedis(redis map[string]any) error {
	e.site.Redis = redis
	return e.site.Load(e.caddy)
}

// Dir is the environment's temporary directory.
func (e *Env) Dir() string { return e.dir }

// StartEnv starts the tenants, the upstreams and Caddy.
func StartEnv(o EnvOptions) (env *Env, err error) {
	e := &Env{ServerErrors: &ErrorTally{}, userKeys: map[string]string{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "token-injector-bench-"); err != nil {
		return nil, err
	}
	// Caddy's address first: tenant A must list the sign-in callback on it as a reply URL.
	if e.Addr, err = testenv.FreeAddr(); err != nil {
		return nil, err
	}
	if e.A, err = StartIdP(IdPOptions{Users: o.UsersA, Dir: e.dir, ErrorLog: e.ServerErrors.Logger(),
		RedirectURIs: []string{e.Origin() + PathAuth + "callback"}}); err != nil {
		return nil, err
	}
	if e.Trivial, err = StartUpstream(TrivialHandler, e.ServerErrors.Logger()); err != nil {
		return nil, err
	}
	if e.Echo, err = StartUpstream(entraemu.NewDownstreamAPI(e.A.Emu), e.ServerErrors.Logger()); err != nil {
		return nil, err
	}
	regA := map[string]any{"cache_max_entries": CacheMaxEntriesA}
	if o.TimeoutA > 0 {
		regA["timeout"] = int64(o.TimeoutA)
	}
	injA := &Injector{Scopes: []string{GraphScope}, Registration: e.A.Registration(regA)}
	if o.CallerScopes != nil {
		injA.Registration["caller_scopes"] = o.CallerScopes
	}
	captured := *injA
	captured.Capture = CaptureInj
	// The session routes' registration is injA's plus sign_in, which is not part of the registration's identity:
	// they share its token cache (and its session store, whichever of them signed the user in).
	secret, err := cookieSecret()
	if err != nil {
		return nil, err
	}
	regSess := maps.Clone(regA)
	// The shortest login_timeout: a total of 278 code redemptions a second, so item 6's 1,000 sign-ins are not
	// spaced out by the default's 28 (the replay memory's bound, a security limit, not a cost of the proxy).
	regSess["sign_in"] = map[string]any{"cookie_secrets": []string{secret}, "login_timeout": "1m"}
	injSess := &Injector{Scopes: []string{GraphScope}, Registration: e.A.Registration(regSess)}
	capturedSess := *injSess
	capturedSess.Capture = CaptureSess
	site := Site{Listen: e.Addr, LogFile: o.LogFile, StorageDir: e.dir, Routes: []Route{
		{Path: PathPlain + "*", Upstream: e.Trivial.Addr},
		{Path: PathInj + "*", Upstream: e.Trivial.Addr, Injector: &captured},
		{Path: PathCheck + "*", Upstream: e.Echo.Addr, Injector: injA},
		{Path: PathSess + "*", Upstream: e.Trivial.Addr, Injector: &capturedSess},
		{Path: PathSessCheck + "*", Upstream: e.Echo.Addr, Injector: injSess},
		{Path: PathAuth + "*", Upstream: e.Trivial.Addr, Injector: injSess}, // the handler answers; never proxied
		// Its Authorization header is set once the users' downstream tokens are known (SetSessionControl).
		{Path: PathSessControl + "*", Upstream: e.Trivial.Addr, FixedAuthorization: "Bearer -"},
	}}
	e.own = map[string]string{}
	for i, r := range site.Routes {
		if slices.Contains(measuredPaths, strings.TrimSuffix(r.Path, "*")) {
			if site.Routes[i].Own, err = testenv.FreeAddr(); err != nil {
				return nil, err
			}
			e.own[strings.TrimSuffix(r.Path, "*")] = site.Routes[i].Own
		}
	}
	if o.UsersB > 0 {
		if e.B, err = StartIdP(IdPOptions{Users: o.UsersB, RefreshIn: o.RefreshInB, Dir: e.dir,
			ErrorLog: e.ServerErrors.Logger()}); err != nil {
			return nil, err
		}
		injB := &Injector{Scopes: []string{GraphScope}, Registration: e.B.Registration(nil)}
		site.Routes = append(site.Routes, Route{Path: PathExpiry + "*", Upstream: e.Trivial.Addr, Injector: injB})
	}
	if e.caddy, err = testenv.NewCaddy(filepath.Join(e.dir, "caddy")); err != nil {
		return nil, err
	}
	if err = site.Load(e.caddy); err != nil {
		return nil, err
	}
	e.site = site
	return e, nil
}

// Origin is the benchmark site's origin, http://127.0.0.1:<port>. On plain http to 127.0.0.1 the session cookie
// is not Secure and is named SessionCookie.
func (e *Env) Origin() string { return "http://" + e.Addr }

// SessionCookie is the session cookie's name on this site (plain http to 127.0.0.1, where __Host- is refused).
const SessionCookie = session.DefaultInsecureCookieName

// cookieSecret is a new random sign_in cookie_secret: base64 of 32 bytes.
func cookieSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// Close stops Caddy and everything else StartEnv started.
func (e *Env) Close() {
	if e.caddy != nil {
		_ = e.caddy.Stop()
	}
	for _, p := range []*IdP{e.A, e.B} {
		if p != nil {
			p.Close()
		}
	}
	for _, u := range []*Upstream{e.Trivial, e.Echo} {
		if u != nil {
			u.Close()
		}
	}
	e.RemoveDir()
}

// RemoveDir removes the temporary folder StartEnv made and leaves its servers running, for a process that ends
// without stopping them.
func (e *Env) RemoveDir() {
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// WarmResult is what warming found: every response must be 200 and carry the right user's downstream token.
type WarmResult struct {
	Requests, Failures, Mismatches int
}

// Warm sends one request per user through path with the user's caller token, so each (user, scope set) is cached.
// Through /check/ the token-checking stub echoes the oid of the token it received, and a token injected for the
// wrong user counts as a mismatch.
func (e *Env) Warm(path string, tokens, oids []string) (WarmResult, error) {
	return e.warm(path, "Authorization", "Bearer ", tokens, oids)
}

// Requests are the load generator's requests for path on its server (AddrOf), one per credential, each made by
// get (loadgen.GET, loadgen.GETCookie) for path + "me".
func (e *Env) Requests(path string, creds []string, get func(host, path, cred string) []byte) [][]byte {
	reqs := make([][]byte, len(creds))
	for i, c := range creds {
		reqs[i] = get(e.AddrOf(path), path+"me", c)
	}
	return reqs
}

// WarmEach sends Requests(path, creds, get) once each over 16 connections and counts the answers that are not
// 200: a warm-up of thousands of users that needs no check of the body, at the load generator's cost rather than
// net/http's. It goes to path's own server for a measured route: that server has handlers of its own, and what
// a handler remembers of the cookies it opened is its own.
func (e *Env) WarmEach(path string, creds []string, get func(host, path, cred string) []byte) (WarmResult, error) {
	reqs := e.Requests(path, creds, get)
	var next atomic.Int64
	res, err := loadgen.Run(loadgen.Plan{Addr: e.AddrOf(path), Conns: 16, Requests: len(reqs), Timeout: time.Minute,
		Next: func(int, int) []byte { return reqs[next.Add(1)-1] }})
	r := WarmResult{Requests: len(reqs), Failures: len(reqs) - res.OK()}
	if err == nil && r.Failures > 0 {
		err = fmt.Errorf("warming %d users: %d answers not 200 (%v), %d without an answer", len(reqs), r.Failures,
			res.Status, res.Errors)
	}
	return r, err
}

// WarmSessions is Warm for signed-in users: each request carries only "Cookie: <cookies[i]>" (no Authorization),
// so through /scheck/ it proves that the session cookie alone gets the user their own token.
func (e *Env) WarmSessions(path string, cookies, oids []string) (WarmResult, error) {
	return e.warm(path, "Cookie", "", cookies, oids)
}

func (e *Env) warm(path, header, prefix string, creds, oids []string) (WarmResult, error) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var failures, mismatches atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				oid, status, err := get(client, "http://"+e.Addr+path+"me", header, prefix+creds[i])
				switch {
				case err != nil:
					once.Do(func() { firstErr = err })
					failures.Add(1)
				case status != http.StatusOK:
					failures.Add(1)
				case oids != nil && oid != oids[i]:
					mismatches.Add(1)
				}
			}
		})
	}
	for i := range creds {
		next <- i
	}
	close(next)
	wg.Wait()
	r := WarmResult{Requests: len(creds), Failures: int(failures.Load()), Mismatches: int(mismatches.Load())}
	if firstErr != nil {
		return r, firstErr
	}
	if r.Failures > 0 || r.Mismatches > 0 {
		return r, fmt.Errorf("warming %s: %d failures, %d mismatches of %d", path, r.Failures, r.Mismatches, r.Requests)
	}
	return r, nil
}

// get sends one request with header: value and returns the oid of a JSON body (the stub's echo), if any.
func get(c *http.Client, url, header, value string) (string, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set(header, value)
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, err
	}
	return echoOID(resp.StatusCode, body)
}

// echoOID returns the oid of the token-checking stub's JSON echo, "" for any other body.
func echoOID(status int, body []byte) (string, int, error) {
	var echo struct {
		OID string `json:"oid"`
	}
	if status == http.StatusOK && json.Unmarshal(body, &echo) != nil && len(body) > 0 && body[0] == '{' {
		return "", status, errors.New("echo body is not JSON")
	}
	return echo.OID, status, nil
}

// Users returns the numbered users from, from+1, ... from+n-1 and their object ids.
func Users(from, n int) ([]entraemu.User, []string) {
	users := make([]entraemu.User, n)
	oids := make([]string, n)
	for i := range n {
		users[i] = BenchUser(from + i)
		oids[i] = users[i].ObjectID
	}
	return users, oids
}

// Upstream is an HTTP server on a loopback port (testenv's, counting requests): the trivial API behind both
// measured routes (it answers "ok" with a Content-Length, so the proxy's own cost dominates), or any other handler
// such as the emulator's token-checking downstream stub.
type Upstream = testenv.Upstream

var okBody = []byte("ok\n")

// TrivialHandler answers 200 "ok".
var TrivialHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Length"] = []string{"3"}
	w.Header()["Content-Type"] = []string{"text/plain"}
	_, _ = w.Write(okBody)
})

// StartUpstream serves h on a free loopback port, its goroutines labelled upstream; errLog receives the server's
// errors. It keeps no headers: under load that would grow without bound.
func StartUpstream(h http.Handler, errLog *log.Logger) (u *Upstream, err error) {
	WithRole(RoleUpstream, func() { u, err = testenv.StartUpstream(h, testenv.UpstreamOptions{ErrorLog: errLog}) })
	return u, err
}
