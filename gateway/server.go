package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/valyala/fasthttp"

	"shardgate/config"
	"shardgate/listener"
)

// leanAbove is the number of open client connections above which new ones
// are served in fasthttp's reduced-memory mode: such a connection holds no
// read or write buffer while idle, at the price of one more read system call
// (and an 8-byte allocation inside fasthttp) per request, about 10% of raw
// throughput. Below it, a connection keeps its buffers (max_header_bytes +
// 4 KiB). So a few hundred busy clients get the fast path, and 10,000 idle
// ones still fit in about 90 MiB.
const leanAbove = 512

// Server runs the gateway's handler on every shard of its listener groups:
// one accept loop per SO_REUSEPORT socket, handing each new connection to one
// of two fasthttp.Servers that differ only in ReduceMemoryUsage (see
// leanAbove). Safe for concurrent use.
type Server struct {
	g          *Gateway
	fast, lean *fasthttp.Server
	log        *slog.Logger
	groups     []*listener.Group
	wg         sync.WaitGroup

	sc    config.Server
	edges map[*listener.Group]*Edge // see SetEdge
	extra []*fasthttp.Server        // the edge listeners' own servers
}

// NewServer returns a server for g with the client-side limits of sc.
func NewServer(g *Gateway, sc config.Server, log *slog.Logger) *Server {
	return &Server{
		g:    g,
		log:  log,
		sc:   sc,
		fast: newFastHTTP(g, sc, log, false),
		lean: newFastHTTP(g, sc, log, true),
	}
}

func newFastHTTP(g *Gateway, sc config.Server, log *slog.Logger, lean bool) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      g.Handler,
		ErrorHandler:                 serverError,
		ReadTimeout:                  sc.ReadTimeout,
		WriteTimeout:                 sc.WriteTimeout,
		IdleTimeout:                  sc.IdleTimeout,
		ReadBufferSize:               sc.MaxHeaderBytes,
		MaxRequestBodySize:           sc.MaxBodyBytes,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		ReduceMemoryUsage:            lean,
		SecureErrorLogMessage:        true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{log},
	}
}

// Serve starts the accept loops of every shard of every group and returns at
// once. They end when Shutdown closes the sockets.
func (s *Server) Serve(groups []*listener.Group) {
	s.groups = append(s.groups, groups...)
	for _, grp := range groups {
		e := s.edges[grp]
		fastSrv, leanSrv := s.servers(e)
		for i, ln := range grp.Shards() {
			ln = e.wrap(ln)
			fast, lean := newConnQueue(ln), newConnQueue(ln)
			fast.srv, lean.srv = fastSrv, leanSrv
			s.serve(fastSrv, fast, grp, i)
			s.serve(leanSrv, lean, grp, i)
			s.wg.Go(func() { s.split(ln, fast, lean) })
		}
	}
}

func (s *Server) serve(srv *fasthttp.Server, q *connQueue, grp *listener.Group, shard int) {
	s.wg.Go(func() {
		if err := srv.Serve(q); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("accept loop stopped", "listener", grp.Address(), "shard", shard, "error", err)
		}
	})
}

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

// Shutdown stops accepting, closes every client connection after its
// current response, and waits until admitted and queued requests have
// finished or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.g.Drain()
	all := append([]*fasthttp.Server{s.fast, s.lean}, s.extra...)
	errs := make(chan error, len(all))
	for _, srv := range all {
		go func() { errs <- srv.ShutdownWithContext(ctx) }()
	}
	var err error
	for range all {
		err = errors.Join(err, <-errs)
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	return nil
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

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
