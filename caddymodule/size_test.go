package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestSizeJSON(t *testing.T) {
	t.Setenv("TI_TEST_SIZE", "1GiB")
	runValueCases(t, []valueCase[int64]{ // the default is 100
		{json: `1048576`, want: 1 << 20},
		{json: `"192MiB"`, want: 192 << 20},
		{json: `"1GB"`, want: 1_000_000_000},
		{json: `"{env.TI_TEST_SIZE}"`, want: 1 << 30},
		{json: `"{env.TI_TEST_UNSET}"`, want: 100},
		{json: `0`, want: 100},
		{json: `-3`, wantErr: `s: "-3" is not a positive size`},
		{json: `"0MiB"`, wantErr: `s: "0MiB" is not a positive size`},
		{json: `"lots"`, wantErr: `s: "lots" is not a positive size`},
		{json: `1.5`, wantErr: "a size is a number of bytes"},
	}, func(s *Size) (int64, error) { return s.resolve(caddy.NewReplacer(), "s", 100) })
}
