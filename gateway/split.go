package gateway

import (
	"net"
	"sync"

	"github.com/valyala/fasthttp"
)

// leanAbove is the number of open client connections above which new ones
// are served in fasthttp's reduced-memory mode: such a connection holds no
// read or write buffer while idle, at the price of one more read system call
// (and an 8-byte allocation inside fasthttp) per request, about 10% of raw
// throughput. Below it, a connection keeps its buffers (max_header_bytes +
// 4 KiB). So a few hundred busy clients get the fast path, and 10,000 idle
// ones still fit in about 80 MiB RSS (78.6 MiB measured; README, "Tuning").
const leanAbove = 512

// split accepts connections on one shard and hands each to the fast or the
// lean server by how many connections are open.
func (s *Server) split(ln net.Listener, fast, lean *connQueue) {
	defer fast.Close()
	defer lean.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by Shutdown
		}
		c = wrapHead(c)
		q := fast
		if s.openConns() > leanAbove {
			q = lean
		}
		srv := q.srv
		if !q.put(c) {
			// Shutdown closed the queue after the socket gave us c: serve
			// it anyway (its response closes it) rather than reset a client.
			s.wg.Go(func() { srv.ServeConn(c) })
		}
	}
}

func (s *Server) openConns() int64 {
	var n int64
	for _, g := range s.groups {
		n += g.Open()
	}
	return n
}

// connQueue is the net.Listener a fasthttp.Server serves: it yields the
// connections split hands it. Closing it closes the shard socket too, which
// ends split. Safe for concurrent use.
type connQueue struct {
	ln   net.Listener
	ch   chan net.Conn
	done chan struct{}
	srv  *fasthttp.Server // the server that serves what Accept yields
	once sync.Once
}

func newConnQueue(ln net.Listener) *connQueue {
	return &connQueue{ln: ln, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the server; false means the queue was closed first.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error {
	q.once.Do(func() {
		close(q.done)
		q.ln.Close()
	})
	return nil
}

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.ln.Addr() }
