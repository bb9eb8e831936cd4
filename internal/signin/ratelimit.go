package signin

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tokeninjector/caddy-token-injector/internal/contract"
	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// Redeeming a code costs a token request against the app's quota at Entra, and anyone can make a callback look
// valid (a fresh pre-login cookie from /login is free), so redemptions are limited per client address and in
// total.
const (
	// Per client address: an office behind one NAT signing in at nine o'clock (100 at once, then 10 a second)
	// passes, 50 sign-ins 200 ms apart easily; a flood of forged callbacks from one address is cut to a trickle.
	perAddressRate  = 10
	perAddressBurst = 100
	totalBurst      = 200
	maxAddresses    = 10000 // per-address limiters kept; an evicted one comes back full, the total still holds
	// refusedCodeCost is what a code Entra refuses costs its address besides its redemption: 5 s of its rate. A
	// forged callback's code is always refused, so a few addresses, each under its own rate, can no longer use
	// up the total and lock everyone else out (it takes 140 at the total rate); a user whose code expired costs
	// the office behind the same address half its burst, 5 s of its rate.
	refusedCodeCost = 50
	// usedPerSignIn is what one redemption adds to the replay memory: its state, its code and, later, its handoff.
	usedPerSignIn = 3
	// usedHeadroom: a flood lasting a whole LoginTimeout may fill at most a quarter of the replay memory.
	usedHeadroom = 4
	warnEvery    = time.Minute
)

// totalRate is the total redemption rate that keeps the replay memory from being flushed. Every entry lives at
// most LoginTimeout, so within any LoginTimeout a flood adds at most usedPerSignIn × (totalBurst + rate × TTL)
// entries; with rate = capacity / (usedPerSignIn × usedHeadroom × TTL) that is 600 + capacity/4. With the
// defaults: 200000 / (3 × 4 × 600 s) ≈ 28 redemptions a second (about 100000 an hour), at most 600 + 50000 entries
// per 10 minutes, a quarter of the 200000 the memory holds (some 20 MB when full), so no used state, code or
// handoff is evicted before it expires. A longer LoginTimeout lowers the rate in proportion.
func totalRate(capacity int, ttl time.Duration) rate.Limit {
	return rate.Limit(float64(capacity) / (usedPerSignIn * usedHeadroom * ttl.Seconds()))
}

// redeemLimiter bounds code redemptions per client address and in total.
type redeemLimiter struct {
	mu       sync.Mutex
	total    *rate.Limiter
	byAddr   *lru.Cache[string, *rate.Limiter]
	lastWarn atomic.Int64 // unix seconds of the last warning
}

func newRedeemLimiter(capacity int, ttl time.Duration) *redeemLimiter {
	return &redeemLimiter{total: rate.NewLimiter(totalRate(capacity, ttl), totalBurst),
		byAddr: lru.New[string, *rate.Limiter](maxAddresses)}
}

// reserve takes one redemption for addr at now, or returns how long to wait. Nothing is taken when it refuses.
func (l *redeemLimiter) reserve(addr string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, found := l.byAddr.Get(addr, now)
	if !found {
		lim = rate.NewLimiter(perAddressRate, perAddressBurst)
	}
	// Kept until it would be full again; a fresh limiter is then the same.
	l.byAddr.Add(addr, lim, now.Add(perAddressBurst*time.Second/perAddressRate))
	per := lim.ReserveN(now, 1)
	if d := per.DelayFrom(now); d > 0 {
		per.CancelAt(now)
		return d, false
	}
	all := l.total.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		per.CancelAt(now)
		return d, false
	}
	return 0, true
}

// refused charges addr for a code Entra refused.
func (l *redeemLimiter) refused(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, found := l.byAddr.Get(addr, now); found {
		lim.ReserveN(now, refusedCodeCost) // a debt its next redemptions wait out
	}
}

// shouldWarn reports whether a refusal at now is the first one of its minute: the operator hears of limiting
// once a minute, not once a request.
func (l *redeemLimiter) shouldWarn(now time.Time) bool {
	last := l.lastWarn.Load()
	return now.Unix()-last >= int64(warnEvery/time.Second) && l.lastWarn.CompareAndSwap(last, now.Unix())
}

// limitRedemption reports whether r may redeem a code now; when not, it has answered 429 with Retry-After.
func (h *Handler) limitRedemption(w http.ResponseWriter, r *http.Request, pl *preLogin) bool {
	now := h.cfg.Now()
	wait, ok := h.limiter.reserve(addressKey(h.cfg.ClientAddress(r)), now)
	if ok {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	if h.limiter.shouldWarn(now) {
		h.log.Warn("signin: code redemptions are being rate limited (a flood of callbacks, or more sign-ins than one instance takes)",
			zap.Int("retry_after", secs))
	} else {
		h.log.Debug("signin: code redemption rate limited", zap.Int("retry_after", secs))
	}
	h.fail(w, r, failure{status: http.StatusTooManyRequests, code: contract.CodeTemporarilyUnavailable, retryAfter: secs,
		title: "Too many sign-ins", message: "Too many sign-ins right now. Wait a moment, then reload this page."}, pl)
	return false
}

// remoteHost is the default Config.ClientAddress: the host of r.RemoteAddr.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// addressKey is the limiter key for a client address: IPv6 addresses by their /64, which one host or network
// usually holds in full.
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		if len(addr) > 64 {
			addr = addr[:64]
		}
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
