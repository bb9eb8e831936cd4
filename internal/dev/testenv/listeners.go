package testenv

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// awaitOldListenersClosed returns once no port in ports has two listening sockets, or after a second.
//
// A reload binds the new config's listener beside the old one (SO_REUSEPORT) and caddy.Load returns before the old
// one has closed. Until it closes the kernel gives it a share of new connections, and as it closes it resets those
// still in its backlog: a test's first request after a reload would fail with "connection reset by peer" before
// reaching any handler. Waiting here keeps that race of Caddy's and the kernel's out of every test, where retrying
// requests could hide a connection the proxy itself dropped. Without /proc (not Linux) it returns at once.
func awaitOldListenersClosed(ports map[int]bool) {
	deadline := time.Now().Add(time.Second)
	for len(ports) > 0 && sharedListeners(ports) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// sharedListeners reports whether some address with a port in ports has two TCP listening sockets.
func sharedListeners(ports map[int]bool) bool {
	seen := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			return false
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text()) // sl local_address rem_address st ...
			if len(fields) < 4 || fields[3] != "0A" {
				continue // not LISTEN
			}
			local := fields[1]
			port, err := strconv.ParseInt(local[strings.LastIndexByte(local, ':')+1:], 16, 32)
			if err != nil || !ports[int(port)] {
				continue
			}
			if seen[local] {
				f.Close()
				return true
			}
			seen[local] = true
		}
		f.Close()
	}
	return false
}

// listenPorts returns the TCP ports the HTTP servers of a JSON config listen on (ranges are left out).
func listenPorts(cfg map[string]any) map[int]bool {
	ports := map[int]bool{}
	apps, _ := cfg["apps"].(map[string]any)
	httpApp, _ := apps["http"].(map[string]any)
	servers, _ := httpApp["servers"].(map[string]any)
	for _, srv := range servers {
		s, _ := srv.(map[string]any)
		listen, _ := s["listen"].([]any)
		for _, l := range listen {
			addr, _ := l.(string)
			if port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:]); err == nil {
				ports[port] = true
			}
		}
	}
	return ports
}
