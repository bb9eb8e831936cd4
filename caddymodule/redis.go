package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokeninjector/caddy-token-injector/internal/redisstore"
	"github.com/tokeninjector/caddy-token-injector/internal/seal"
	"github.com/tokeninjector/caddy-token-injector/internal/session"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// Redis is the shared, encrypted tier that replicas behind one load balancer share: downstream tokens, signed-in
// accounts, sessions and the sign-in's one-time state. Each replica keeps its in-memory cache in front. Every
// value is sealed with AES-256-GCM under EncryptionKeys[0], bound to its key name; key names are keyed hashes.
// Every value may be a placeholder such as {env.REDIS_URL}. It is set in the global token_injector option only.
type Redis struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS; pass a password with a placeholder
	// ({env.REDIS_URL}). With Cluster or Sentinel it gives the credentials, database and TLS only. Required.
	URL string `json:"url,omitempty"`
	// EncryptionKeys are base64 encodings of 32 random bytes (openssl rand -base64 32). The first seals; every
	// one opens, and a value opened with an older key is sealed again with the first. Required.
	EncryptionKeys []string `json:"encryption_keys,omitempty"`
	// KeyPrefix starts every key name, so several deployments can share one Redis. Default: tokeninjector:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each Redis operation. Default: 250ms.
	Timeout Duration `json:"timeout,omitempty"`
	// Cluster are seed addresses (host:port) of a Redis Cluster. Default: none (a single server or Sentinel).
	Cluster []string `json:"cluster,omitempty"`
	// SentinelMaster is the name of the master that Sentinels watch. Default: none.
	SentinelMaster string `json:"sentinel_master,omitempty"`
	// Sentinels are the Sentinels' addresses (host:port). Default: none.
	Sentinels []string `json:"sentinels,omitempty"`
	// SentinelPassword authenticates to the Sentinels. Default: none.
	SentinelPassword string `json:"sentinel_password,omitempty"`
}

// redisSettings is a resolved redis block.
type redisSettings struct {
	URL, Prefix, SentinelMaster, SentinelPassword string
	Keys                                          [][]byte
	Timeout                                       time.Duration
	Cluster, Sentinels                            []string
}

// resolve replaces placeholders and checks the block, naming the field; errors never contain a secret.
func (rd *Redis) resolve() (*redisSettings, error) {
	if rd == nil {
		return nil, nil
	}
	repl := caddy.NewReplacer()
	s := &redisSettings{URL: repl.ReplaceKnown(rd.URL, ""), Prefix: repl.ReplaceKnown(rd.KeyPrefix, ""),
		SentinelMaster: repl.ReplaceKnown(rd.SentinelMaster, ""), Cluster: replaceAll(rd.Cluster),
		SentinelPassword: repl.ReplaceKnown(rd.SentinelPassword, ""), Sentinels: replaceAll(rd.Sentinels)}
	if s.Prefix == "" {
		s.Prefix = redisstore.DefaultPrefix
	}
	var err error
	if s.Timeout, err = rd.Timeout.resolve(repl, "redis: timeout", redisstore.DefaultTimeout); err != nil {
		return nil, err
	}
	if s.Keys, err = seal.ParseKeys(replaceAll(rd.EncryptionKeys)); err != nil {
		return nil, fmt.Errorf("redis: encryption_key: %w", err)
	}
	c, err := redisstore.Open(s.config()) // checks the addressing; connects only when used
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	_ = c.Close()
	return s, nil
}

func (s *redisSettings) config() redisstore.Config {
	return redisstore.Config{URL: s.URL, Keys: s.Keys, Prefix: s.Prefix, Timeout: s.Timeout,
		ClusterAddrs: s.Cluster, SentinelMaster: s.SentinelMaster, SentinelAddrs: s.Sentinels,
		SentinelPassword: s.SentinelPassword}
}

// identity is a digest of everything in the block: another digest is another shared tier, and so another
// registration state (its L1 starts empty; Redis keeps what was stored).
func (s *redisSettings) identity() string {
	h := sha256.New()
	for _, v := range []string{s.URL, s.Prefix, s.SentinelMaster, s.SentinelPassword, s.Timeout.String(),
		strings.Join(s.Cluster, ","), strings.Join(s.Sentinels, ",")} {
		h.Write([]byte(v + "\x00"))
	}
	for _, k := range s.Keys {
		h.Write(k)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// inlineSecrets names the redis fields whose secret is written in the config rather than a placeholder.
func (rd *Redis) inlineSecrets() []string {
	var fields []string
	if rd == nil {
		return nil
	}
	if strings.Contains(rd.URL, "@") && !strings.Contains(rd.URL, "{") {
		fields = append(fields, "redis: url (its password)")
	}
	for _, k := range rd.EncryptionKeys {
		if !strings.Contains(k, "{") {
			fields = append(fields, "redis: encryption_key")
			break
		}
	}
	if rd.SentinelPassword != "" && !strings.Contains(rd.SentinelPassword, "{") {
		fields = append(fields, "redis: sentinel_password")
	}
	return fields
}

// unmarshalRedis reads the redis block of the global option. Syntax:
//
//	redis {
//		url               redis://[user:password@]host:port/db  # or rediss://; required
//		encryption_key    <base64 key> [<older key>...]          # required
//		key_prefix        <prefix>                               # default tokeninjector:
//		timeout           <duration>                             # default 250ms
//		cluster           <host:port>...
//		sentinel          <master name> <host:port>...
//		sentinel_password <password>
//	}
func unmarshalRedis(d *caddyfile.Dispenser) (*Redis, error) {
	rd := new(Redis)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "url":
			err = oneArg(d, &rd.URL)
		case "encryption_key", "encryption_keys":
			err = listArg(d, &rd.EncryptionKeys)
		case "key_prefix":
			err = oneArg(d, &rd.KeyPrefix)
		case "timeout":
			err = durationArg(d, &rd.Timeout)
		case "cluster":
			err = listArg(d, &rd.Cluster)
		case "sentinel":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return nil, d.Err("redis: sentinel: give the master name, then the Sentinels' addresses")
			}
			rd.SentinelMaster, rd.Sentinels = args[0], args[1:]
		case "sentinel_password":
			err = oneArg(d, &rd.SentinelPassword)
		default:
			return nil, d.Errf("redis: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if rd.URL == "" || len(rd.EncryptionKeys) == 0 {
		return nil, d.Err("redis: url and encryption_key are required")
	}
	return rd, nil
}

// sharedTier is a registration's state on Redis: the tiered token cache and session store, the lease lock of
// its engine and the sign-in's one-time memory. It lives in the registration's state, so reloads keep it.
type sharedTier struct {
	client   *redisstore.Client
	tokens   *redisstore.Tokens
	cache    *redisstore.TieredCache
	sessions *redisstore.TieredSessions
	leases   *redisstore.Leases
	used     *redisstore.Used
}

func newSharedTier(r settings, l1 *tokencache.Memory, l1Sessions session.Store, logger *zap.Logger) (*sharedTier, error) {
	cfg := r.Redis.config()
	cfg.Metrics, cfg.Logger = observer, logger
	client, err := redisstore.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	tokens := redisstore.NewTokens(client, r.ExpiryMargin)
	return &sharedTier{client: client, tokens: tokens, cache: redisstore.NewTieredCache(l1, tokens),
		sessions: redisstore.NewTieredSessions(l1Sessions, redisstore.NewSessions(client)),
		leases:   redisstore.NewLeases(client), used: redisstore.NewUsed(client)}, nil
}

// setMargin changes when cached tokens stop being returned, in every tier.
func (s *registrationState) setMargin(margin time.Duration) {
	s.cache.SetMargin(margin)
	if s.shared != nil {
		s.shared.tokens.SetMargin(margin)
	}
}
