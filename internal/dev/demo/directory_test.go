package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokeninjector/caddy-token-injector/internal/dev/entraemu"
)

const directoryCaddyfile = `entra_emulator {
	base_url https://localhost:9443
	app 11111111-2222-4333-8444-555555555555 {
		name my-spa
		redirect_uri spa http://localhost/app/ https://addin.example/redirect.html
		redirect_uri web https://addin.example/.auth/callback
		api_permission api://addin.example/5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c access_as_user
	}
	app 5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c {
		name my-api
		secret s3cret
		identifier_uri api://addin.example/5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c
		scope access_as_user
		api_permission https://graph.microsoft.com User.Read Mail.Read
		known_client 11111111-2222-4333-8444-555555555555
	}
	user zoe {
		name Zoe Example
	}
}`

func TestConfiguredAppsAndUsersAreListed(t *testing.T) {
	m := new(Emulator)
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(directoryCaddyfile)); err != nil {
		t.Fatal(err)
	}
	cfg, err := tenantConfig(m.Apps, m.Users)
	if err != nil {
		t.Fatal(err)
	}
	emu, err := entraemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var apps struct{ Apps []entraemu.AppInfo }
	getJSON(t, emu, "/_emulator/apps", &apps)
	byID := map[string]entraemu.AppInfo{}
	for _, a := range apps.Apps {
		byID[a.ClientID] = a
	}
	spa, api := byID["11111111-2222-4333-8444-555555555555"], byID[entraemu.DefaultAddinClientID]
	wantURIs := []entraemu.RedirectURIInfo{{Type: entraemu.RedirectWeb, URI: "https://addin.example/.auth/callback"},
		{Type: entraemu.RedirectSPA, URI: "http://localhost/app/"}, {Type: entraemu.RedirectSPA, URI: "https://addin.example/redirect.html"}}
	if spa.Name != "my-spa" || !spa.PublicClient || len(spa.RedirectURIs) != 3 || spa.RedirectURIs[0] != wantURIs[0] ||
		spa.RedirectURIs[1] != wantURIs[1] || spa.RedirectURIs[2] != wantURIs[2] {
		t.Errorf("configured spa app = %+v", spa)
	}
	// The add-in API was replaced by the configured one, which has a secret (never listed) and a known client.
	if api.Name != "my-api" || api.PublicClient || len(api.KnownClientApplications) != 1 || len(api.RedirectURIs) != 0 {
		t.Errorf("replaced add-in API = %+v", api)
	}
	if _, ok := byID[entraemu.DefaultSPAClientID]; !ok {
		t.Error("the default tenant's apps are kept beside the configured ones")
	}
	raw := getRaw(t, emu, "/_emulator/apps")
	if strings.Contains(raw, "s3cret") || strings.Contains(raw, entraemu.DefaultAddinSecret) {
		t.Error("the control API lists a client secret")
	}
	var users struct{ Users []entraemu.UserInfo }
	getJSON(t, emu, "/_emulator/users", &users)
	last := users.Users[len(users.Users)-1]
	if len(users.Users) != 17 || last.Key != "zoe" || last.Name != "Zoe Example" ||
		last.UPN != "zoe@contoso.onmicrosoft.com" || len(last.ObjectID) != 36 {
		t.Errorf("users: %d, last %+v", len(users.Users), last)
	}
	if directoryKey(m.Apps, m.Users) == emulatorKey || directoryKey(nil, nil) != emulatorKey {
		t.Error("a configured directory must get its own emulator, the default one the shared key")
	}
}

func TestDirectoryCaddyfileErrors(t *testing.T) {
	block := func(kind, name, line string) string {
		return "entra_emulator {\n" + kind + " " + name + " {\n" + line + "\n}\n}"
	}
	const id = "11111111-2222-4333-8444-555555555555"
	for _, tc := range []struct{ in, want string }{
		{block("app", id, "redirect_uri native http://localhost"), "must be spa or web"},
		{block("app", id, "redirect_uri spa"), "needs 2 argument"},
		{block("app", id, "colour blue"), `unknown subdirective "colour"`},
		{block("app", id, "access_token_version 3"), "want 1 or 2"},
		{block("user", "zoe", "shoe 42"), `unknown subdirective "shoe"`},
	} {
		err := new(Emulator).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := tenantConfig([]AppConfig{{ClientID: "not-a-guid"}}, nil); err == nil || !strings.Contains(err.Error(), "GUID") {
		t.Errorf("non-GUID client id: %v", err)
	}
}

func getRaw(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func getJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getRaw(t, h, path)), v); err != nil {
		t.Fatal(err)
	}
}
