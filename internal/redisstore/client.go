// Package redisstore is the shared tier on Redis: downstream tokens, signed-in accounts, sessions and the sign-in
// one-time marks, every value sealed (package seal, the key name as additional data) under a key name that is a
// keyed hash of what it names, so neither values nor names reveal a token or who is signed in. It speaks Redis
// through go-redis: a single server, Sentinel or Cluster. Every operation is bounded by Config.Timeout, and a
// breaker stops waiting on a Redis that is down (ErrUnavailable) until a probe finds it back.
package redisstore

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/metrics"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Defaults applied by Open to zero Config fields.
const (
	DefaultPrefix  = "tokeninjector:"
	DefaultTimeout = 250 * time.Millisecond
)

// ErrUnavailable means Redis did not answer in time or is known to be down: a transient failure, never a reason
// to sign anyone out.
var ErrUnavailable = fmt.Errorf("redis: %w", tokencache.ErrStoreUnavailable)

// Config says where Redis is and how values are protected.
type Config struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS. For Cluster or Sentinel it gives the
	// credentials, database and TLS; the addresses come from ClusterAddrs or SentinelAddrs.
	URL string
	// ClusterAddrs are seed nodes of a Redis Cluster.
	ClusterAddrs []string
	// SentinelMaster names the master that SentinelAddrs watch; SentinelPassword authenticates to the sentinels.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword string
	// Keys are 32-byte keys: the first seals, all open. Required.
	Keys [][]byte
	// Prefix starts every key name. Default "tokeninjector:".
	Prefix string
	// Timeout bounds each operation. Default 250ms.
	Timeout time.Duration
	Now     func() time.Time
	// Metrics receives every command or pipeline sent. Default: metrics.Nop.
	Metrics metrics.Redis
	// Logger says when a deletion waiting for Redis had to be dropped. Default: a no-op logger.
	Logger *zap.Logger
}

// Client is a connection to Redis with the sealing and naming every store shares. It is safe for concurrent use.
type Client struct {
	rdb     redis.UniversalClient
	keys    *seal.Keys
	namers  [][]byte // one name key per encryption key, the first's names written
	prefix  string
	timeout time.Duration
	now     func() time.Time
	breaker breaker
	bus     *bus
	metrics metrics.Redis
	pending *pending
}

// Open checks cfg and connects lazily (go-redis reconnects by itself). Errors never contain the URL's password.
func Open(cfg Config) (*Client, error) {
	opts, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := seal.New(cfg.Keys)
	if err != nil {
		return nil, fmt.Errorf("encryption_key: %w", err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.Nop{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
	opts.MaxRetries = -1 // the breaker and the caller decide; a retry would double the wait
	opts.ContextTimeoutEnabled = true
	c := &Client{rdb: redis.NewUniversalClient(opts), keys: keys, prefix: cfg.Prefix, timeout: cfg.Timeout,
		now: cfg.Now, metrics: cfg.Metrics}
	c.bus = newBus(c)
	c.pending = newPending(c, cfg.Logger)
	for _, k := range cfg.Keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte("token_injector redis key names v1"))
		c.namers = append(c.namers, m.Sum(nil))
	}
	return c, nil
}

// universalOptions turns cfg's addressing into go-redis options.
func universalOptions(cfg Config) (*redis.UniversalOptions, error) {
	if cfg.URL == "" {
		return nil, errors.New("url: required (redis://host:port/0, or rediss:// for TLS)")
	}
	o, err := redis.ParseURL(cfg.URL)
	if err != nil {
		// go-redis errors may quote the URL, and with it a password.
		return nil, errors.New("url: not a redis:// or rediss:// URL")
	}
	u := &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB,
		TLSConfig: o.TLSConfig, Protocol: 2}
	switch {
	case len(cfg.ClusterAddrs) > 0 && len(cfg.SentinelAddrs) > 0:
		return nil, errors.New("cluster and sentinel: set one of them")
	case len(cfg.ClusterAddrs) > 0:
		if o.DB != 0 {
			return nil, errors.New("url: Redis Cluster has only database 0")
		}
		u.Addrs, u.IsClusterMode = cfg.ClusterAddrs, true
	case len(cfg.SentinelAddrs) > 0:
		if cfg.SentinelMaster == "" {
			return nil, errors.New("sentinel: master_name: required with sentinel addresses")
		}
		u.Addrs, u.MasterName, u.SentinelPassword = cfg.SentinelAddrs, cfg.SentinelMaster, cfg.SentinelPassword
	}
	return u, nil
}

// Release closes the client once the endings it keeps for Redis (logouts made during an outage, see pending) have
// reached it, or after grace, whichever comes first, and returns at once: a reload during an outage must not drop
// them, as Close would.
func (c *Client) Release(grace time.Duration) {
	if !c.pending.waiting() {
		_ = c.Close()
		return
	}
	go func() {
		deadline := time.Now().Add(grace)
		for c.pending.waiting() && time.Now().Before(deadline) {
			time.Sleep(pendingRetry)
		}
		_ = c.Close()
	}()
}

// Close stops listening for invalidations and closes the connections. What pending keeps is lost.
func (c *Client) Close() error {
	c.pending.close()
	c.bus.close()
	return c.rdb.Close()
}

// Ping checks that Redis answers within the timeout.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, metrics.RedisPing, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() })
}

// do runs op (a command or pipeline of kind) bounded by the timeout, through the breaker, and reports it to the
// metrics. A failure of Redis itself becomes ErrUnavailable.
func (c *Client) do(ctx context.Context, kind metrics.RedisOp, op func(context.Context) error) error {
	start := time.Now()
	if !c.breaker.allow(start) {
		return ErrUnavailable
	}
	opCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := op(opCtx)
	if errors.Is(err, redis.Nil) || errors.Is(err, errConflict) {
		c.metrics.RedisCalled(kind, time.Since(start), nil)
	} else {
		c.metrics.RedisCalled(kind, time.Since(start), err)
	}
	if err != nil && callerGaveUp(ctx) {
		// A waiter's deadline says nothing about Redis: it must not open the breaker for every request.
		return cmp.Or(ctx.Err(), context.DeadlineExceeded)
	}
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, errConflict) {
		c.breaker.succeeded()
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isTransient(rerr) {
		// Redis answered (a wrong password, NOAUTH, a command it lacks): the operator's to fix, and no reason to
		// stop waiting on it; for the callers it is still a store they cannot use, never a 500.
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c.breaker.failed(time.Now())
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// callerGaveUp reports whether ctx is over. Its deadline counts even before ctx.Err() says so: the connection's
// read deadline, set from the same instant, can fire first, and the command then fails with an i/o timeout while
// ctx.Err() is still nil.
func callerGaveUp(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

func isTransient(err redis.Error) bool {
	msg := err.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY"} {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			return true
		}
	}
	return false
}

// name is the key name of what parts name, of one kind: the prefix, the user's hash tag (so that a user's keys
// share a Cluster slot and can be deleted together) and a keyed hash. namer picks the name key (0: the newest).
func (c *Client) name(namer int, kind, user string, parts ...string) string {
	tag := c.hash(namer, "user", user)
	if len(parts) == 0 {
		return c.prefix + "{" + tag + "}:" + kind
	}
	return c.prefix + "{" + tag + "}:" + kind + ":" + c.hash(namer, kind, parts...)
}

// plainName is a key name outside any user's slot (sessions, one-time marks, locks).
func (c *Client) plainName(namer int, kind string, parts ...string) string {
	return c.prefix + kind + ":" + c.hash(namer, kind, parts...)
}

func (c *Client) hash(namer int, kind string, parts ...string) string {
	m := hmac.New(sha256.New, c.namers[namer])
	m.Write([]byte(kind))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ttlUntil is how long from now an entry expiring at t is kept; at least a millisecond, as PX requires.
func (c *Client) ttlUntil(t time.Time) time.Duration {
	return max(t.Sub(c.now()), time.Millisecond)
}

// breaker opens after a failure and lets one probe through per interval while open.
type breaker struct {
	openUntil atomic.Int64 // unix nanoseconds; 0 while closed
}

// breakerInterval is how long an open breaker answers ErrUnavailable before it lets a probe through.
const breakerInterval = time.Second

func (b *breaker) allow(now time.Time) bool {
	until := b.openUntil.Load()
	if until == 0 || now.UnixNano() >= until {
		// Closed, or time for a probe: the first caller takes it, the others keep failing fast.
		return until == 0 || b.openUntil.CompareAndSwap(until, now.Add(breakerInterval).UnixNano())
	}
	return false
}

func (b *breaker) succeeded() { b.openUntil.Store(0) }

func (b *breaker) failed(now time.Time) { b.openUntil.Store(now.Add(breakerInterval).UnixNano()) }
