// Package listener owns the SO_REUSEPORT sockets ("shards") that accept client
// connections: binding them, counting what each accepts, handing their file
// descriptors to a new process and rebuilding them from inherited ones.
//
// With SO_REUSEPORT the kernel spreads new connections over the sockets of a
// group by a hash of the 4-tuple, and closing one socket resets every
// connection still waiting in its accept queue. A reload or binary upgrade
// therefore never closes a socket: it hands a duplicate of its descriptor over
// (Files, FromFiles), so the socket outlives the old process.
//
// The package knows nothing about HTTP.
package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-reuseport"
)

// Group is the set of SO_REUSEPORT sockets ("shards") bound to one listen
// address. Each shard has its own accept queue and is meant to have its own
// accept loop. Group is safe for concurrent use.
type Group struct {
	address   string
	shards    []*shard
	listeners []net.Listener // the same shards, as handed out by Shards
	open      atomic.Int64   // accepted and not yet closed, all shards

	closeOnce sync.Once
	closeErr  error
}

// bindFunc binds one TCP listening socket; a seam so tests can make a later
// shard fail.
type bindFunc func(network, address string) (*net.TCPListener, error)

// Listen binds shards sockets to address with SO_REUSEPORT. shards <= 0 means
// runtime.GOMAXPROCS(0). An IPv4 literal host binds tcp4, an IPv6 literal
// tcp6; an empty host or a host name binds tcp (":8080" is dual-stack).
//
// If the port is 0, the first shard binds an ephemeral port and the others bind
// that same port, so Addr reports the real port. If any shard fails to bind,
// the ones already bound are closed and the error is returned.
func Listen(address string, shards int) (*Group, error) {
	return listen(address, shards, bindReusePort)
}

func listen(address string, shards int, bind bindFunc) (*Group, error) {
	if shards <= 0 {
		shards = runtime.GOMAXPROCS(0)
	}
	network, err := tcpNetwork(address)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", address, err)
	}
	lns := make([]*net.TCPListener, 0, shards)
	target := address
	for range shards {
		ln, err := bind(network, target)
		if err != nil {
			closeListeners(lns)
			return nil, fmt.Errorf("listening on %s: %w", address, err)
		}
		lns = append(lns, ln)
		// Later shards bind exactly what the first one got: the real port
		// when it was 0, the one address a host name resolved to.
		target = lns[0].Addr().String()
	}
	return newGroup(address, lns), nil
}

// bindReusePort binds one listening socket with SO_REUSEADDR and SO_REUSEPORT
// set by go-reuseport's Control func.
func bindReusePort(network, address string) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: reuseport.Control}
	ln, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil // tcp, tcp4 and tcp6 always give one
}

// tcpNetwork picks tcp4 or tcp6 for an IP literal host, so "0.0.0.0:80"
// stays IPv4-only, and tcp otherwise.
func tcpNetwork(address string) (string, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil: // empty host or a host name
		return "tcp", nil
	case ip.Is4() || ip.Is4In6():
		return "tcp4", nil
	default:
		return "tcp6", nil
	}
}

func newGroup(address string, lns []*net.TCPListener) *Group {
	g := &Group{
		address:   address,
		shards:    make([]*shard, len(lns)),
		listeners: make([]net.Listener, len(lns)),
	}
	for i, ln := range lns {
		s := &shard{ln: ln, index: i, group: g}
		g.shards[i] = s
		g.listeners[i] = s
	}
	return g
}

func closeListeners(lns []*net.TCPListener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// Address returns the configured address string, as given to Listen or
// FromFiles.
func (g *Group) Address() string { return g.address }

// Addr returns the address the shards are actually bound to, with the real
// port.
func (g *Group) Addr() net.Addr { return g.shards[0].ln.Addr() }

// Shards returns one net.Listener per shard, in shard order. Accept on each
// counts into its shard and returns a *Conn. Closing one of them closes only
// that shard's socket. The slice is a fresh copy.
func (g *Group) Shards() []net.Listener {
	return append([]net.Listener(nil), g.listeners...)
}

// Accepted returns how many connections the shard with index shard has
// accepted so far. It panics if shard is out of range, like a slice index.
func (g *Group) Accepted(shard int) uint64 {
	return g.shards[shard].accepted.Load()
}

// Open returns the number of connections accepted by any shard and not yet
// closed.
func (g *Group) Open() int64 { return g.open.Load() }

// Close closes every shard socket; connections waiting in their accept queues
// are reset unless another process holds a duplicate of the descriptor (see
// Files). Accepted connections stay open. Close is idempotent: calls after the
// first return nil.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		errs := make([]error, 0, len(g.shards))
		for _, s := range g.shards {
			errs = append(errs, s.ln.Close())
		}
		if err := errors.Join(errs...); err != nil {
			g.closeErr = fmt.Errorf("closing %s: %w", g.address, err)
		}
	})
	return g.closeErr
}

// shard is one SO_REUSEPORT socket of a Group.
type shard struct {
	ln       *net.TCPListener
	index    int
	group    *Group
	accepted atomic.Uint64
}

// Accept waits for the next connection on this shard and returns it as a
// *Conn.
func (s *shard) Accept() (net.Conn, error) {
	tc, err := s.ln.AcceptTCP()
	if err != nil {
		return nil, err
	}
	s.accepted.Add(1)
	s.group.open.Add(1)
	return newConn(tc, s.index, &s.group.open), nil
}

// Close closes this shard's socket only.
func (s *shard) Close() error { return s.ln.Close() }

// Addr returns the shard's bound address.
func (s *shard) Addr() net.Addr { return s.ln.Addr() }
