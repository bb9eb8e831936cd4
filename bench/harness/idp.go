// Package harness runs what the benchmarks measure, on the repository's one test environment (internal/dev/testenv):
// the Entra emulator over HTTPS with a generated CA, a trivial upstream, and the in-process Caddy with a JSON config
// of plain and token_injector routes. The benchmark command (bench/) and the Go benchmark BenchmarkServeHTTP here
// share it.
package harness

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// Goroutine labels: everything runs in one process, so goroutines and CPU samples are attributed by the role of
// the goroutine that started them (pprof labels are inherited).
const (
	RoleLabel    = "role"
	RoleCaddy    = "caddy"
	RoleIdP      = "idp"
	RoleUpstream = "upstream"
	RoleClient   = "client"
)

// WithRole runs f with the pprof role label set, so goroutines f starts inherit it.
func WithRole(role string, f func()) {
	pprof.Do(context.Background(), pprof.Labels(RoleLabel, role), func(context.Context) { f() })
}

// IdPOptions configures StartIdP.
type IdPOptions struct {
	// Users is how many numbered users (BenchUser(0..Users-1)) are added to the demo tenant.
	Users int
	// RefreshIn makes every token response carry Entra's refresh_in; 0 sends none.
	RefreshIn time.Duration
	// Dir receives the CA certificate file that Caddy's tls_trust_pool points at.
	Dir string
	// ErrorLog receives the emulator server's errors (TLS handshakes, timeouts); nil discards them.
	ErrorLog *log.Logger
	// RedirectURIs are added to the add-in app's registered reply URLs: a sign_in site's <origin>/.auth/callback.
	RedirectURIs []string
}

// IdP is one emulated tenant served over HTTPS (testenv's), with the suite's bulk helpers.
type IdP struct {
	*testenv.IdP
}

// BenchUser is the i-th numbered user; its object id is fixed so runs are comparable.
func BenchUser(i int) entraemu.User {
	key := fmt.Sprintf("bench%05d", i)
	return entraemu.User{Key: key, ObjectID: fmt.Sprintf("be4c0000-0000-4000-8000-%012d", i),
		UPN: key + "@" + entraemu.DefaultTenantDomain, Name: "Bench User " + key}
}

// StartIdP starts an emulator (the demo tenant plus o.Users numbered users) on a loopback port with a new CA; its
// server's goroutines carry the idp role.
func StartIdP(o IdPOptions) (*IdP, error) {
	cfg := entraemu.DefaultConfig()
	cfg.RefreshIn = o.RefreshIn
	for i := range o.Users {
		cfg.Users = append(cfg.Users, BenchUser(i))
	}
	testenv.AddRedirectURIs(&cfg, o.RedirectURIs...)
	var p *testenv.IdP
	var err error
	WithRole(RoleIdP, func() { p, err = testenv.StartIdP(cfg, testenv.IdPOptions{Dir: o.Dir, ErrorLog: o.ErrorLog}) })
	if err != nil {
		return nil, err
	}
	return &IdP{p}, nil
}

// OBOCalls is how many On-Behalf-Of requests reached the emulator's token endpoint.
func (p *IdP) OBOCalls() int { return p.Emu.Counters().ByGrant[entraemu.GrantOBO] }

// Mint returns one caller token (what Office SSO would hand the add-in) per user, minted on every core: each is
// an RSA-2048 signature, the slowest part of setting up thousands of users.
func (p *IdP) Mint(users []entraemu.User) ([]string, error) {
	toks := make([]string, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				toks[i], errs[i] = p.Emu.MintAccessToken(users[i].Key, entraemu.MintOptions{})
			}
		})
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// ErrorTally is a log destination that counts messages by kind (numbers and addresses blanked), so that thousands
// of identical server errors in a herd become one line of the report.
type ErrorTally struct {
	mu     sync.Mutex
	counts map[string]int
}

var errorDetail = regexp.MustCompile(`[0-9a-f.:\[\]]*[0-9][0-9a-f.:\[\]]*`)

// Logger returns a logger writing to t.
func (t *ErrorTally) Logger() *log.Logger { return log.New(t, "", 0) }

func (t *ErrorTally) Write(p []byte) (int, error) {
	kind := errorDetail.ReplaceAllString(string(p), "N")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[kind]++
	return len(p), nil
}

// Snapshot returns the counts so far.
func (t *ErrorTally) Snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// Since summarizes what was counted after before was taken, most frequent first: "n × message".
func (t *ErrorTally) Since(before map[string]int) (total int, lines []string) {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range t.Snapshot() {
		if d := n - before[k]; d > 0 {
			kvs = append(kvs, kv{k, d})
			total += d
		}
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].n > kvs[j].n })
	for _, e := range kvs {
		lines = append(lines, fmt.Sprintf("%d × %s", e.n, e.k))
	}
	return total, lines
}
