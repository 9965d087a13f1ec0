package gateway

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// scriptConn returns its chunks one Read at a time, then blocks the test
// by failing it: a Read past the script means headConn let fasthttp wait.
type scriptConn struct {
	net.Conn
	chunks []string
}

var errScriptDone = errors.New("script done")

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, errScriptDone
	}
	n := copy(p, c.chunks[0])
	c.chunks = c.chunks[1:]
	return n, nil
}

// split returns s in pieces of n bytes.
func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		out, s = append(out, s[:n]), s[n:]
	}
	return append(out, s)
}

// TestHeadConn pins when a Read after the head fails at once: only when
// the head ended in a bare LF, however the bytes were split into reads.
func TestHeadConn(t *testing.T) {
	tests := []struct {
		name, head string
		bad        bool
	}{
		{"CRLF", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"CRLF with a body that has LF LF", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n\n\n\n", false},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", false},
		{"all bare LF", "GET / HTTP/1.1\nHost: x\n\n", true},
		{"bare LF then CRLF", "GET / HTTP/1.1\r\nHost: x\n\r\n", true},
		{"CRLF then bare LF", "GET / HTTP/1.1\r\nHost: x\r\n\n", true},
		{"bare LF in the request line only", "GET / HTTP/1.1\nHost: x\r\n\r\n", false},
		{"bare-LF empty lines before the request", "\n\nGET / HTTP/1.1\nHost: x\n\n", true},
		{"a long request line", "GET /" + strings.Repeat("a", 3000) + " HTTP/1.1\nHost: x\n\n", true},
		{"not a request line: a body", "some text\n\nmore text\n", false},
		{"HTTP/0.9", "GET /\n\n", false},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 2, 3, 1000} {
			c := newHeadConn(&scriptConn{chunks: split(tt.head, n)})
			buf := make([]byte, 1000)
			var err error
			for err == nil {
				_, err = c.Read(buf)
			}
			if bad := errors.Is(err, errBareLF); bad != tt.bad {
				t.Errorf("%s in %d-byte reads: Read() error = %v, want errBareLF: %v", tt.name, n, err, tt.bad)
			}
		}
	}
}

// TestHeadConnRearm: after the handler ran, the next head is watched
// again, and the body in between is not.
func TestHeadConnRearm(t *testing.T) {
	c := newHeadConn(&scriptConn{chunks: []string{"GET / HTTP/1.1\r\n\r\n", "\n\n", "GET / HTTP/1.1\n\n"}})
	buf := make([]byte, 100)
	for i := range 2 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("Read() %d error = %v", i, err)
		}
	}
	rearm(c)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("Read() of the second head error = %v", err)
	}
	if _, err := c.Read(buf); !errors.Is(err, errBareLF) {
		t.Fatalf("Read() after a bare-LF head error = %v, want errBareLF", err)
	}
}

// TestHeadConnPipelinedBody: after a rearm, body bytes of a pipelined
// request are not taken for a head, even with empty lines in them.
func TestHeadConnPipelinedBody(t *testing.T) {
	c := newHeadConn(&scriptConn{chunks: []string{"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n", "ab\n\ncd\n\n", "e"}})
	buf := make([]byte, 100)
	c.Read(buf)
	rearm(c) // the handler of an earlier request ran
	for i := range 2 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("Read() %d of the body error = %v", i, err)
		}
	}
}
