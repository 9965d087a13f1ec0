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
	// The header block within header_timeout (or read_timeout if lower),
	// the body per read (see readBody).
	readTimeout := min(sc.HeaderTimeout, sc.ReadTimeout)
	if lean {
		readTimeout = sc.ReadTimeout // the whole request, as below
	}
	return &fasthttp.Server{
		Handler:       g.Handler,
		ErrorHandler:  serverError,
		ExpectHandler: g.expect,
		ReadTimeout:   readTimeout,
		// Request bodies reach the handler as streams, which readBody spools
		// in bounded memory; but fasthttp then keeps a connection's read
		// buffer while it is idle, so the lean server reads bodies whole
		// before the handler, within read_timeout, as it always did.
		StreamRequestBody:            !lean,
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

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
