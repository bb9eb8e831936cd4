package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a real redis-server on a free loopback port, its files in a temporary directory, for one test (or one
// package). Kill and Stop end it; Start brings it back at the same address, empty, as a restarted or replaced
// Redis would be, so outage tests can be written.
type Redis struct {
	// Addr is host:port; URL is redis://Addr/0.
	Addr, URL string

	dir  string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// redisInstallHint says how to get the server the tests need.
const redisInstallHint = "redis-server is not installed (apt-get install redis-server)"

// StartRedis starts a redis-server for t and stops it when t ends. Without the program it skips t locally and
// fails it under CI=true.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		SkipUnlessAllowed(t, redisInstallHint)
	}
	r, err := NewRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r
}

// NewRedis starts a redis-server on a free loopback port with its files in dir, for programs that are not tests
// (the benchmarks). Kill stops it.
func NewRedis(dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%s", redisInstallHint)
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	r := &Redis{Addr: addr, URL: "redis://" + addr + "/0", dir: dir, port: port}
	if err := r.start(bin); err != nil {
		return nil, err
	}
	return r, nil
}

// Start starts the server again at the same address, empty (after Kill or Stop).
func (r *Redis) Start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("%s", redisInstallHint)
	}
	return r.start(bin)
}

func (r *Redis) start(bin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("redis-server on %s is running", r.Addr)
	}
	// No persistence: a restart is an empty Redis, the harder case for the proxy.
	cmd := exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // its start-up banner; failures show as a failed PING
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("redis-server on %s exited at start-up (port taken?)", r.Addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING: %w", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the server at once (SIGKILL), as a crash would. Killing a stopped server does nothing.
func (r *Redis) Kill() { r.end(os.Kill) }

// Stop ends the server gracefully (SIGTERM).
func (r *Redis) Stop() { r.end(os.Interrupt) }

func (r *Redis) end(sig os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	<-r.done
	r.cmd = nil
}

// Client returns a client of the server for a test's own checks (a scan of what is stored); the test closes it.
func (r *Redis) Client() *redis.Client { return redis.NewClient(&redis.Options{Addr: r.Addr}) }
