package entraemu

import (
	"net/http"
	"slices"
	"strings"
)

// The control API's view of the directory: GET /_emulator/apps and /_emulator/users list the registrations and
// users as JSON, so a test or a human can see which client ids and redirect URIs a configuration produced.
// Secrets are never listed, only whether an app has one.

// AppInfo is an app registration as the control API lists it.
type AppInfo struct {
	ClientID                string              `json:"client_id"`
	Name                    string              `json:"name,omitempty"`
	PublicClient            bool                `json:"public_client"`
	RedirectURIs            []RedirectURIInfo   `json:"redirect_uris"`
	IdentifierURIs          []string            `json:"identifier_uris,omitempty"`
	ExposedScopes           []string            `json:"exposed_scopes,omitempty"`
	RequiredPermissions     map[string][]string `json:"required_permissions,omitempty"`
	PreConsented            bool                `json:"pre_consented"`
	KnownClientApplications []string            `json:"known_client_applications,omitempty"`
}

// RedirectURIInfo is one registered redirect URI and its platform.
type RedirectURIInfo struct {
	Type RedirectType `json:"type"`
	URI  string       `json:"uri"`
}

// UserInfo is a user as the control API lists it.
type UserInfo struct {
	Key      string `json:"key"`
	ObjectID string `json:"object_id"`
	UPN      string `json:"upn"`
	Name     string `json:"name,omitempty"`
}

// Apps lists the app registrations in configuration order.
func (e *Emulator) Apps() []AppInfo {
	out := make([]AppInfo, 0, len(e.cfg.Apps))
	for i := range e.cfg.Apps {
		a := &e.cfg.Apps[i]
		info := AppInfo{ClientID: a.ClientID, Name: a.Name, PublicClient: !e.confidential(a),
			RedirectURIs:   []RedirectURIInfo{},
			IdentifierURIs: slices.Clone(a.IdentifierURIs), ExposedScopes: slices.Clone(a.ExposedScopes),
			RequiredPermissions: cloneListMap(a.RequiredPermissions), PreConsented: a.PreConsented,
			KnownClientApplications: slices.Clone(a.KnownClientApplications)}
		for _, u := range a.RedirectURIs {
			info.RedirectURIs = append(info.RedirectURIs, RedirectURIInfo{RedirectWeb, u})
		}
		for _, u := range a.SPARedirectURIs {
			info.RedirectURIs = append(info.RedirectURIs, RedirectURIInfo{RedirectSPA, u})
		}
		out = append(out, info)
	}
	return out
}

// Users lists the directory's users in configuration order.
func (e *Emulator) Users() []UserInfo {
	out := make([]UserInfo, 0, len(e.cfg.Users))
	for _, u := range e.cfg.Users {
		out = append(out, UserInfo{Key: u.Key, ObjectID: strings.ToLower(u.ObjectID), UPN: u.UPN, Name: u.Name})
	}
	return out
}

func (e *Emulator) handleListApps(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, map[string]any{"apps": e.Apps()})
}

func (e *Emulator) handleListUsers(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, map[string]any{"users": e.Users()})
}
