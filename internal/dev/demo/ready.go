package demo

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// announced holds the ready URLs already announced: a reload must not print the line again.
var announced sync.Map

// announceWhenReady polls url until it answers (any HTTP status), then tells the user to open it. Caddy starts
// listening only after every module is provisioned, so the poll runs on its own goroutine.
func announceWhenReady(url string, log *zap.Logger) {
	if _, dup := announced.LoadOrStore(url, true); dup {
		return
	}
	go func() {
		client := &http.Client{Timeout: time.Second}
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			resp, err := client.Get(url)
			if err != nil {
				continue
			}
			resp.Body.Close()
			log.Info("demo ready", zap.String("open", url))
			fmt.Fprintf(os.Stderr, "\ndemo ready: open %s\n\n", url)
			return
		}
		log.Warn("demo site did not answer within 2 minutes", zap.String("url", url))
	}()
}
