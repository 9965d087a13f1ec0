package gateway

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shardgate/listener"
	"shardgate/tlsconf"
)

// TLSListener describes TLS termination on one listener group.
type TLSListener struct {
	// Config is the server configuration shared by every shard (so session
	// tickets resume on any shard).
	Config *tls.Config
	// Timeout bounds the handshake (server.read_timeout).
	Timeout time.Duration
	// Errors has one counter per tlsconf.Reason; nil entries count nothing.
	Errors [tlsconf.NumReasons]prometheus.Counter
}

// tlsShard is one shard socket that hands out server-side TLS connections.
// Accept does not handshake: the connection's serving goroutine does, on its
// first read, so a slow client never holds the accept loop.
type tlsShard struct {
	net.Listener
	t *TLSListener
}

func (l *tlsShard) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newTLSConn(c, l.t), nil
}

// tlsConn is a server-side TLS connection that still answers the socket
// probes of the plain connection under it, so a queued request notices a
// client that left. It satisfies fasthttp's TLS interface (Handshake,
// ConnectionState), so the handler sees ctx.IsTLS(). One goroutine reads
// and writes it; Peek may be called from any.
type tlsConn struct {
	*tls.Conn
	raw  net.Conn // the accepted connection, for Peek and SyscallConn
	fin  *listener.FinProbe
	t    *TLSListener
	done atomic.Bool // handshake attempted
}

func newTLSConn(c net.Conn, t *TLSListener) *tlsConn {
	tc := &tlsConn{Conn: tls.Server(c, t.Config), raw: c, t: t}
	if sc, ok := c.(syscall.Conn); ok {
		tc.fin, _ = listener.NewFinProbe(sc)
	}
	return tc
}

// Read handshakes first, within the listener's timeout, and counts a failure
// by reason. The read deadline it sets stays for the first request, which
// fasthttp bounds by the same read_timeout anyway.
func (c *tlsConn) Read(b []byte) (int, error) {
	if !c.done.Load() {
		if err := c.handshake(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// Write handshakes first too, should anything write before reading.
func (c *tlsConn) Write(b []byte) (int, error) {
	if !c.done.Load() {
		if err := c.handshake(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

func (c *tlsConn) handshake() error {
	c.done.Store(true)
	if c.t.Timeout > 0 {
		_ = c.raw.SetDeadline(time.Now().Add(c.t.Timeout))
	}
	err := c.Conn.Handshake()
	if err != nil {
		if ctr := c.t.Errors[tlsconf.Classify(err)]; ctr != nil {
			ctr.Inc()
		}
		return err
	}
	_ = c.raw.SetWriteDeadline(time.Time{})
	return nil
}

// SyscallConn returns the socket's RawConn.
func (c *tlsConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// Peek reports the socket's state. Queued bytes on a TLS connection whose
// peer has already sent its FIN are a close_notify alert (or a request the
// client will not wait for): the client is gone.
func (c *tlsConn) Peek() listener.State {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return listener.StateClosed
	}
	st := listener.Peek(sc)
	if st == listener.StateData && c.fin != nil && c.fin.PeerFinished() {
		return listener.StateClosed
	}
	return st
}

// Shard returns the shard of the accepted connection, or 0.
func (c *tlsConn) Shard() int {
	if s, ok := c.raw.(shardConn); ok {
		return s.Shard()
	}
	return 0
}
