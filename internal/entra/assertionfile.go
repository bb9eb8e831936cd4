package entra

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// maxAssertionBytes bounds a federated token file: a Kubernetes service-account token is about 1 KB.
const maxAssertionBytes = 64 << 10

// assertionFile is a federated token file (AKS workload identity's $AZURE_FEDERATED_TOKEN_FILE). Kubelet rotates
// it by pointing the ..data symlink at a new directory, so the file's identity is checked before every use (a
// stat) and the file re-read when it changed: a rotated token is used by the next request.
type assertionFile struct {
	path string

	mu   sync.Mutex
	info os.FileInfo // of the file read last
	jwt  string
}

// newAssertionFile checks that the file can be read and holds a JWT: a missing file is a load error.
func newAssertionFile(path string) (*assertionFile, error) {
	f := &assertionFile{path: path}
	if _, err := f.read(); err != nil {
		return nil, fmt.Errorf("client_assertion_file: %w", err)
	}
	return f, nil
}

// assertion is MSAL's assertion callback, called for each token request and from any goroutine.
func (f *assertionFile) assertion(context.Context, confidential.AssertionRequestOptions) (string, error) {
	jwt, err := f.read()
	if err != nil {
		return "", &MisconfiguredError{Op: "reading the client assertion", Host: "client_assertion_file", Err: err,
			Fix: "the federated token file must stay readable: check client_assertion_file (default $AZURE_FEDERATED_TOKEN_FILE) and the projected service account token volume"}
	}
	return jwt, nil
}

// read returns the file's token, reading the file again only when its identity (inode, size, time) changed.
func (f *assertionFile) read() (string, error) {
	info, err := os.Stat(f.path) // follows the symlinks, so a swapped ..data is a different file
	if err != nil {
		return "", pathError(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.info != nil && os.SameFile(info, f.info) && info.Size() == f.info.Size() && info.ModTime().Equal(f.info.ModTime()) {
		return f.jwt, nil
	}
	b, err := readBounded(f.path, maxAssertionBytes)
	if err != nil {
		return "", err
	}
	jwt := strings.TrimSpace(string(b))
	if strings.Count(jwt, ".") != 2 || strings.ContainsAny(jwt, " \t\r\n") {
		return "", fmt.Errorf("%s does not hold a JWT (a federated token)", f.path)
	}
	f.info, f.jwt = info, jwt
	return jwt, nil
}
