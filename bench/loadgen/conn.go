// Package loadgen is a small closed-loop HTTP/1.1 load generator. Each connection is a raw keep-alive TCP
// connection that writes pre-encoded requests and parses just enough of each response to find its end, so the
// client costs a fraction of what net/http would on a machine it shares with the server it measures.
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// GET encodes a GET request for path on host, with an Authorization: Bearer header when bearer is not empty.
func GET(host, path, bearer string) []byte {
	if bearer == "" {
		return get(host, path, "", "")
	}
	return get(host, path, "Authorization", "Bearer "+bearer)
}

// GETCookie encodes a GET request for path on host with a Cookie header (e.g. "name=value") and no Authorization.
func GETCookie(host, path, cookie string) []byte {
	return get(host, path, "Cookie", cookie)
}

func get(host, path, header, value string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: token-injector-bench\r\n", path, host)
	if header != "" {
		fmt.Fprintf(&b, "%s: %s\r\n", header, value)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Conn is one keep-alive connection. It redials after an error or a "Connection: close". Not safe for
// concurrent use.
type Conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
}

// Dial connects to addr; every later request must complete within timeout.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	c := &Conn{addr: addr, timeout: timeout}
	return c, c.dial()
}

func (c *Conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	c.c = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// Do sends req and reads the whole response, returning its status code.
func (c *Conn) Do(req []byte) (int, error) {
	if c.c == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.c.Write(req); err != nil {
		c.Close()
		return 0, err
	}
	status, keepAlive, err := readResponse(c.br)
	if err != nil || !keepAlive {
		c.Close()
	}
	return status, err
}

// Close closes the connection; the next Do redials.
func (c *Conn) Close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

var errMalformed = errors.New("loadgen: malformed response")

// readResponse reads one response: status line, headers, and a body framed by Content-Length or chunked encoding.
func readResponse(br *bufio.Reader) (status int, keepAlive bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, errMalformed
	}
	length, chunked, keepAlive := int64(-1), false, true
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil {
				return status, false, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = discardChunked(br)
	case length >= 0:
		_, err = br.Discard(int(length))
	case status == 204 || status == 304 || status < 200:
	default: // no framing: the body ends when the server closes
		_, err = io.Copy(io.Discard, br)
		keepAlive = false
	}
	return status, keepAlive && err == nil, err
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeField, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeField)), 16, 64)
		if err != nil || size < 0 {
			return errMalformed
		}
		if size == 0 { // trailers, then an empty line
			for {
				line, err = br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err = br.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

// GETHeaders encodes a GET request for path on host with the given headers, in order: {name, value} pairs.
func GETHeaders(host, path string, headers ...[2]string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: token-injector-bench\r\n", path, host)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
