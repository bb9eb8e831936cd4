package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
	"github.com/tokeninjector/caddy-token-injector/internal/identity"
)

// AppConfig is an app registration the Caddyfile adds to the demo tenant (or replaces, by client id).
type AppConfig struct {
	// ClientID is the application (client) id, a GUID. Required.
	ClientID string `json:"client_id"`
	// Name is the display name the sign-in pages show. Default: the client id.
	Name string `json:"name,omitempty"`
	// Secret is the client secret; without one the app is a public client. Default: none.
	Secret string `json:"secret,omitempty"`
	// RedirectURIs are the registered reply URLs, each of the spa or web platform. Default: none.
	RedirectURIs []RedirectURIConfig `json:"redirect_uris,omitempty"`
	// IdentifierURIs are the App ID URIs of the app's own API (api://host/<client id>). Default: none.
	IdentifierURIs []string `json:"identifier_uris,omitempty"`
	// Scopes are the delegated permissions the app's API exposes (access_as_user). Default: none.
	Scopes []string `json:"scopes,omitempty"`
	// APIPermissions are the delegated permissions the app needs, by resource (what <resource>/.default means).
	// Default: none.
	APIPermissions map[string][]string `json:"api_permissions,omitempty"`
	// PreConsented says an admin consented APIPermissions for every user. Default: false.
	PreConsented bool `json:"pre_consented,omitempty"`
	// KnownClientApplications are the client ids whose consent to this app's API also consents APIPermissions.
	// Default: none.
	KnownClientApplications []string `json:"known_client_applications,omitempty"`
	// AccessTokenVersion is the version (1 or 2) of tokens issued for the app's API. Default: 1.
	AccessTokenVersion int `json:"access_token_version,omitempty"`
}

// RedirectURIConfig is one redirect URI and its platform.
type RedirectURIConfig struct {
	// Type is spa or web.
	Type string `json:"type"`
	// URI is the reply URL; a loopback URI matches whatever its port.
	URI string `json:"uri"`
}

// UserConfig is a user the Caddyfile adds to the demo tenant (or replaces, by key).
type UserConfig struct {
	// Key is the short login name of the picker and the control API. Required.
	Key string `json:"key"`
	// Name is the display name. Default: the key.
	Name string `json:"name,omitempty"`
	// UPN is the user principal name. Default: <key>@contoso.onmicrosoft.com.
	UPN string `json:"upn,omitempty"`
	// ObjectID is the oid, a GUID. Default: one derived from the key, stable across runs.
	ObjectID string `json:"object_id,omitempty"`
}

// tenantConfig is the demo tenant with the configured apps and users applied.
func tenantConfig(apps []AppConfig, users []UserConfig) (entraemu.Config, error) {
	cfg := entraemu.DefaultConfig()
	cfg.SigningKey = processSigningKey()
	for _, ac := range apps {
		a, err := ac.app()
		if err != nil {
			return cfg, err
		}
		replaced := false
		for i := range cfg.Apps {
			if strings.EqualFold(cfg.Apps[i].ClientID, a.ClientID) {
				cfg.Apps[i], replaced = a, true
			}
		}
		if !replaced {
			cfg.Apps = append(cfg.Apps, a)
		}
	}
	for _, uc := range users {
		u := uc.user()
		replaced := false
		for i := range cfg.Users {
			if strings.EqualFold(cfg.Users[i].Key, u.Key) {
				cfg.Users[i], replaced = u, true
			}
		}
		if !replaced {
			cfg.Users = append(cfg.Users, u)
		}
	}
	return cfg, nil
}

func (ac AppConfig) app() (entraemu.App, error) {
	a := entraemu.App{ClientID: ac.ClientID, Name: ac.Name, Secret: ac.Secret, IdentifierURIs: ac.IdentifierURIs,
		ExposedScopes: ac.Scopes, RequiredPermissions: ac.APIPermissions, PreConsented: ac.PreConsented,
		KnownClientApplications: ac.KnownClientApplications, AccessTokenVersion: ac.AccessTokenVersion}
	if !identity.IsGUID(ac.ClientID) {
		return a, fmt.Errorf("entra_emulator: app %q: the client id must be a GUID", ac.ClientID)
	}
	for _, r := range ac.RedirectURIs {
		switch r.Type {
		case "web":
			a.RedirectURIs = append(a.RedirectURIs, r.URI)
		case "spa":
			a.SPARedirectURIs = append(a.SPARedirectURIs, r.URI)
		default:
			return a, fmt.Errorf("entra_emulator: app %s: redirect_uri type %q is not spa or web", ac.ClientID, r.Type)
		}
	}
	return a, nil
}

func (uc UserConfig) user() entraemu.User {
	u := entraemu.User{Key: uc.Key, Name: uc.Name, UPN: uc.UPN, ObjectID: uc.ObjectID}
	if u.Name == "" {
		u.Name = uc.Key
	}
	if u.UPN == "" {
		u.UPN = uc.Key + "@" + entraemu.DefaultTenantDomain
	}
	if u.ObjectID == "" {
		sum := sha256.Sum256([]byte("entra_emulator user " + strings.ToLower(uc.Key)))
		h := hex.EncodeToString(sum[:16])
		u.ObjectID = h[0:8] + "-" + h[8:12] + "-5" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
	}
	return u
}

// directoryKey names the emulator of a directory in the usage pool: handlers declaring the same apps and users
// share one emulator (its refresh tokens, sessions and faults), whatever site they serve.
func directoryKey(apps []AppConfig, users []UserConfig) string {
	if len(apps) == 0 && len(users) == 0 {
		return emulatorKey
	}
	raw, _ := json.Marshal(struct {
		A []AppConfig
		U []UserConfig
	}{apps, users})
	sum := sha256.Sum256(raw)
	return emulatorKey + ":" + hex.EncodeToString(sum[:8])
}

// processSigningKey is one RSA key for every emulator of the process, so that a token one of them minted verifies
// at another (the stub API checks tokens with whichever it holds).
var processSigningKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// unmarshalApp reads `app <client id> { ... }`.
func unmarshalApp(d *caddyfile.Dispenser) (AppConfig, error) {
	var a AppConfig
	if !d.NextArg() {
		return a, d.ArgErr()
	}
	a.ClientID = d.Val()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		args := d.RemainingArgs()
		need := func(n int) error {
			if len(args) < n {
				return d.Errf("entra_emulator: app %s: %s needs %d argument(s)", a.ClientID, sub, n)
			}
			return nil
		}
		var err error
		switch sub {
		case "name", "secret":
			if err = need(1); err == nil {
				*map[string]*string{"name": &a.Name, "secret": &a.Secret}[sub] = strings.Join(args, " ")
			}
		case "redirect_uri":
			if err = need(2); err == nil {
				for _, u := range args[1:] {
					a.RedirectURIs = append(a.RedirectURIs, RedirectURIConfig{Type: args[0], URI: u})
				}
				if args[0] != "spa" && args[0] != "web" {
					err = d.Errf("entra_emulator: app %s: redirect_uri %q: the platform must be spa or web", a.ClientID, args[0])
				}
			}
		case "identifier_uri":
			if err = need(1); err == nil {
				a.IdentifierURIs = append(a.IdentifierURIs, args...)
			}
		case "scope":
			if err = need(1); err == nil {
				a.Scopes = append(a.Scopes, args...)
			}
		case "api_permission":
			if err = need(2); err == nil {
				if a.APIPermissions == nil {
					a.APIPermissions = map[string][]string{}
				}
				a.APIPermissions[args[0]] = append(a.APIPermissions[args[0]], args[1:]...)
			}
		case "known_client":
			if err = need(1); err == nil {
				a.KnownClientApplications = append(a.KnownClientApplications, args...)
			}
		case "pre_consented":
			a.PreConsented = true
		case "access_token_version":
			if err = need(1); err == nil {
				if a.AccessTokenVersion, err = strconv.Atoi(args[0]); err != nil || (a.AccessTokenVersion != 1 && a.AccessTokenVersion != 2) {
					err = d.Errf("entra_emulator: app %s: access_token_version %q: want 1 or 2", a.ClientID, args[0])
				}
			}
		default:
			err = d.Errf("entra_emulator: app %s: unknown subdirective %q", a.ClientID, sub)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

// unmarshalUser reads `user <key> { ... }`.
func unmarshalUser(d *caddyfile.Dispenser) (UserConfig, error) {
	var u UserConfig
	if !d.NextArg() {
		return u, d.ArgErr()
	}
	u.Key = d.Val()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return u, d.Errf("entra_emulator: user %s: %s needs a value", u.Key, sub)
		}
		switch sub {
		case "name":
			u.Name = strings.Join(args, " ")
		case "upn":
			u.UPN = args[0]
		case "object_id":
			u.ObjectID = args[0]
		default:
			return u, d.Errf("entra_emulator: user %s: unknown subdirective %q", u.Key, sub)
		}
	}
	return u, nil
}
