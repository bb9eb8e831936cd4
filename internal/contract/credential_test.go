package contract

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/tokeninjector/caddy-token-injector/internal/entra"
)

// A credential Entra refuses is the operator's to fix: 502 server_error (never interaction_required, whatever the
// OAuth error says), logged once at error level with the AADSTS code and the setting to change.
func TestCredentialFailuresAreServerErrorsNamingTheFix(t *testing.T) {
	tests := []struct {
		name, oauth string
		code        int
		fix         string
	}{
		{"certificate not registered", "invalid_client", 700027, "upload client_certificate's certificate"},
		{"assertion expired", "invalid_client", 700024, "federated token file"},
		{"no matching federated credential", "invalid_request", 70021, "federated credential"},
		{"federated issuer unknown", "invalid_client", 700211, "issuer"},
		{"malformed assertion", "invalid_request", 50027, "client_assertion_file"},
		{"no credential sent", "invalid_client", 7000218, "client_certificate"},
		{"invalid_client without a known code", "invalid_client", 9999999, "client_assertion_file or managed_identity"},
		{"assertion expired, reported as invalid_grant", "invalid_grant", 700024, "federated token file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(entra.ParseError(401, nil, entraBody(tt.oauth, []int{tt.code}, "", "")), []string{"a/.default"})
			if p.Status != http.StatusBadGateway || p.Code != CodeServerError {
				t.Fatalf("got %d %s, want 502 server_error", p.Status, p.Code)
			}
			if p.LogLevel != zapcore.ErrorLevel {
				t.Errorf("log level %v, want error", p.LogLevel)
			}
			for _, w := range []string{"AADSTS" + strconv.Itoa(tt.code), tt.fix} {
				if !strings.Contains(p.LogMessage, w) {
					t.Errorf("the log message lacks %q: %s", w, p.LogMessage)
				}
			}
		})
	}
}

// A credential the proxy itself cannot read (a vanished token file) is a server error too, with its fix.
func TestUnreadableCredentialIsAServerError(t *testing.T) {
	err := &entra.MisconfiguredError{Op: "reading the client assertion", Host: "client_assertion_file",
		Err: errors.New("stat /var/run/token: no such file"), Fix: "check client_assertion_file"}
	p := Decide(err, nil)
	if p.Status != http.StatusBadGateway || p.Code != CodeServerError || !strings.Contains(p.LogMessage, "check client_assertion_file") {
		t.Fatalf("got %d %s %q", p.Status, p.Code, p.LogMessage)
	}
}
