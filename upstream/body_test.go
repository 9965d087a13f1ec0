package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawBackend answers every request on every connection with the next of
// responses, written as is, and counts the connections it accepted.
type rawBackend struct {
	ln       net.Listener
	accepted atomic.Int64
}

func startRawBackend(t *testing.T, response string, closeAfter bool) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rb.accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var req fasthttp.Request
					if err := req.Read(br); err != nil {
						return
					}
					if _, err := io.WriteString(c, response); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return rb
}

func exchange(t *testing.T, b *Backend, o *Options) (*fasthttp.Response, *Body, error) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + b.Address() + "/")
	resp := new(fasthttp.Response)
	body, err := b.Exchange(req, resp, o)
	return resp, body, err
}

func TestExchangeBodies(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name       string
		response   string
		closeAfter bool
		stream     bool
		wantMemory string // body read in place
		wantRest   string // read from the returned Body; "" for none
		wantErr    bool
		wantReuse  bool
	}{
		{name: "short length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
			wantMemory: "hello", wantReuse: true},
		{name: "long length", response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + long,
			wantMemory: long[:16], wantRest: long[16:], wantReuse: true},
		{name: "short chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			wantMemory: "hello", wantReuse: true},
		{name: "long chunked with extension and trailer", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"32;ext=1\r\n" + long[:50] + "\r\n32\r\n" + long[50:] + "\r\n0\r\nX-Sum: 1\r\n\r\n",
			wantMemory: long[:16], wantRest: long[16:], wantReuse: true},
		{name: "until close", response: "HTTP/1.1 200 OK\r\n\r\n" + long, closeAfter: true,
			wantMemory: long[:16], wantRest: long[16:]},
		{name: "stream", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", stream: true,
			wantRest: "hello", wantReuse: true},
		{name: "truncated length", response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + long[:40], closeAfter: true,
			wantMemory: long[:16], wantRest: long[16:40], wantErr: true},
		{name: "bad chunk size", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
			wantErr: true},
		{name: "no body for 204", response: "HTTP/1.1 204 No Content\r\n\r\n", wantReuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := startRawBackend(t, tt.response, tt.closeAfter)
			b := NewBackend(BackendConfig{Address: rb.ln.Addr().String(), ConnectTimeout: time.Second,
				ResponseTimeout: 2 * time.Second, IdleConnTimeout: 10 * time.Second})
			o := &Options{BufferBytes: 16}
			if tt.stream {
				o.Stream = func(*fasthttp.ResponseHeader) bool { return true }
			}
			resp, body, err := exchange(t, b, o)
			if err != nil && body == nil {
				if !tt.wantErr {
					t.Fatalf("Exchange() error = %v", err)
				}
				return
			}
			if got := string(resp.Body()); got != tt.wantMemory {
				t.Errorf("body in memory = %q, want %q", got, tt.wantMemory)
			}
			if (body != nil) != (tt.wantRest != "") {
				t.Fatalf("Exchange() Body = %v, want one: %v", body, tt.wantRest != "")
			}
			if body != nil {
				if body.Streaming() != tt.stream {
					t.Errorf("Streaming() = %v, want %v", body.Streaming(), tt.stream)
				}
				rest, rerr := io.ReadAll(body)
				body.Close()
				if string(rest) != tt.wantRest {
					t.Errorf("rest of the body = %q, want %q", rest, tt.wantRest)
				}
				if (rerr != nil) != tt.wantErr {
					t.Errorf("reading the Body: error %v, want error: %v", rerr, tt.wantErr)
				}
			}
			if tt.wantErr {
				return
			}
			if _, body2, err := exchange(t, b, o); err != nil {
				t.Fatalf("second Exchange() error = %v", err)
			} else if body2 != nil {
				io.Copy(io.Discard, body2)
				body2.Close()
			}
			if got, want := rb.accepted.Load() == 1, tt.wantReuse; got != want {
				t.Errorf("two exchanges took %d connections; reuse = %v, want %v", rb.accepted.Load(), got, want)
			}
		})
	}
}

// TestBodyAbortUnblocksRead: Abort from another goroutine ends a Read that
// waits for a backend that sends nothing more.
func TestBodyAbortUnblocksRead(t *testing.T) {
	rb := startRawBackend(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", false)
	b := NewBackend(BackendConfig{Address: rb.ln.Addr().String(), ConnectTimeout: time.Second,
		ResponseTimeout: 10 * time.Second, IdleConnTimeout: time.Second})
	o := &Options{Stream: func(*fasthttp.ResponseHeader) bool { return true }}
	_, body, err := exchange(t, b, o)
	if err != nil || body == nil {
		t.Fatalf("Exchange() = %v, %v; want a Body", body, err)
	}
	defer body.Close()
	buf := make([]byte, 16)
	if n, err := body.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read() = %q, %v; want hello", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := body.Read(buf)
		done <- err
	}()
	body.Abort()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("Read() after Abort = %v, want an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read() still blocked 5s after Abort")
	}
}

// TestExchangeKeepsNoDefaultContentType: a backend response without
// Content-Type gets none added (the server sets the response up that way).
func TestExchangeKeepsNoDefaultContentType(t *testing.T) {
	rb := startRawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
	b := NewBackend(BackendConfig{Address: rb.ln.Addr().String(), ConnectTimeout: time.Second,
		ResponseTimeout: 2 * time.Second, IdleConnTimeout: time.Second})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + b.Address() + "/")
	var resp fasthttp.Response
	resp.Header.SetNoDefaultContentType(true)
	if _, err := b.Exchange(req, &resp, &Options{BufferBytes: 1 << 10}); err != nil {
		t.Fatalf("Exchange() error = %v", err)
	}
	if s := resp.String(); strings.Contains(strings.ToLower(s), "content-type") {
		t.Errorf("response = %q, want no Content-Type added", s)
	}
}
