package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/upstream"
)

// teeBackend answers one request with a body of size bytes, the first
// half at once and the rest when release is closed.
func teeBackend(t *testing.T, size int, release chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var req fasthttp.Request
		if req.Read(bufio.NewReader(c)) != nil {
			return
		}
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
		c.Write(body[:len(body)/2])
		<-release
		c.Write(body[len(body)/2:])
		io.Copy(io.Discard, c) // until the gateway closes or pools it
	}()
	return ln.Addr().String()
}

// openTee starts an exchange with a backend that sends size bytes and
// returns a tee over its body with at most max bytes spooled.
func openTee(t *testing.T, size int, max int64, release chan struct{}) (*tee, *atomic.Int64, *spooler) {
	t.Helper()
	b := upstream.NewBackend(upstream.BackendConfig{Address: teeBackend(t, size, release),
		ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second, IdleConnTimeout: time.Second})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + b.Address() + "/")
	var resp fasthttp.Response
	body, err := b.Exchange(req, &resp, &upstream.Options{BufferBytes: 4 << 10})
	if err != nil || body == nil {
		t.Fatalf("Exchange() = %v, %v; want a Body", body, err)
	}
	sp := &spooler{}
	f, err := sp.create(t.TempDir(), dirResponse)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(resp.Body())
	released := new(atomic.Int64)
	u := &upstreamState{name: "app", streams: new(atomic.Int64)}
	tt := newTee(f, body, func() { released.Add(1) }, u)
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	go tt.fill(g, max)
	return tt, released, sp
}

func TestTeeReleasesSlotWhenBackendDone(t *testing.T) {
	release := make(chan struct{})
	close(release)
	tt, released, sp := openTee(t, 1<<20, 1<<30, release)
	// The reader has read nothing yet; the backend is done all the same.
	deadline := time.Now().Add(5 * time.Second)
	for released.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := released.Load(); n != 1 {
		t.Fatalf("slot released %d times once the backend was done, want 1", n)
	}
	got, err := io.ReadAll(tt)
	if err != nil || len(got) != 1<<20 {
		t.Fatalf("read %d bytes, error %v; want %d", len(got), err, 1<<20)
	}
	tt.closeReader()
	if n := released.Load(); n != 1 {
		t.Errorf("slot released %d times in all, want 1", n)
	}
	if n := sp.inUse.Load(); n != 0 {
		t.Errorf("spool bytes in use after close = %d, want 0", n)
	}
}

func TestTeeHandsOverPastMax(t *testing.T) {
	release := make(chan struct{})
	close(release)
	tt, released, sp := openTee(t, 1<<20, 64<<10, release)
	got, err := io.ReadAll(tt)
	if err != nil || len(got) != 1<<20 {
		t.Fatalf("read %d bytes, error %v; want %d", len(got), err, 1<<20)
	}
	if n := released.Load(); n != 0 {
		t.Errorf("slot released %d times before the reader closed a handed-over body, want 0", n)
	}
	if n := tt.u.streams.Load(); n != 1 {
		t.Errorf("open streams after the handover = %d, want 1", n)
	}
	tt.closeReader()
	if n := released.Load(); n != 1 {
		t.Errorf("slot released %d times after close, want 1", n)
	}
	if n, s := sp.inUse.Load(), tt.u.streams.Load(); n != 0 || s != 0 {
		t.Errorf("after close: spool bytes %d, streams %d; want 0, 0", n, s)
	}
}

func TestTeeReaderLeavesMidSpool(t *testing.T) {
	release := make(chan struct{}) // never closed: the backend stalls halfway
	tt, released, sp := openTee(t, 1<<20, 1<<30, release)
	buf := make([]byte, 1024)
	if _, err := tt.Read(buf); err != nil {
		t.Fatalf("Read() error = %v", err)
	}
	tt.closeReader() // the client left: nobody wants the rest
	deadline := time.Now().Add(5 * time.Second)
	for (released.Load() == 0 || sp.inUse.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := released.Load(); n != 1 {
		t.Errorf("slot released %d times after the reader left a stalled spool, want 1", n)
	}
	if n := sp.inUse.Load(); n != 0 {
		t.Errorf("spool bytes in use = %d, want 0", n)
	}
}
