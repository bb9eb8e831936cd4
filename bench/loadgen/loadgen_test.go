package loadgen

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponseFraming(t *testing.T) {
	cases := []struct {
		name, raw string
		status    int
		keepAlive bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", 200, true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n2;x=y\r\nhi\r\n0\r\nT: v\r\n\r\n", 200, true},
		{"close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 503, false},
		{"no framing", "HTTP/1.0 200 OK\r\n\r\nuntil EOF", 200, false},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", 204, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A second response after the first proves the first one's end was found exactly.
			next := "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
			br := bufio.NewReader(strings.NewReader(c.raw + next))
			status, keepAlive, err := readResponse(br)
			if err != nil || status != c.status || keepAlive != c.keepAlive {
				t.Fatalf("got %d keepAlive=%v err=%v, want %d %v", status, keepAlive, err, c.status, c.keepAlive)
			}
			if !keepAlive {
				return
			}
			if status, _, err = readResponse(br); err != nil || status != 201 {
				t.Fatalf("next response: %d %v", status, err)
			}
		})
	}
	if _, _, err := readResponse(bufio.NewReader(strings.NewReader("SSH-2.0\r\n\r\n"))); err == nil {
		t.Fatal("a non-HTTP answer must be an error")
	}
}

func TestRunAndBurstAgainstServer(t *testing.T) {
	var auth = make(chan string, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case auth <- r.Header.Get("Authorization"):
		default:
		}
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = w.Write([]byte(strings.Repeat("x", 10000))) // large enough to be chunked
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	res, err := Run(Plan{Addr: host, Conns: 3, Duration: 100 * time.Millisecond, Next: func(c, i int) []byte {
		if i%5 == 4 {
			return GET(host, "/close", "tok")
		}
		return GET(host, "/", "tok")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) == 0 || res.NotOK() != 0 || res.RPS() <= 0 {
		t.Fatalf("run: %d samples, %d not OK, status %v, %d errors", len(res.Samples), res.NotOK(), res.Status, res.Errors)
	}
	if got := <-auth; got != "Bearer tok" {
		t.Fatalf("Authorization %q", got)
	}

	// A run bounded by a number of requests sends exactly that many, whatever the connections.
	drain(auth)
	var next atomic.Int64
	each, err := Run(Plan{Addr: host, Conns: 4, Requests: 50, Next: func(int, int) []byte {
		return GET(host, "/", strconv.FormatInt(next.Add(1), 10))
	}})
	if err != nil || len(each.Samples) != 50 || each.OK() != 50 || next.Load() != 50 {
		t.Fatalf("each: %v, %d samples, %d OK, %d built", err, len(each.Samples), each.OK(), next.Load())
	}
	seen := map[string]bool{}
	for range 50 {
		seen[<-auth] = true
	}
	if len(seen) != 50 || len(auth) != 0 {
		t.Fatalf("each: %d distinct requests reached the server, %d more", len(seen), len(auth))
	}
	if _, err := Run(Plan{Addr: host, Conns: 1, Next: func(int, int) []byte { return nil }}); err == nil {
		t.Fatal("a plan with neither a duration nor a number of requests ran")
	}

	burst, err := Burst(host, 20, func(int) []byte { return GET(host, "/", "") }, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(burst.Samples) != 20 || burst.OK() != 20 {
		t.Fatalf("burst: %d samples, status %v, %d errors", len(burst.Samples), burst.Status, burst.Errors)
	}
}

func drain(c chan string) {
	for len(c) > 0 {
		<-c
	}
}

func TestPercentile(t *testing.T) {
	l := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0.5: 5, 0.99: 10, 0.1: 1, 1: 10} {
		if got := Percentile(l, q); got != want {
			t.Errorf("p%v = %d, want %d", q, got, want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}

func TestRequestEncoding(t *testing.T) {
	for _, c := range []struct {
		got  []byte
		want string
	}{
		{GET("h:1", "/p", "tok"), "GET /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: token-injector-bench\r\nAuthorization: Bearer tok\r\n\r\n"},
		{GET("h:1", "/p", ""), "GET /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: token-injector-bench\r\n\r\n"},
		{GETCookie("h:1", "/p", "a=b"), "GET /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: token-injector-bench\r\nCookie: a=b\r\n\r\n"},
	} {
		if string(c.got) != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
