package entraemu

import "strings"

// Fixed identifiers of the demo tenant, so URLs, tokens and test fixtures are stable across runs.
const (
	DefaultTenantID     = "c0ffee00-7e57-4e1a-9d3c-0a1b2c3d4e5f"
	DefaultTenantDomain = "contoso.onmicrosoft.com"

	// DefaultAddinClientID is the "addin-api" app: the Office add-in's own web API (middle tier).
	DefaultAddinClientID = "5a1d0b3e-0f1c-4c7e-9a8b-2d3e4f5a6b7c"
	// DefaultAddinSecret is the addin-api client secret. It only works against this emulator.
	DefaultAddinSecret = "dev-secret-not-for-production"
	// DefaultSPAClientID is the "addin-spa" app: a public client (no secret) with spa redirect URIs, for MSAL.js in
	// the demo page and the Office add-in (NAA). It asks for the add-in API's access_as_user; the add-in API lists
	// it in KnownClientApplications, so consenting to it consents the API's downstream permissions too.
	DefaultSPAClientID = "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
	// DefaultDownstreamAppID is the "downstream-api" resource (api://downstream).
	DefaultDownstreamAppID = "d0e1f2a3-b4c5-4d6e-8f70-8192a3b4c5d6"
	// DefaultDownstreamURI is the downstream API's identifier URI.
	DefaultDownstreamURI = "api://downstream"

	// GraphAppID and GraphURI identify Microsoft Graph, as in every real tenant.
	GraphAppID = "00000003-0000-0000-c000-000000000000"
	GraphURI   = "https://graph.microsoft.com"
)

// DefaultAddinIdentifierURI is the add-in API's App ID URI (the audience of Office SSO tokens).
const DefaultAddinIdentifierURI = "api://localhost/" + DefaultAddinClientID

// DefaultConfig returns a demo tenant: fixed tenant GUID, contoso.onmicrosoft.com, 16 users with
// fixed object ids, Microsoft Graph, the pre-consented "addin-api" app, its public client "addin-spa"
// and the "downstream-api".
func DefaultConfig() Config {
	return Config{
		TenantID:     DefaultTenantID,
		TenantDomain: DefaultTenantDomain,
		TenantName:   "Contoso",
		Users:        defaultUsers(),
		Apps: []App{{
			ClientID:       DefaultAddinClientID,
			Secret:         DefaultAddinSecret,
			Name:           "addin-api",
			IdentifierURIs: []string{DefaultAddinIdentifierURI},
			ExposedScopes:  []string{"access_as_user"},
			RedirectURIs: []string{
				"https://localhost:3000/taskpane.html",
				"https://localhost:3000/auth/callback",
				"https://localhost:8443/auth/callback",
				"http://localhost:8080/.auth/callback", // the repository's demo Caddyfile
				"http://localhost/callback",
				"brk-multihub://localhost:3000",
			},
			AccessTokenVersion: 1,
			RequiredPermissions: map[string][]string{
				GraphURI:             {"User.Read", "Mail.Read"},
				DefaultDownstreamURI: {"Data.Read"},
			},
			PreConsented: true,
			ApplicationPermissions: map[string][]string{
				GraphURI:             {"User.Read.All"},
				DefaultDownstreamURI: {"Data.Read.All"},
			},
			KnownClientApplications: []string{DefaultSPAClientID},
		}, {
			ClientID: DefaultSPAClientID,
			Name:     "addin-spa",
			// Loopback URIs match on any port (platforms.go), so these serve the demo and tests on any port.
			SPARedirectURIs: []string{
				"http://localhost/",
				"http://localhost/redirect.html",
				"http://localhost/addin/taskpane.html",
				"http://localhost/addin/redirect.html",
				"https://localhost/addin/taskpane.html",
				"https://localhost/addin/redirect.html",
				"http://127.0.0.1/redirect.html",
				"brk-multihub://localhost",
			},
			RequiredPermissions: map[string][]string{DefaultAddinIdentifierURI: {"access_as_user"}},
		}},
		Resources: []Resource{
			{
				AppID:          GraphAppID,
				IdentifierURIs: []string{GraphURI},
				Name:           "Microsoft Graph",
				Scopes: []Scope{
					{Value: "User.Read"}, {Value: "User.ReadBasic.All"}, {Value: "Mail.Read"},
					{Value: "Mail.ReadWrite"}, {Value: "Mail.Send"}, {Value: "Calendars.Read"},
					{Value: "Calendars.ReadWrite"}, {Value: "Contacts.Read"}, {Value: "Files.Read"},
					{Value: "Files.ReadWrite"}, {Value: "Files.Read.All"}, {Value: "Sites.Read.All"},
					{Value: "People.Read"}, {Value: "Tasks.ReadWrite"},
					{Value: "User.Read.All", AdminConsentOnly: true},
					{Value: "Directory.Read.All", AdminConsentOnly: true},
				},
				AppRoles:           []string{"User.Read.All", "Mail.Read", "Calendars.Read", "Files.Read.All"},
				AccessTokenVersion: 1,
			},
			{
				AppID:              DefaultDownstreamAppID,
				IdentifierURIs:     []string{DefaultDownstreamURI},
				Name:               "downstream-api",
				Scopes:             []Scope{{Value: "Data.Read"}, {Value: "Data.Write"}},
				AppRoles:           []string{"Data.Read.All"},
				AccessTokenVersion: 2,
			},
		},
	}
}

func defaultUsers() []User {
	people := []struct{ key, first, last, oid string }{
		{"adele", "Adele", "Vance", "8d0c4f6a-1b2e-4c3d-9e8f-000000000001"},
		{"megan", "Megan", "Bowen", "8d0c4f6a-1b2e-4c3d-9e8f-000000000002"},
		{"alex", "Alex", "Wilber", "8d0c4f6a-1b2e-4c3d-9e8f-000000000003"},
		{"diego", "Diego", "Siciliani", "8d0c4f6a-1b2e-4c3d-9e8f-000000000004"},
		{"grady", "Grady", "Archie", "8d0c4f6a-1b2e-4c3d-9e8f-000000000005"},
		{"henrietta", "Henrietta", "Mueller", "8d0c4f6a-1b2e-4c3d-9e8f-000000000006"},
		{"isaiah", "Isaiah", "Langer", "8d0c4f6a-1b2e-4c3d-9e8f-000000000007"},
		{"johanna", "Johanna", "Lorenz", "8d0c4f6a-1b2e-4c3d-9e8f-000000000008"},
		{"joni", "Joni", "Sherman", "8d0c4f6a-1b2e-4c3d-9e8f-000000000009"},
		{"lee", "Lee", "Gu", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000a"},
		{"lidia", "Lidia", "Holloway", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000b"},
		{"lynne", "Lynne", "Robbins", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000c"},
		{"miriam", "Miriam", "Graham", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000d"},
		{"nestor", "Nestor", "Wilke", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000e"},
		{"patti", "Patti", "Fernandez", "8d0c4f6a-1b2e-4c3d-9e8f-00000000000f"},
		{"pradeep", "Pradeep", "Gupta", "8d0c4f6a-1b2e-4c3d-9e8f-000000000010"},
	}
	users := make([]User, 0, len(people))
	for _, p := range people {
		users = append(users, User{
			Key:      p.key,
			ObjectID: p.oid,
			// Microsoft's demo tenants name accounts FirstL@domain.
			UPN:  p.first + strings.ToUpper(p.last[:1]) + "@" + DefaultTenantDomain,
			Name: p.first + " " + p.last,
		})
	}
	return users
}
