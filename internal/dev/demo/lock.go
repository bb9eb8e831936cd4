package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// One demo per port: Caddy's listeners use SO_REUSEPORT, so a second `caddy run` of the demo would share its
// ports with the first and the two emulators (each with its own keys) would answer in turn. The emulator takes an
// exclusive lock per port for the life of the process; a reload in the same process finds it held already.

var (
	locksMu sync.Mutex
	locks   = map[string]*os.File{} // lock file path -> the open, locked file (never closed: held until exit)
)

// errDemoRunning names the port and the lock file of the demo that holds them.
type errDemoRunning struct{ port, path string }

func (e errDemoRunning) Error() string {
	return fmt.Sprintf("entra_emulator: a demo is already running on port %s (another process holds %s): stop it first", e.port, e.path)
}

// lockPort takes the demo's lock for port in dir (os.TempDir() in the module).
func lockPort(dir, port string) error {
	path := filepath.Join(dir, "caddy-token-injector-demo-"+port+".lock")
	locksMu.Lock()
	defer locksMu.Unlock()
	if _, held := locks[path]; held {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("entra_emulator: opening the demo's lock file: %w", err)
	}
	ok, err := tryLock(f)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return fmt.Errorf("entra_emulator: locking %s: %w", path, err)
		}
		return errDemoRunning{port: port, path: path}
	}
	locks[path] = f
	return nil
}
