// Package clientkit embeds the browser client kit (client.js, client.d.ts: the npm package @tokeninjector/client
// whose sources live in this folder) and serves it, so the kit a proxy hands out always speaks that proxy's
// contract. The token_injector handler serves it at <sign-in path>/client.js (default /.auth/client.js).
package clientkit

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strings"
)

var (
	//go:embed client.js
	clientJS []byte
	//go:embed client.d.ts
	clientDTS []byte
)

// File is one file of the kit, ready to serve.
type File struct {
	Name, ContentType string
	Body              []byte
	ETag              string
}

// Files are what Serve answers, by name.
var Files = map[string]File{
	"client.js":   newFile("client.js", "text/javascript; charset=utf-8", clientJS),
	"client.d.ts": newFile("client.d.ts", "application/typescript; charset=utf-8", clientDTS),
}

func newFile(name, typ string, body []byte) File {
	sum := sha256.Sum256(body)
	return File{Name: name, ContentType: typ, Body: body, ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

// Serve answers GET and HEAD for base+"/client.js" and base+"/client.d.ts"; it reports false (and writes
// nothing) for any other request. The kit is revalidated on every use (no-cache with an ETag), so a proxy upgrade
// reaches pages at once.
func Serve(w http.ResponseWriter, r *http.Request, base string) bool {
	name, ok := strings.CutPrefix(r.URL.Path, base)
	if !ok || !strings.HasPrefix(name, "/") { // base+"/" would build a string on every request
		return false
	}
	name = name[1:]
	f, ok := Files[name]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.ETag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == f.ETag {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true
	}
	_, _ = w.Write(f.Body)
	return true
}
