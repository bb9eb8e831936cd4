package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Duration is a length of time in the config: a string in Caddy's duration syntax ("10s", "1h30m", "1d"), a
// placeholder that resolves to one ("{env.TIMEOUT}"), or, as caddy.Duration takes it, a number of nanoseconds.
// It keeps the text as written, so a placeholder survives adaptation and resolves when the config is provisioned.
// Empty, or 0, means the field's default.
type Duration string

// Number is a count in the config: a JSON number, a string of digits, or a placeholder that resolves to one
// ("{env.CACHE_MAX_ENTRIES}"). It keeps the text as written, like Duration. Empty, or 0, means the field's default.
type Number string

// UnmarshalJSON takes a JSON string as written or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	return unmarshalValue(b, (*string)(d), `a duration is a string such as "10s" or a number of nanoseconds`)
}

// MarshalJSON writes a number of nanoseconds as a number and anything else as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return integerOrString(string(d)) }

// UnmarshalJSON takes a JSON number or string.
func (n *Number) UnmarshalJSON(b []byte) error {
	return unmarshalValue(b, (*string)(n), `a number is an integer or a string such as "{env.N}"`)
}

// unmarshalValue keeps a JSON string as written, or an integer's digits; what says what was expected otherwise.
func unmarshalValue(b []byte, dst *string, what string) error {
	s, err := stringOrInteger(b)
	if err != nil {
		return fmt.Errorf("%s, not %s", what, b)
	}
	*dst = s
	return nil
}

// MarshalJSON writes digits as a number and anything else (a placeholder) as a string.
func (n Number) MarshalJSON() ([]byte, error) { return integerOrString(string(n)) }

// stringOrInteger returns a JSON string's value, an integer's digits, or "" for null.
func stringOrInteger(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return "", nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var i int64
	if err := json.Unmarshal(b, &i); err != nil {
		return "", err
	}
	return strconv.FormatInt(i, 10), nil
}

// integerOrString writes s as a JSON number when it is an integer written canonically ("+5" and "007" are not
// JSON numbers), else as a string.
func integerOrString(s string) ([]byte, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(i, 10) == s {
		return []byte(s), nil
	}
	return json.Marshal(s)
}

// hasPlaceholder reports whether a config value holds a placeholder, to be resolved when the config is
// provisioned. Values without one are checked as soon as they are read (when a Caddyfile is adapted).
func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// resolve returns the duration, def when it is unset, 0 or resolves to nothing. field names it in errors.
func (d Duration) resolve(repl *caddy.Replacer, field string, def time.Duration) (time.Duration, error) {
	if n, err := strconv.ParseInt(string(d), 10, 64); err == nil { // nanoseconds, from a JSON number
		if n < 0 {
			return 0, fmt.Errorf("%s: %d is not a positive duration", field, n)
		}
		if n == 0 {
			return def, nil
		}
		return time.Duration(n), nil
	}
	s := resolveText(repl, string(d))
	if s == "" {
		return def, nil
	}
	return parseDuration(field, string(d), s)
}

// parseDuration parses s, which raw resolved to, as a positive duration.
func parseDuration(field, raw, s string) (time.Duration, error) {
	v, err := caddy.ParseDuration(s)
	switch {
	case err != nil:
		return 0, resolvedErr(field, raw, s, "a duration")
	case v <= 0:
		return 0, resolvedErr(field, raw, s, "a positive duration")
	}
	return v, nil
}

// resolve returns the number, def when it is unset, 0 or resolves to nothing. field names it in errors.
func (n Number) resolve(repl *caddy.Replacer, field string, def int) (int, error) {
	s := resolveText(repl, string(n))
	if s == "" || (s == "0" && s == string(n)) {
		return def, nil
	}
	return parseNumber(field, string(n), s)
}

// parseNumber parses s, which raw resolved to, as a positive number.
func parseNumber(field, raw, s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		return 0, resolvedErr(field, raw, s, "a positive number")
	}
	return v, nil
}

// resolveText replaces the known placeholders (env, system) of raw.
func resolveText(repl *caddy.Replacer, raw string) string {
	if !hasPlaceholder(raw) {
		return raw
	}
	return strings.TrimSpace(repl.ReplaceKnown(raw, ""))
}

// maxShownValue is the longest resolved value an error quotes: a duration or a count is short, and a long value
// is more likely a secret put in the wrong place.
const maxShownValue = 32

// resolvedErr says that raw, which resolved to s, is not what field wants.
func resolvedErr(field, raw, s, want string) error {
	switch {
	case raw == s:
		return fmt.Errorf("%s: %q is not %s", field, raw, want)
	case len(s) > maxShownValue:
		return fmt.Errorf("%s: %q resolved to a value of %d characters, which is not %s", field, raw, len(s), want)
	}
	return fmt.Errorf("%s: %q resolved to %q, which is not %s", field, raw, s, want)
}
