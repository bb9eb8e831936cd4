package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/testenv"
	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// redisResult is the Redis tier's item: the L1-hit path with redis configured against the same Caddy's plain
// route, next to the memory-only ratio measured just before in the same run, and an L2 hit (L1 miss) on loopback.
type redisResult struct {
	Memory, Redis steadyLevel
	L2P50, L2P99  time.Duration
	L2Gets        int
}

func (r redisResult) rows() []Row {
	rows := []Row{{"R", fmt.Sprintf("L1 hit, %d conns: rps ratio injector/plain memory-only / with redis", r.Redis.Conns),
		fmt.Sprintf("%.3f / %.3f", r.Memory.Ratio, r.Redis.Ratio), "within noise",
		verdict(r.Redis.Ratio >= r.Memory.Ratio-0.05)}}
	rows = append(rows, r.Redis.rows()...)
	return append(rows,
		Row{"R", fmt.Sprintf("L2 hit (L1 miss) on loopback, 2 KB token: p50 / p99 over %d gets", r.L2Gets),
			fmt.Sprintf("%s / %s ms", ms(r.L2P50), ms(r.L2P99)), "p99 < 1 ms", verdict(r.L2P99 < time.Millisecond)})
}

// runRedis starts a redis-server, measures the memory-only steady state, reloads Caddy with redis, warms every
// user again (the registration's state is new: its identity includes the redis block) and measures the same
// steady state, then an L2 hit directly on the store. It puts the memory-only config back at the end.
func runRedis(env *harness.Env, cfg Config, tokens, oids []string, rep *Report, step func(string, ...any)) error {
	if _, err := exec.LookPath("redis-server"); err != nil && !testenv.CI() {
		rep.Rows = append(rep.Rows, Row{"R", "the Redis tier", "not measured: redis-server is not installed " +
			"(apt-get install redis-server)", "", "NO"})
		return nil
	}
	srv, err := testenv.NewRedis(env.Dir())
	if err != nil {
		return err
	}
	defer srv.Kill()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	pairs := max(cfg.Pairs/2, 1)
	step("redis: memory-only steady state, %d connections, %d pairs", cfg.Conns, pairs)
	if rep.Redis.Memory, err = steadyState(env, bearerPlan(env, tokens), cfg.Conns, pairs, cfg.Round); err != nil {
		return err
	}
	if err := env.UseRedis(map[string]any{"url": srv.URL,
		"encryption_keys": []string{base64.StdEncoding.EncodeToString(key)}}); err != nil {
		return err
	}
	defer func() { _ = env.UseRedis(nil) }()
	if w, err := env.Warm(harness.PathCheck, tokens, oids); err != nil || w.Failures+w.Mismatches > 0 {
		return fmt.Errorf("redis: warm-up %+v: %v", w, err)
	}
	step("redis: steady state with redis (L1 hits), %d connections, %d pairs", cfg.Conns, pairs)
	plan := bearerPlan(env, tokens)
	plan.Item, plan.Name, plan.Route = "R", "redis", "injector+redis"
	if rep.Redis.Redis, err = steadyState(env, plan, cfg.Conns, pairs, cfg.Round); err != nil {
		return err
	}
	if rep.Redis.Redis.NotOK > 0 {
		return fmt.Errorf("redis: %d responses not 200", rep.Redis.Redis.NotOK)
	}
	step("redis: L2 hits on loopback")
	rep.Redis.L2P50, rep.Redis.L2P99, rep.Redis.L2Gets, err = l2Latency(srv.URL, key, cfg.Smoke)
	rep.Rows = append(rep.Rows, rep.Redis.rows()...)
	return err
}

// l2Latency times sequential gets of cached 2 KB tokens from the Redis tier, which is what an L1 miss costs:
// one round trip, the unsealing and the decoding.
func l2Latency(url string, key []byte, smoke bool) (p50, p99 time.Duration, n int, err error) {
	c, err := redisstore.Open(redisstore.Config{URL: url, Keys: [][]byte{key}, Prefix: "bench:", Timeout: time.Second})
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	tokens := redisstore.NewTokens(c, time.Minute)
	ctx := context.Background()
	users, rounds := 1000, 10
	if smoke {
		users, rounds = 20, 2
	}
	access := strings.Repeat("x", 2048)
	for i := range users {
		k := tokencache.Key{User: fmt.Sprintf("user-%d.tenant", i), Scopes: harness.GraphScope}
		if err := tokens.Set(ctx, k, tokencache.Token{AccessToken: access, ExpiresOn: time.Now().Add(time.Hour)}); err != nil {
			return 0, 0, 0, err
		}
	}
	var d []time.Duration
	for range rounds {
		for i := range users {
			k := tokencache.Key{User: fmt.Sprintf("user-%d.tenant", i), Scopes: harness.GraphScope}
			start := time.Now()
			_, ok, err := tokens.Get(ctx, k)
			d = append(d, time.Since(start))
			if err != nil || !ok {
				return 0, 0, 0, fmt.Errorf("redis: L2 get: %v %v", ok, err)
			}
		}
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100], len(d), nil
}
