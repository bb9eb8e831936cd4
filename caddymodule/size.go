package caddymodule

import (
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/dustin/go-humanize"
)

// Size is an amount of memory in the config: a number of bytes, a string with a unit ("192MiB", "1GB", as
// Caddy's request_body max_size takes it), or a placeholder that resolves to one. It keeps the text as written,
// like Number. Empty, or 0, means the field's default.
type Size string

// UnmarshalJSON takes a JSON number of bytes or a string.
func (s *Size) UnmarshalJSON(b []byte) error {
	return unmarshalValue(b, (*string)(s), `a size is a number of bytes or a string such as "192MiB"`)
}

// MarshalJSON writes a number of bytes as a number and anything else as a string.
func (s Size) MarshalJSON() ([]byte, error) { return integerOrString(string(s)) }

// resolve returns the size in bytes, def when it is unset, 0 or resolves to nothing. field names it in errors.
func (s Size) resolve(repl *caddy.Replacer, field string, def int64) (int64, error) {
	v := resolveText(repl, string(s))
	if v == "" || (v == "0" && v == string(s)) {
		return def, nil
	}
	return parseSize(field, string(s), v)
}

// parseSize parses v, which raw resolved to, as a positive size.
func parseSize(field, raw, v string) (int64, error) {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		n, err = humanize.ParseBytes(v)
	}
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, resolvedErr(field, raw, v, `a positive size such as "192MiB"`)
	}
	return int64(n), nil
}
