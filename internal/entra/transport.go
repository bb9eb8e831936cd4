package entra

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// callFailed classifies a call that got no HTTP answer. A certificate that does not verify, or a host that does
// not exist, is the operator's to fix; everything else (refused, reset, timed out) may pass.
func callFailed(ctx context.Context, op, host string, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dns *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &hostname):
		return &MisconfiguredError{Op: op, Host: host, Err: err,
			Fix: "the server's certificate is not valid for this host: check authority_host"}
	case errors.As(err, &unknownCA), errors.As(err, &verify), errors.As(err, &invalid):
		return &MisconfiguredError{Op: op, Host: host, Err: err,
			Fix: "the server's TLS certificate does not verify: if a private CA issued it (the emulator's, a TLS-inspecting proxy's), trust that CA with tls_trust_pool"}
	case errors.As(err, &dns) && dns.IsNotFound:
		return &MisconfiguredError{Op: op, Host: host, Err: err, Fix: "the host does not exist: check authority_host"}
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &netErr) && netErr.Timeout()):
		return &UnavailableError{Op: op, Host: host, Timeout: true, Err: err}
	case errors.Is(err, ErrResponseTooLarge):
		return &UnexpectedError{Op: op, Host: host, Why: ErrResponseTooLarge.Error()}
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &UnavailableError{Op: op, Host: host, Err: err}
	}
	return &UnexpectedError{Op: op, Host: host}
}

// UnexpectedError is an answer the proxy could not use: one MSAL could not decode, one too large, a token of an
// impossible size or character set. Its text never includes the cause's own text, which may quote the answer's
// body, tokens and all.
type UnexpectedError struct {
	Op, Host string
	// Why says what was wrong, in words of the proxy's own (sizes, never contents). Default: unreadable.
	Why string
}

func (u *UnexpectedError) Error() string {
	why := u.Why
	if why == "" {
		why = "the identity provider's answer could not be read"
	}
	return u.Op + ": " + u.Host + ": " + why
}

// answerFailed classifies a non-2xx answer to a GET of a discovery or key document. 5xx and 429 pass; a 4xx
// (an unknown tenant's 400 AADSTS90002, a 404 for a mistyped host path) is the operator's to fix.
func answerFailed(op, host string, resp *http.Response, body []byte) error {
	e := ParseError(resp.StatusCode, resp.Header, body)
	if e.Transient() {
		return &UnavailableError{Op: op, Host: host, Err: e}
	}
	fix := "check authority_host and tenant"
	switch {
	case e.HasCode(90002):
		fix = "no such tenant in this cloud: check tenant (a tenant ID or verified domain) and authority_host"
	case resp.StatusCode == http.StatusNotFound:
		fix = "the document does not exist: check authority_host (it names the cloud's sign-in host only, without a path) and tenant"
	}
	return &MisconfiguredError{Op: op, Host: host, Err: fmt.Errorf("GET %s: %s", resp.Request.URL.Redacted(), e), Fix: fix}
}

// FetchDocument GETs the JSON document at u with hc, reading at most limit bytes, and returns its body. Failures
// are *UnavailableError or *MisconfiguredError; op names the call in them ("fetching signing keys").
func FetchDocument(ctx context.Context, hc *http.Client, op, u string, limit int64) ([]byte, error) {
	host := hostOf(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &MisconfiguredError{Op: op, Host: host, Err: err, Fix: "check authority_host"}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, callFailed(ctx, op, host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, callFailed(ctx, op, host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, answerFailed(op, host, resp, body)
	}
	if int64(len(body)) > limit {
		return nil, &MisconfiguredError{Op: op, Host: host, Err: fmt.Errorf("GET %s: larger than %d bytes", u, limit),
			Fix: "authority_host does not serve Entra's documents"}
	}
	return body, nil
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}
