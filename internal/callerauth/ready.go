package callerauth

import "context"

// KeysReady reports whether the validator holds the tenant's signing keys, fetching them as a first validation
// would when it holds none (at most one fetch at a time, rate-limited after a failure). A readiness probe uses
// it: without keys no caller can be proven.
func (v *Validator) KeysReady(ctx context.Context) error {
	_, err := v.keys.current(ctx, v.now())
	return err
}
