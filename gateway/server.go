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
// one fasthttp.Serve loop per SO_REUSEPORT socket, all sharing one
// fasthttp.Server (and so one Shutdown). Safe for concurrent use.
type Server struct {
	g   *Gateway
	srv *fasthttp.Server
	log *slog.Logger
	wg  sync.WaitGroup
}

// NewServer returns a server for g with the client-side limits of sc.
func NewServer(g *Gateway, sc config.Server, log *slog.Logger) *Server {
	return &Server{
		g:   g,
		log: log,
		srv: &fasthttp.Server{
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
			ReduceMemoryUsage:            true, // idle keep-alive connections hold no buffers
			SecureErrorLogMessage:        true,
			CloseOnShutdown:              true,
			Logger:                       fasthttpLogger{log},
		},
	}
}

// Serve starts one accept loop per shard of every group and returns at once.
// Loops end when Shutdown closes the sockets.
func (s *Server) Serve(groups []*listener.Group) {
	for _, grp := range groups {
		for i, ln := range grp.Shards() {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
					s.log.Error("accept loop stopped", "listener", grp.Address(), "shard", i, "error", err)
				}
			}()
		}
	}
}

// Shutdown stops accepting, answers new requests on open connections with
// 503, and waits until admitted and queued requests have finished or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.g.Drain()
	err := s.srv.ShutdownWithContext(ctx)
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
