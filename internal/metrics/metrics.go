// Package metrics is the port through which the proxy's parts report what they do: the acquisition engine, the
// token cache, the caller checks, the identity-provider calls and the Redis tier each call one small interface
// here, and Nop ignores everything. Package metrics/prom implements them with Prometheus collectors, so no other
// internal package imports Prometheus. Every value passed is from a bounded set (an enum, or an error the
// implementation classifies into a bounded set): no user ids, no error strings.
package metrics

import "time"

// Source is where a token acquisition was answered from.
type Source uint8

const (
	SourceCache            Source = iota // a cached token, no identity-provider call
	SourceIdentityProvider               // a request's identity-provider call (one per single-flight)
	SourceRenewal                        // a background renewal of a token still being served
	numSources
)

// NumSources is the number of Source values, for implementations that pre-resolve one counter per value.
const NumSources = int(numSources)

var sourceNames = [...]string{"cache", "identity_provider", "background_renewal"}

func (s Source) String() string { return sourceNames[s] }

// Grant is the OAuth grant of an identity-provider call.
type Grant uint8

const (
	GrantOnBehalfOf        Grant = iota // jwt-bearer, a caller's token exchanged
	GrantRefreshToken                   // a session's refresh token redeemed
	GrantAuthorizationCode              // a sign-in's code redeemed
	GrantClientCredentials              // the app's own token
)

var grantNames = [...]string{"on_behalf_of", "refresh_token", "authorization_code", "client_credentials"}

func (g Grant) String() string { return grantNames[g] }

// Engine is what the acquisition engine reports.
type Engine interface {
	// CacheLookup reports a request's look in the token cache: hit or miss.
	CacheLookup(hit bool)
	// Acquired reports an acquisition answered from source with err (nil: a token). Cache hits come with
	// SourceCache; each identity-provider flight (however many requests wait on it) is reported once.
	Acquired(source Source, err error)
	// Waiting reports a request starting (+1) or ending (-1) its wait on an identity-provider flight.
	Waiting(delta int)
}

// IdentityProvider is what the instrumented identity-provider port reports for each call.
type IdentityProvider interface {
	// Called reports one identity-provider call of grant that took d and ended with err (nil: a token).
	Called(grant Grant, d time.Duration, err error)
}

// Cache is what a token cache tier reports.
type Cache interface {
	// Evicted reports n entries evicted to make room for a new one.
	Evicted(n int)
}

// Callers is what the caller checks report.
type Callers interface {
	// Rejected reports a caller's token refused before any identity-provider call: invalid, forbidden, or not
	// checkable because the tenant's keys are unavailable. The implementation classifies err.
	Rejected(err error)
}

// RedisOp is an operation of the Redis tier.
type RedisOp uint8

const (
	RedisGet RedisOp = iota
	RedisSet
	RedisDelete
	RedisDeleteUser // every key of one user (sign-out)
	RedisScan
	RedisPublish
	RedisSubscribe
	RedisLock
	RedisUnlock
	RedisPing
	RedisOther
)

var redisOpNames = [...]string{"get", "set", "delete", "delete_user", "scan", "publish", "subscribe", "lock",
	"unlock", "ping", "other"}

func (o RedisOp) String() string {
	if int(o) >= len(redisOpNames) {
		return "other"
	}
	return redisOpNames[o]
}

// Redis is what the Redis tier reports for each command or pipeline it sends.
type Redis interface {
	// RedisCalled reports op taking d and ending with err. A miss (redis.Nil) is not an error: pass nil.
	RedisCalled(op RedisOp, d time.Duration, err error)
}

// Observer is every port at once, as the Prometheus implementation and Nop provide it.
type Observer interface {
	Engine
	IdentityProvider
	Cache
	Callers
	Redis
}

// Nop ignores every report; it is the default wherever no observer is configured.
type Nop struct{}

func (Nop) CacheLookup(bool)                          {}
func (Nop) Acquired(Source, error)                    {}
func (Nop) Waiting(int)                               {}
func (Nop) Called(Grant, time.Duration, error)        {}
func (Nop) Evicted(int)                               {}
func (Nop) Rejected(error)                            {}
func (Nop) RedisCalled(RedisOp, time.Duration, error) {}

var _ Observer = Nop{}
