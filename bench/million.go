package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/tokeninjector/caddy-token-injector/bench/harness"
	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/tokencache"
)

// millionResult is item 7's million cached entries under load: /inj/'s token cache filled with that many more
// (user, scope set) entries, and the smallest size's bearer ratio at the loaded level before and after.
type millionResult struct {
	Entries         int // entries added
	Held            int // the cache's entries after the fill
	BytesPerEntry   float64
	TokenBytes      int // each added entry's token: a distinct "Bearer " header of this many bytes
	FillTook        time.Duration
	Before, After   scaleLevel
	Conns           int
	CacheMaxEntries int
}

// millionUnderLoad measures the plain and bearer kinds of the smallest size at cfg.Conns, fills the cache, measures
// them again, then empties the cache (the items after this one do not use it) so its gigabytes can be collected.
func millionUnderLoad(env *harness.Env, cfg Config, kinds []*scaleKind, step func(string, ...any)) (millionResult, error) {
	res := millionResult{Entries: cfg.ScaleMillion, Conns: cfg.Conns, CacheMaxEntries: harness.CacheMaxEntriesA}
	h, err := harness.CapturedHandler(harness.CaptureInj)
	if err != nil {
		return res, err
	}
	pair := []*scaleKind{kinds[0], kinds[1]} // the bearer control and the smallest bearer size
	pair = []*scaleKind{{Name: pair[0].Name, Users: pair[0].Users, Control: -1, addr: pair[0].addr, reqs: pair[0].reqs},
		{Name: pair[1].Name, Users: pair[1].Users, Control: 0, Bearer: true, addr: pair[1].addr, reqs: pair[1].reqs}}
	step("scale: %d connections, plain and bearer (%d users) before filling the cache", cfg.Conns, pair[1].Users)
	if res.Before, err = scalePasses(env, pair, cfg.Conns, cfg.ScalePasses, cfg.ScaleRound, ""); err != nil {
		return res, err
	}
	step("scale: filling the token cache with %s more entries", count(cfg.ScaleMillion))
	res.TokenBytes, res.FillTook, res.BytesPerEntry = fillCache(h.TokenCache(), cfg.ScaleMillion)
	res.Held = h.TokenCache().Len()
	step("scale: %d connections, plain and bearer (%d users) with %s entries cached", cfg.Conns, pair[1].Users, count(res.Held))
	res.After, err = scalePasses(env, pair, cfg.Conns, cfg.ScalePasses, cfg.ScaleRound, "")
	h.TokenCache().Resize(1) // drops every entry, the real users' too: no later item uses this cache
	h.TokenCache().Resize(harness.CacheMaxEntriesA)
	runtime.GC()
	return res, err
}

// fillCache adds n entries, each its own user (a realistic user key) with a distinct 1.8 KB token, and returns the
// header's length, how long the fill took, and the live heap it added per entry beyond the header's bytes. The
// header ("Bearer " + token) is 1,792 bytes, one of Go's size classes, so that no rounding is counted as overhead.
func fillCache(m *tokencache.Memory, n int) (int, time.Duration, float64) {
	scopes := tokencache.NormalizeScopes([]string{harness.GraphScope})
	body := strings.Repeat("t", 1792-len("Bearer "))
	exp := time.Now().Add(time.Hour)
	before := liveHeap()
	start := time.Now()
	for i := range n {
		// The cache builds each entry's "Bearer " header from the token: a distinct allocation per entry.
		k := tokencache.Key{User: tokencache.UserKey(fmt.Sprintf("f111ed00-0000-4000-8000-%012d", i), entraemu.DefaultTenantID),
			Scopes: scopes}
		_ = m.Set(context.Background(), k, tokencache.Token{AccessToken: body, ExpiresOn: exp})
	}
	took := time.Since(start)
	header := len("Bearer ") + len(body)
	return header, took, (liveHeap()-before)/float64(n) - float64(header)
}
