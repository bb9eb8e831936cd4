package caddymodule_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
)

// Replicas: A is the test process's Caddy, B (and C) are caddy processes built from ./cmd/caddy, since Caddy runs
// one config per process. They share one real redis-server, as replicas behind a load balancer would.

var replicaBinary struct {
	once sync.Once
	path string
	err  error
}

// buildReplica builds ./cmd/caddy once per test run (with the race detector when the tests have it).
func buildReplica(t *testing.T) string {
	t.Helper()
	replicaBinary.once.Do(func() {
		replicaBinary.path = filepath.Join(env.Dir, "replica-caddy")
		args := []string{"build", "-o", replicaBinary.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/caddy")...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			replicaBinary.err = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if replicaBinary.err != nil {
		t.Fatal(replicaBinary.err)
	}
	return replicaBinary.path
}

// redisConfig is a site for site with both bearer (On-Behalf-Of) and session callers, on the registration of
// the integration config with a redis block whose url and key come from the environment.
func redisConfig(site, keyEnv, logPath, accessPath string) string {
	redis := fmt.Sprintf(`redis {
			url {env.TOKEN_INJECTOR_TEST_REDIS_URL}
			encryption_key {env.%s}
			timeout 1s # the default 250ms, on a test machine shared with -race builds, opens the breaker at times
		}`, keyEnv)
	return globalBlock(logPath, entraemu.DefaultTenantDomain, redis) + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	@graph path /graph/* /.auth/*
	token_injector @graph {
		scopes https://graph.microsoft.com/User.Read
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	token_injector /mail/* {
		scopes https://graph.microsoft.com/Mail.Read
		sign_in {
			cookie_secret {env.TOKEN_INJECTOR_TEST_COOKIE_SECRET}
		}
	}
	reverse_proxy %s
}
`, site, accessPath, env.Upstream.Addr)
}

// replica is a caddy process serving config (redisConfig unless a test says) on site.
type replica struct {
	site, keyEnv, dir, log string
	admin                  string // its admin endpoint's address
	config                 replicaConfig
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// replicaConfig is the Caddyfile of a replica serving site, sealing with the key in the environment variable
// keyEnv, logging to logPath and accessPath; a request to /graph/ready without credentials gets a 401.
type replicaConfig func(site, keyEnv, logPath, accessPath string) string

// startReplica runs a caddy process for site, sealing with the key in the environment variable keyEnv.
func startReplica(t *testing.T, site, keyEnv string) *replica {
	return startReplicaWith(t, site, keyEnv, redisConfig)
}

func startReplicaWith(t *testing.T, site, keyEnv string, config replicaConfig) *replica {
	t.Helper()
	dir := t.TempDir()
	r := &replica{site: site, keyEnv: keyEnv, dir: dir, log: filepath.Join(dir, "caddy.log"), config: config}
	env.mu.Lock()
	env.extraLogs = append(env.extraLogs, r.log)
	env.mu.Unlock()
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	admin, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	r.admin = admin
	cfg := strings.Replace(r.config(r.site, r.keyEnv, r.log, r.log), "{\n", "{\n\tadmin "+admin+"\n\tpersist_config off\n", 1)
	path := filepath.Join(r.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildReplica(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(r.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(r.dir, "data"), "HOME="+r.dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.done) }()
	waitUntil(t, "replica "+r.site+" to serve", func() bool {
		resp, err := env.client.Get(r.site + "/graph/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
}

// replicaHeld is what a replica's admin API says its one registration holds in memory (its L1).
type replicaHeld struct {
	CacheEntries int `json:"cache_entries"`
	Sessions     int `json:"sessions"`
}

func (r *replica) held(t *testing.T) replicaHeld {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/token_injector/registrations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var regs []replicaHeld
	if err := json.NewDecoder(resp.Body).Decode(&regs); err != nil || len(regs) != 1 {
		t.Fatalf("registrations: %v, %d", err, len(regs))
	}
	return regs[0]
}

func (r *replica) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// replicas is A (in process, on the sign-in site whose callback the tenant registers) and B, sharing srv.
type replicas struct {
	a, b   string
	B      *replica
	srv    *testenv.Redis
	key    string
	config replicaConfig
}

func startReplicas(t *testing.T) *replicas { return startReplicasWith(t, redisConfig) }

func startReplicasWith(t *testing.T, config replicaConfig) *replicas {
	t.Helper()
	testenv.Integration(t)
	srv := testenv.StartRedis(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	rs := &replicas{a: signInSite, srv: srv, key: base64.StdEncoding.EncodeToString(key), config: config}
	rememberCredential(rs.key) // the log check looks for it in every replica's log
	t.Setenv("TOKEN_INJECTOR_TEST_REDIS_URL", srv.URL)
	t.Setenv("TOKEN_INJECTOR_TEST_REDIS_KEY", rs.key)
	rs.loadA(t)
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	rs.b = "http://" + addr
	rs.B = startReplicaWith(t, rs.b, "TOKEN_INJECTOR_TEST_REDIS_KEY", config)
	return rs
}

func (rs *replicas) loadA(t *testing.T) {
	t.Helper()
	loadConfig(t, rs.config(rs.a, "TOKEN_INJECTOR_TEST_REDIS_KEY", env.logPath, env.accessPath))
}

// get sends a GET to site+path with bearer (if any) and returns the status and body.
func get(t testing.TB, site, path, bearer string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, site+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// concurrently runs n requests on each site at once and returns the statuses seen.
func concurrentStatuses(n int, sites []string, do func(site string) int) map[int]int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	statuses := map[int]int{}
	start := make(chan struct{})
	for _, site := range sites {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s := do(site)
				mu.Lock()
				statuses[s]++
				mu.Unlock()
			}()
		}
	}
	close(start)
	wg.Wait()
	return statuses
}
