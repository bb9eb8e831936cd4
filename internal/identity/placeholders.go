package identity

// Placeholders looks up a user's values by placeholder name, as a Caddy replacer provider does:
// http.auth.user.id and http.auth.user.oid (the object id), .tid, .upn and .name. It is built once per proven
// caller or session (NewPlaceholders), with its values already boxed, so that naming the user on a request
// allocates nothing.
type Placeholders func(key string) (any, bool)

// NewPlaceholders returns u's placeholder lookup.
func NewPlaceholders(u User) Placeholders {
	oid, tid, upn, name := any(u.ObjectID), any(u.TenantID), any(u.Username), any(u.Name)
	return func(key string) (any, bool) {
		switch key {
		case "http.auth.user.id", "http.auth.user.oid":
			return oid, true
		case "http.auth.user.tid":
			return tid, true
		case "http.auth.user.upn":
			return upn, true
		case "http.auth.user.name":
			return name, true
		}
		return nil, false
	}
}
