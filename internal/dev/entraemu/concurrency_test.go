package entraemu_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

// TestConcurrentHammer runs token, discovery, control and fault traffic at once; run with -race.
func TestConcurrentHammer(t *testing.T) {
	e, _ := newTestEmulator(t)
	users := []string{"adele", "megan", "alex", "diego", "grady", "henrietta", "isaiah", "johanna"}
	assertions := map[string]string{}
	for _, u := range users {
		assertions[u] = mustMint(t, e, u, MintOptions{})
	}
	const workers, perWorker = 50, 24
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			u := users[w%len(users)]
			rt := ""
			for i := 0; i < perWorker; i++ {
				var res result
				switch i % 6 {
				case 0, 1:
					res = postForm(e, v2Token, oboForm(assertions[u], "https://graph.microsoft.com/User.Read offline_access"))
					if rt == "" {
						rt = str(res.body["refresh_token"])
					}
				case 2:
					if rt == "" {
						continue
					}
					res = postForm(e, v2Token, refreshForm(rt, "User.Read"))
					rt = str(res.body["refresh_token"])
				case 3:
					res = get(e, "/"+DefaultTenantID+"/v2.0/.well-known/openid-configuration")
				case 4:
					res = postForm(e, v2Token, ccForm(GraphURI+"/.default"))
				case 5:
					if w%10 == 0 {
						e.SetFault(u, Fault{Kind: FaultBlockedByCA, Count: 1})
					}
					_ = e.Counters()
					_ = e.Faults()
					res = get(e, "/_emulator/counters")
				}
				if res.status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	c := e.Counters()
	if c.TokenRequests+c.Discovery == 0 || ok.Load() == 0 {
		t.Fatalf("nothing happened: %+v", c)
	}
	// Only the injected one-shot faults may fail.
	if failed.Load() > int64(c.Faults) {
		t.Errorf("%d failures, only %d injected faults", failed.Load(), c.Faults)
	}
	if c.ByGrant[GrantOBO] != workers*perWorker/3 {
		t.Errorf("OBO count %d, want %d", c.ByGrant[GrantOBO], workers*perWorker/3)
	}
}
