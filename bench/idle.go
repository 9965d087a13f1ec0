package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// idleConns holds keep-alive connections that each made one request and
// then stay idle. Not safe for concurrent use.
type idleConns struct {
	conns []net.Conn
}

// openIdle opens n connections spread over addrs, sends one GET path on
// each and reads the answer, dialing at most 64 at a time. It fails when
// more than 1% of them could not be set up.
func openIdle(ctx context.Context, addrs []string, path string, n int) (*idleConns, error) {
	ic := &idleConns{conns: make([]net.Conn, n)}
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := openOne(ctx, addrs[i%len(addrs)], path)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			ic.conns[i] = c
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		ic.close()
		return nil, err
	}
	if f := failed.Load(); f*100 > int64(n) {
		ic.close()
		return nil, fmt.Errorf("opening idle connections: %d of %d failed, first: %v", f, n, firstErr.Load())
	}
	return ic, nil
}

func openOne(ctx context.Context, addr, path string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		c.Close()
		return nil, fmt.Errorf("writing to %s: %w", addr, err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading from %s: %w", addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		c.Close()
		return nil, fmt.Errorf("%s answered %d (close=%v)", addr, resp.StatusCode, resp.Close)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// alive counts the connections the server has not closed: a read that times
// out means the connection is still open and idle.
func (ic *idleConns) alive() int {
	deadline := time.Now().Add(100 * time.Millisecond)
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, c := range ic.conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			var b [1]byte
			if _, err := c.Read(b[:]); os.IsTimeout(err) {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

func (ic *idleConns) close() {
	for _, c := range ic.conns {
		if c != nil {
			c.Close()
		}
	}
}
