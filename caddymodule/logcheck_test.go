package caddymodule_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The log check that TestMain runs after every test: no credential any test saw may be in Caddy's logs, at any
// level, and logs that hold nothing prove nothing.

// checkLogs fails when the logs hold a credential, and when they are empty: a check of nothing proves nothing.
func checkLogs() error {
	for _, p := range []string{env.logPath, env.accessPath} {
		if b, err := os.ReadFile(p); err != nil || len(b) == 0 {
			return fmt.Errorf("the log check has nothing to read in %s (%v)", filepath.Base(p), err)
		}
	}
	if !strings.Contains(readLogs(), `"logger":"http.log.access`) {
		return errors.New("the log check found no access log entry")
	}
	if leaks := secretsInLogs(); len(leaks) > 0 {
		return fmt.Errorf("the logs contain credentials: %s", strings.Join(leaks, "; "))
	}
	return nil
}

// secretsInLogs returns a description of every credential found in Caddy's logs: the client secret, any caller
// token, any downstream token the upstream received.
func secretsInLogs() []string {
	var logs []byte
	env.mu.Lock()
	paths := append([]string{env.logPath, env.accessPath}, env.extraLogs...)
	env.mu.Unlock()
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		logs = append(logs, b...)
	}
	text := string(logs)
	var leaks []string
	check := func(kind, secret string) {
		if len(secret) > 20 && strings.Contains(text, secret) {
			i := strings.Index(text, secret)
			leaks = append(leaks, kind+" in: "+text[max(0, i-300):i])
		}
		// A JWT's signature alone is a credential fragment worth catching too.
		if i := strings.LastIndexByte(secret, '.'); i > 0 && len(secret)-i > 20 && strings.Contains(text, secret[i+1:]) {
			leaks = append(leaks, kind+" signature")
		}
	}
	check("client secret", env.secret)
	env.mu.Lock()
	for _, tok := range env.minted {
		check("caller token", tok)
	}
	for _, c := range env.credentials {
		check("authorization code or cookie", c)
	}
	env.mu.Unlock()
	for _, h := range env.Upstream.Seen() {
		check("downstream token", strings.TrimPrefix(h.Get("Authorization"), "Bearer "))
	}
	return leaks
}

// readLogs returns Caddy's log and the access log as one text.
// caddyLog is Caddy's own log alone. An offset into it stays an offset into it, where one into readLogs (which
// appends the access log) would land past what Caddy wrote since.
func caddyLog() string {
	data, _ := os.ReadFile(env.logPath)
	return string(data)
}

func readLogs() string {
	var b []byte
	for _, p := range []string{env.logPath, env.accessPath} {
		data, _ := os.ReadFile(p)
		b = append(b, data...)
	}
	return string(b)
}
